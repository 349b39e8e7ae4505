"""GPU check: ``anomae score --device cuda`` must give the CPU's scores, and how fast.

Needs onnxruntime-gpu (CUDA execution provider) and torch (to export the reference model).
Prints a table and writes ``gpu_check.json`` to ``--out``:

* relative error of CUDA vs CPU scores on the same rows (with and without missing values),
  target <= 1e-4;
* windows/s on the GPU from raw host rows (``[1, N + 63, 8]`` per call: rows cross PCIe,
  windows are cut on the device), for several N;
* ``anomae score`` end to end on Parquet with ``--device cuda`` vs ``--device cpu``.

    python bench/gpu_check.py --out /tmp/gpu
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_bench import LENGTH, N_F, reference_model  # noqa: E402


def _median_time(fn, reps: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    ap.add_argument("--rows", type=int, default=2_000_000)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import onnxruntime as ort

    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    from anomae.detector import Detector

    report: dict = {"onnxruntime": ort.__version__, "providers": ort.get_available_providers()}
    print(json.dumps(report))
    if "CUDAExecutionProvider" not in report["providers"]:
        from anomae.detector import CUDA_HELP

        raise SystemExit(f"no GPU check here: {CUDA_HELP}")
    model = args.out / "ref.onnx"
    reference_model(model)
    cpu = Detector.load(model, device="cpu")
    gpu = Detector.load(model, device="cuda")
    report["session_providers"] = gpu.session.get_providers()

    rng = np.random.default_rng(0)
    values = rng.normal(size=(500_000, N_F)).astype(np.float32)
    holes = values.copy()
    holes[rng.random(holes.shape) < 0.002] = np.nan
    holes[1000:1100] = np.nan
    parity = {}
    for name, v in (("complete", values), ("missing values", holes)):
        a, b = cpu.score_series(v), gpu.score_series(v)
        ok = ~np.isnan(a.score)
        assert np.array_equal(ok, ~np.isnan(b.score)), "NaN windows differ"
        rel = np.abs(b.score[ok] - a.score[ok]) / np.abs(a.score[ok])
        fe = np.abs(b.feature_error[ok] - a.feature_error[ok]).max()
        parity[name] = {
            "windows": int(ok.size),
            "max_rel_err": float(rel.max()),
            "feature_error_max_abs": float(fe),
        }
        print(f"parity {name:15s} windows {ok.size:,} max rel err {rel.max():.2e}")
    report["parity"] = parity

    speed = {}
    for n in (2**14, 2**16, 2**18, 2**20, 2**21):
        rows = rng.normal(size=(1, n + LENGTH - 1, N_F)).astype(np.float32)
        t = _median_time(lambda rows=rows: gpu.run(rows))
        speed[n] = n / t
        print(f"cuda from host rows: {n:>10,} windows/call  {n / t:>14,.0f} windows/s")
    rows = rng.normal(size=(1, 2**14 + LENGTH - 1, N_F)).astype(np.float32)
    t_cpu = _median_time(lambda: cpu.run(rows))
    print(
        f"cpu ({len(__import__('os').sched_getaffinity(0))} cores) 16k windows/call: "
        f"{2**14 / t_cpu:,.0f} windows/s"
    )
    report["cuda_windows_per_s"] = speed
    report["cpu_windows_per_s_16k"] = 2**14 / t_cpu

    import polars as pl

    n_series, per = 4, args.rows // 4
    ts = np.arange(per, dtype=np.int64) * 60_000_000_000
    pl.concat(
        [
            pl.DataFrame(
                {
                    "timestamp": pl.Series(ts).cast(pl.Datetime("ns")),
                    "series": [f"m{k}"] * per,
                    **{f"s{i}": rng.normal(size=per).astype(np.float32) for i in range(N_F)},
                }
            )
            for k in range(n_series)
        ]
    ).write_parquet(args.out / "rows.parquet")
    e2e = {}
    for device in ("cpu", "cuda"):
        out = args.out / f"scores_{device}.parquet"
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "anomae.cli",
                "score",
                str(model),
                str(args.out / "rows.parquet"),
                "-o",
                str(out),
                "--device",
                device,
                "--no-progress",
            ],
            capture_output=True,
            text=True,
        )
        el = time.perf_counter() - t0
        print(
            f"anomae score --device {device}: rc={r.returncode} {el:.2f}s wall "
            f"({args.rows / el:,.0f} rows/s incl. start-up) {r.stdout.strip()} {r.stderr[-300:]}"
        )
        e2e[device] = {"rc": r.returncode, "seconds": el, "stdout": r.stdout.strip()}
    a = pl.read_parquet(args.out / "scores_cpu.parquet")["score"].to_numpy()
    b = pl.read_parquet(args.out / "scores_cuda.parquet")["score"].to_numpy()
    e2e["max_rel_err"] = float((np.abs(a - b) / np.abs(a)).max())
    print(f"anomae score cuda vs cpu: {a.size:,} windows, max rel err {e2e['max_rel_err']:.2e}")
    report["anomae_score"] = e2e
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    model.unlink()
    (args.out / "rows.parquet").unlink()
    for d in ("cpu", "cuda"):
        (args.out / f"scores_{d}.parquet").unlink()


if __name__ == "__main__":
    main()
