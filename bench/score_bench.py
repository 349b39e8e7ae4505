"""Scoring throughput of the reference model: onnxruntime vs int8 vs torch eager, end to end.

Reference model: dense AE on 64x8 windows, 512-256-64-256-512 (0.59 MFLOP/window), stride 1.
A "batch" of B windows is fed as raw rows ``[1, B + 63, 8]``: the graph unfolds the windows
itself, exactly as ``anomae score`` does. Torch eager runs the same computation
(:class:`anomae.train.export.TorchScorer`: scale, unfold, AE, masked score) with the same
number of threads. ``int8`` is the model ``anomae quantize`` writes (:mod:`anomae.quantize`;
its gate run with ``min_spearman=0.9`` here, as the weights are random), scored the same way;
its score error against float32 is measured on 4,096 windows, and so is how much an int8
window's score depends on the other windows of its call (dynamic quantisation shares one
activation range per call; a call of one window runs the float32 products).

``--pyod`` (needs ``pip install pyod``, a bench-only dependency) adds PyOD's
``AutoEncoder.decision_function`` (same hidden sizes 256-64, fitted one epoch on 4,096
windows, ``batch_size`` 1,024) on ``--pyod-windows`` materialised windows (windowing not
timed), against ``Detector.score_series`` (float32 and int8) on the rows of the same windows.

Each measurement runs in its own worker process (so neither runtime's spinning thread pool
steals the other's cores), onnxruntime and torch alternate for ``--rounds`` rounds, and the
table shows medians. The machines are shared and noisy: read the ratios.

    python bench/score_bench.py [--threads 2] [--rows 2000000] [--seconds 1.5] [--rounds 3]
                                [--batches 1,64,1024,4096] [--pyod] [--pyod-windows 32768]

``--rows 0`` leaves out the end-to-end run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LENGTH, N_F = 64, 8
BATCHES = (1, 64, 1024, 4096)


def reference_model_in(folder: Path) -> Path:
    """``folder``/reference.onnx, exported the first time (the size benchmarks share it)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "reference.onnx"
    if not model.exists():
        reference_model(model)
    return model


def reference_model(path: Path) -> None:
    """Export the reference AE (random weights: speed does not depend on them)."""
    random_model(path, LENGTH, (256, 64), N_F)


def random_model(
    path: Path, window: int, hidden: tuple[int, ...], n_f: int, seed: int = 0, kind: str = "dense"
) -> None:
    """Export an AE of this shape with random weights (the benchmarks' models), features
    ``s0..``, threshold 1."""
    import torch

    from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
    from anomae.train.config import ArchConfig
    from anomae.train.export import export_model
    from anomae.train.model import build_model

    torch.manual_seed(seed)
    model = build_model(ArchConfig(kind=kind, hidden=hidden), window, n_f).eval()  # type: ignore[arg-type]
    card = ModelCard(
        features=tuple(f"s{i}" for i in range(n_f)),
        window=WindowSpec(window, 1),
        scaler=Scaler((0.0,) * n_f, (1.0,) * n_f),
        threshold=Threshold(1.0, "quantile", {"q": 0.99}, 1000, 0.01),
    )
    rows = np.random.default_rng(0).normal(size=(1, 500, n_f)).astype(np.float32)
    export_model(model, card, path, rows)


def int8_model(src: Path, dst: Path) -> dict:
    """``anomae quantize`` of the reference model, gated on random normal rows."""
    from anomae.quantize import QuantizeSettings, quantize_model
    from anomae.quantize_gate import GateSettings

    rows = np.random.default_rng(3).normal(size=(20_000, N_F)).astype(np.float32)
    settings = QuantizeSettings(gate=GateSettings(min_spearman=0.9))
    return quantize_model(src, [rows], dst, interval_s=60.0, settings=settings)


def accuracy(fp32: Path, int8: Path, threads: int) -> dict:
    """Score error of int8 vs float32 on 4,096 windows in one call, Spearman, and the
    largest change of an int8 score between a call of two windows and the shared one (a
    call of one window runs float32: :mod:`anomae.quantize`)."""
    from anomae.detector import Detector
    from anomae.quantize_gate import spearman

    rows = np.random.default_rng(4).normal(size=(1, 4096 + LENGTH - 1, N_F)).astype(np.float32)
    a = Detector.load(fp32, threads=threads).run(rows)[0][0].astype(np.float64)
    det8 = Detector.load(int8, threads=threads)
    b = det8.run(rows)[0][0].astype(np.float64)
    alone = np.array([det8.run(rows[:, i : i + LENGTH + 1])[0][0, 0] for i in range(0, 4096, 64)])
    return {
        "max_rel": float(np.max(np.abs(b - a) / np.abs(a))),
        "spearman": spearman(a, b),
        "batch_dependence": float(np.max(np.abs(alone - b[::64]) / np.abs(b[::64]))),
    }


def _time(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Median seconds per call over ~``seconds`` of calls (after a warm-up)."""
    for _ in range(3):
        fn()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def worker(
    kind: str, model: Path, threads: int, seconds: float, device: str, batches: tuple[int, ...]
) -> dict:
    rng = np.random.default_rng(1)
    out: dict[str, float] = {}
    if kind in ("ort", "int8"):
        from anomae.detector import Detector

        if kind == "int8":
            model = model.with_name("ref.int8.onnx")

        det = Detector.load(model, device=device, threads=threads)
        for b in batches:
            rows = rng.normal(size=(1, b + LENGTH - 1, N_F)).astype(np.float32)
            out[str(b)] = _time(lambda rows=rows: det.run(rows), seconds)
    else:
        import torch

        from anomae.modelfile import read_card
        from anomae.train.config import ArchConfig
        from anomae.train.export import TorchScorer
        from anomae.train.model import build_model

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        net = build_model(ArchConfig(hidden=(256, 64)), LENGTH, N_F)
        scorer = TorchScorer(net, read_card(model))
        for b in batches:
            rows = torch.from_numpy(rng.normal(size=(1, b + LENGTH - 1, N_F)).astype(np.float32))
            out[str(b)] = _time(lambda rows=rows: scorer(rows), seconds)
    return out


def same_windows(kind: str, model: Path, threads: int, n_windows: int) -> dict:
    """Windows per second on the same ``n_windows`` windows: PyOD's AutoEncoder
    ``decision_function`` on them materialised (``kind`` "pyod"), or anomae's
    ``score_series`` on their rows in float32 and int8 (``kind`` "series")."""
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(n_windows + LENGTH - 1, N_F)).astype(np.float32)
    if kind == "series":
        from anomae.detector import Detector

        out = {}
        for name, path in (("fp32", model), ("int8", model.with_name("ref.int8.onnx"))):
            det = Detector.load(path, threads=threads)
            det.score_series(rows[:5000])
            t0 = time.perf_counter()
            det.score_series(rows)
            out[name] = n_windows / (time.perf_counter() - t0)
        return out
    import torch
    from pyod.models.auto_encoder import AutoEncoder

    torch.set_num_threads(threads)
    windows = np.lib.stride_tricks.sliding_window_view(rows, (LENGTH, N_F))[:, 0]
    windows = np.ascontiguousarray(windows.reshape(n_windows, LENGTH * N_F))
    od = AutoEncoder(
        hidden_neuron_list=[256, 64], epoch_num=1, batch_size=1024, verbose=0, device="cpu"
    )
    od.fit(windows[:4096])
    od.decision_function(windows[:4096])
    t0 = time.perf_counter()
    od.decision_function(windows)
    return {"pyod": n_windows / (time.perf_counter() - t0)}


def end_to_end(model: Path, tmp: Path, n_rows: int, threads: int, device: str) -> dict:
    import polars as pl

    from anomae.detector import Detector
    from anomae.io import TableSpec
    from anomae.score import ScoreOptions, score_files

    rng = np.random.default_rng(2)
    n_series = 4
    per = n_rows // n_series
    ts = np.arange(per, dtype=np.int64) * 60_000_000_000
    frames = [
        pl.DataFrame(
            {
                "timestamp": pl.Series(ts).cast(pl.Datetime("ns")),
                "series": [f"m{k}"] * per,
                **{f"s{i}": rng.normal(size=per).astype(np.float32) for i in range(N_F)},
            }
        )
        for k in range(n_series)
    ]
    src = tmp / "rows.parquet"
    pl.concat(frames).write_parquet(src)
    # pure scoring of the same rows in the same process, as the reference for the ratio
    det = Detector.load(model, device=device, threads=threads)
    values = [f.select(f"s{i}" for i in range(N_F)).to_numpy().astype(np.float32) for f in frames]
    det.score_series(values[0][:5000])
    t0 = time.perf_counter()
    n_windows = sum(det.score_series(v).score.size for v in values)
    pure = n_windows / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    s = score_files(
        model,
        [src],
        tmp / "scores.parquet",
        table=TableSpec(),
        opts=ScoreOptions(progress=False),
        device=device,
        threads=threads,
    )
    e2e = s.n_rows / (time.perf_counter() - t0)
    return {"rows": s.n_rows, "pure": pure, "e2e": e2e}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--rows", type=int, default=2_000_000, help="rows for the end-to-end run (0: none)"
    )
    ap.add_argument(
        "--batches",
        default=",".join(map(str, BATCHES)),
        help="windows per call to time, comma-separated",
    )
    ap.add_argument("--seconds", type=float, default=1.5, help="timing per batch size per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (needs onnxruntime-gpu)")
    ap.add_argument("--pyod", action="store_true", help="add PyOD's AutoEncoder (pip install pyod)")
    ap.add_argument("--pyod-windows", type=int, default=32_768)
    ap.add_argument(
        "--worker",
        choices=["ort", "int8", "torch", "e2e", "pyod", "series"],
        help=argparse.SUPPRESS,
    )
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))

    if args.worker:
        if args.worker == "e2e":
            res = end_to_end(args.model, args.model.parent, args.rows, args.threads, args.device)
        elif args.worker in ("pyod", "series"):
            res = same_windows(args.worker, args.model, args.threads, args.pyod_windows)
        else:
            res = worker(args.worker, args.model, args.threads, args.seconds, args.device, batches)
        print(json.dumps(res))
        return

    tmp = Path(tempfile.mkdtemp(prefix="anomae-bench-"))
    model = tmp / "ref.onnx"
    reference_model(model)
    gate = int8_model(model, tmp / "ref.int8.onnx")["gate"]

    def run(kind: str) -> dict:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--model",
            str(model),
            "--threads",
            str(args.threads),
            "--seconds",
            str(args.seconds),
            "--rows",
            str(args.rows),
            "--device",
            args.device,
            "--pyod-windows",
            str(args.pyod_windows),
            "--batches",
            args.batches,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    kinds = ["ort", "int8", "torch"] + (["pyod", "series"] if args.pyod else [])
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            results[kind].append(run(kind))

    import onnxruntime
    import torch

    from anomae.quantize_gate import gate_text

    print(
        f"reference AE 64x8, 512-256-64-256-512; threads={args.threads}; device={args.device}; "
        f"onnxruntime {onnxruntime.__version__}, torch {torch.__version__}; "
        f"median of {args.rounds} alternating rounds"
    )
    print(
        f"{'batch (windows)':>16} {'onnxruntime w/s':>16} {'int8 w/s':>12} {'int8/ort':>9} "
        f"{'torch eager w/s':>16} {'ort/torch':>10} {'ort us/call':>12} {'int8 us/call':>13} "
        f"{'torch us/call':>14}"
    )
    for b in batches:
        t_ort = float(np.median([r[str(b)] for r in results["ort"]]))
        t_i8 = float(np.median([r[str(b)] for r in results["int8"]]))
        t_pt = float(np.median([r[str(b)] for r in results["torch"]]))
        print(
            f"{b:>16,} {b / t_ort:>16,.0f} {b / t_i8:>12,.0f} {t_ort / t_i8:>9.2f} "
            f"{b / t_pt:>16,.0f} {t_pt / t_ort:>10.2f} {t_ort * 1e6:>12,.0f} "
            f"{t_i8 * 1e6:>13,.0f} {t_pt * 1e6:>14,.0f}"
        )
    acc = accuracy(model, tmp / "ref.int8.onnx", args.threads)
    print(
        f"int8 vs float32 on 4,096 windows: max relative score error {acc['max_rel']:.3g}, "
        f"Spearman {acc['spearman']:.5f}; an int8 score changes by up to "
        f"{acc['batch_dependence']:.3g} (relative) between a 2-window call and a 4,096-window one"
    )
    print(f"gate (random weights, random rows): {gate_text(gate)}")
    if args.pyod:
        med = {
            k: float(np.median([r[k] for r in results[src]]))
            for k, src in (("pyod", "pyod"), ("fp32", "series"), ("int8", "series"))
        }
        print(
            f"same {args.pyod_windows:,} windows: PyOD AutoEncoder decision_function "
            f"{med['pyod']:,.0f} windows/s; anomae score_series float32 {med['fp32']:,.0f} "
            f"({med['fp32'] / med['pyod']:.2f}x PyOD), int8 {med['int8']:,.0f} "
            f"({med['int8'] / med['pyod']:.2f}x PyOD)"
        )

    if args.rows <= 0:
        return
    e = run("e2e")
    print()
    print(f"{'end to end':>18} {'rows':>12} {'rows/s':>12} {'pure scoring w/s':>17} {'ratio':>7}")
    print(
        f"{'parquet->parquet':>18} {e['rows']:>12,} {e['e2e']:>12,.0f} {e['pure']:>17,.0f} "
        f"{e['e2e'] / e['pure']:>7.2f}"
    )
    print("(pure scoring: Detector.score_series over the same rows, same process)")


if __name__ == "__main__":
    main()
