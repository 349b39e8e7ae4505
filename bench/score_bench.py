"""Scoring throughput of the reference model: onnxruntime vs torch eager, and end to end.

Reference model: dense AE on 64x8 windows, 512-256-64-256-512 (0.59 MFLOP/window), stride 1.
A "batch" of B windows is fed as raw rows ``[1, B + 63, 8]``: the graph unfolds the windows
itself, exactly as ``anomae score`` does. Torch eager runs the same computation
(:class:`anomae.train.export.TorchScorer`: scale, unfold, AE, masked score). Both use the
same number of threads. Prints one table; compare ratios, not absolute numbers (shared,
noisy machines).

    python bench/score_bench.py [--threads 2] [--rows 2000000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rate(fn, n_windows: int, seconds: float) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(windows/s, median seconds per call) over repeated calls for ~``seconds``."""
    for _ in range(3):
        fn()
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return n_windows / med, med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rows", type=int, default=2_000_000, help="rows for the end-to-end run")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing budget per cell")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (onnxruntime-gpu)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from anomae.detector import Detector
    from anomae.io import TableSpec
    from anomae.score import ScoreOptions, score_files
    from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
    from anomae.train.export import TorchScorer, export_model
    from anomae.train.model import ArchConfig, build_model

    length, n_f = 64, 8
    torch.manual_seed(0)
    model = build_model(ArchConfig(hidden=(256, 64)), length, n_f).eval()
    feats = tuple(f"s{i}" for i in range(n_f))
    card = ModelCard(features=feats, window=WindowSpec(length, 1),
                     scaler=Scaler((0.0,) * n_f, (1.0,) * n_f),
                     threshold=Threshold(1.0, "quantile", {"q": 0.99}, 1000, 0.01))
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="anomae-bench-"))
    path = tmp / "ref.onnx"
    export_model(model, card, path, rng.normal(size=(1, 500, n_f)).astype(np.float32))
    det = Detector.load(path, device=args.device, threads=args.threads)
    scorer = TorchScorer(model, card)

    print(f"reference AE 64x8, 512-256-64-256-512; threads={args.threads}; device={args.device}; "
          f"onnxruntime {__import__('onnxruntime').__version__}, torch {torch.__version__}")
    print(f"{'batch (windows)':>16} {'onnxruntime w/s':>16} {'torch eager w/s':>16} "
          f"{'ort/torch':>10} {'ort us/call':>12} {'torch us/call':>14}")
    pure_rate = 0.0
    for batch in (1, 64, 1024, 4096):
        rows = rng.normal(size=(1, batch + length - 1, n_f)).astype(np.float32)
        trows = torch.from_numpy(rows)
        r_ort, t_ort = _rate(lambda rows=rows: det.run(rows), batch, args.seconds)
        r_pt, t_pt = _rate(lambda trows=trows: scorer(trows), batch, args.seconds)
        if batch == 4096:
            pure_rate = r_ort
        print(f"{batch:>16,} {r_ort:>16,.0f} {r_pt:>16,.0f} {r_ort / r_pt:>10.2f} "
              f"{t_ort * 1e6:>12,.0f} {t_pt * 1e6:>14,.0f}")

    # end to end: Parquet rows in -> scores Parquet out (read, score, top features, write)
    import polars as pl

    n_series = 4
    per = args.rows // n_series
    ts = np.arange(per, dtype=np.int64) * 60_000_000_000
    frames = [
        pl.DataFrame({"timestamp": pl.Series(ts).cast(pl.Datetime("ns")),
                      "series": [f"m{k}"] * per,
                      **{f: rng.normal(size=per).astype(np.float32) for f in feats}})
        for k in range(n_series)
    ]
    src = tmp / "rows.parquet"
    pl.concat(frames).write_parquet(src)
    out = tmp / "scores.parquet"
    t0 = time.perf_counter()
    s = score_files(path, [src], out, table=TableSpec(),
                    opts=ScoreOptions(progress=False), device=args.device, threads=args.threads)
    el = time.perf_counter() - t0
    e2e = s.n_rows / el
    print()
    print(f"{'end to end':>16} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'vs pure scoring':>16}")
    print(f"{'parquet->parquet':>16} {s.n_rows:>12,} {el:>9.2f} {e2e:>12,.0f} "
          f"{e2e / pure_rate:>16.2f}")
    print(f"(pure scoring = onnxruntime at batch 4096: {pure_rate:,.0f} windows/s)")


if __name__ == "__main__":
    sys.exit(main())
