"""`anomae score` on data of any size: peak memory and throughput against the bare kernel.

Generates day-partitioned Parquet datasets (``date=YYYY-MM-DD/part-0.parquet``, every
series in every file, rows interleaved in time order, 8 float64 features) under
``--folder``, scores each with the reference model (``bench/score_bench.py``: dense AE on
64x8 windows) through :func:`anomae.score.score_files` in a child process, and reports its
peak RSS (``VmHWM``) and rows/s; the bare kernel (``Detector.score_series`` on rows already
in memory) runs in other children in the same session, before and after, and is the
fastest of one session of ``--threads`` onnxruntime threads (spinning or sleeping between
calls) and of ``--threads`` one-thread calls side by side. ``--dask 1c 1 2``
adds the first size scored on ``--dask local:N`` (:mod:`anomae.score_cluster`: N one-thread
worker processes, each bound to its share of the cores) for 1 worker confined to one core
(the scaling baseline), 1 worker free to use every core, and 2 workers, and their
speed-up, beside the bare kernel's own speed-up from 1 to 2 one-thread calls side by side
(the cores' own scaling: no cluster can beat it).
Ratios are what to read: the machines are
shared.

    python bench/score_size.py [--rows 1000000 4000000] [--series 1000] [--days 30]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
N_F = 8

CHILD_SCORE = """
import json, sys, time
from anomae.score import ScoreOptions, score_files
model, data, out, threads = sys.argv[1:5]
t0 = time.perf_counter()
s = score_files(model, [data], out + "/scores.parquet", out + "/events.parquet",
                opts=ScoreOptions(threshold=1e9, progress=False), threads=int(threads),
                force=True)
sec = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"rows": s.n_rows, "windows": s.n_windows, "seconds": sec,
                  "hwm_kib": int(hwm)}))
"""

CHILD_DASK = """
import json, sys, time
from anomae.score import ScoreOptions
from anomae.score_cluster import dask_client, score_files_dask
model, data, out, workers = sys.argv[1:5]
with dask_client("local:" + workers) as c:
    t0 = time.perf_counter()
    s = score_files_dask(model, [data], out + "/scores.parquet", out + "/events.parquet",
                         opts=ScoreOptions(threshold=1e9, progress=False), client=c,
                         threads=1, force=True)
    sec = time.perf_counter() - t0
print(json.dumps({"rows": s.n_rows, "windows": s.n_windows, "seconds": sec}))
"""

CHILD_KERNEL = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from anomae.detector import Detector
threads, mode = int(sys.argv[2]), sys.argv[4]
side = mode == "side"  # ``threads`` calls side by side, one onnxruntime thread each
det = Detector.load(sys.argv[1], threads=1 if side else threads, spin=mode == "spin")
x = np.random.default_rng(0).normal(size=(int(sys.argv[3]), 8)).astype(np.float32)
det.score_series(x[:5000])
t0 = time.perf_counter()
if side:
    with ThreadPoolExecutor(threads) as pool:
        n = sum(s.score.shape[0] for s in pool.map(det.score_series,
                                                   np.array_split(x, threads)))
else:
    n = det.score_series(x).score.shape[0]
print(json.dumps({"windows_per_s": n / (time.perf_counter() - t0)}))
"""
KERNEL_MODES = ("spin", "sleep", "side")


def generate(folder: Path, rows: int, series: int, days: int) -> Path:
    """``rows`` rows over ``days`` day files, ``series`` series a minute apart."""
    import polars as pl

    out = folder / f"rows-{rows}"
    if (out / "_done").exists():
        return out
    per = max(rows // (series * days), 1)  # rows per series per day
    rng = np.random.default_rng(0)
    names = np.array([f"m{i:04d}" for i in range(series)])
    for d in range(days):
        ts = 1_780_000_000 + (d * per + np.arange(per)) * 60
        x = rng.normal(size=(per * series, N_F))
        df = pl.DataFrame(
            {"timestamp": np.repeat(ts, series) * 1_000_000_000,
             "series": np.tile(names, per),
             **{f"s{j}": x[:, j] for j in range(N_F)}}  # fmt: skip
        ).with_columns(pl.col("timestamp").cast(pl.Datetime("ns", "UTC")))
        p = out / f"date=day{d:03d}" / "part-0.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        df.write_parquet(p, row_group_size=200_000)
    (out / "_done").write_text("")
    return out


def child(code: str, *args: str, cores: int = 0) -> dict:
    """Run ``code`` in a child process (confined to its first ``cores`` cores, Linux)."""
    confine = None
    if cores:
        mask = sorted(os.sched_getaffinity(0))[:cores]
        confine = lambda: os.sched_setaffinity(0, mask)  # noqa: E731
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       preexec_fn=confine)  # fmt: skip
    if r.returncode:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kernel-rows", type=int, default=400_000)
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "anomae-size"))
    ap.add_argument("--dask", nargs="*", default=None, metavar="WORKERS",
                    help="also score the first size on `--dask local:N` for each N given "
                    "(e.g. --dask 1c 1 2 1c 1 2), with the speed-up over the first entry's "
                    "mean; 'Nc' runs local:N confined to N cores ('1c': one worker on one "
                    "core, the scaling baseline), 'N' on all of this process's cores")
    a = ap.parse_args()
    from score_bench import reference_model_in

    folder = Path(a.folder)
    model = reference_model_in(folder)

    def kernel_rate() -> float:
        """The bare kernel's windows/s, the fastest of one session of ``threads``
        onnxruntime threads that spin between calls (its default) or sleep, and of
        ``threads`` calls side by side on one-thread sessions (what ``score_files`` does
        on CPU)."""
        rates = {m: child(CHILD_KERNEL, str(model), str(a.threads), str(a.kernel_rows), m)[
            "windows_per_s"] for m in KERNEL_MODES}  # fmt: skip
        print("bare kernel, windows/s: " + ", ".join(f"{m} {r:,.0f}" for m, r in rates.items()),
              flush=True)  # fmt: skip
        return max(rates.values())

    kernel = kernel_rate()
    rows_out = []
    for n in a.rows:
        t0 = time.perf_counter()
        data = generate(folder, n, a.series, a.days)
        gen = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(dir=folder) as out:
            r = child(CHILD_SCORE, str(model), str(data), out, str(a.threads))
        r["gen_s"] = gen
        rows_out.append((n, r))
    k2 = kernel_rate()
    kern = (kernel + k2) / 2
    print(f"bare kernel: {kern:,.0f} windows/s (before {kernel:,.0f}, after {k2:,.0f}); "
          f"{a.series} series, {a.days} day files, {a.threads} threads")  # fmt: skip
    print(f"{'rows':>12} {'windows':>12} {'seconds':>8} {'rows/s':>10} {'vs kernel':>9} "
          f"{'peak RSS MiB':>12} {'RSS vs first':>12}")
    base = rows_out[0][1]["hwm_kib"]
    for _, r in rows_out:
        rate = r["windows"] / r["seconds"]
        print(f"{r['rows']:>12,} {r['windows']:>12,} {r['seconds']:>8.1f} "
              f"{r['rows'] / r['seconds']:>10,.0f} {rate / kern:>9.2f} "
              f"{r['hwm_kib'] / 1024:>12,.0f} {r['hwm_kib'] / base:>12.2f}")  # fmt: skip
    if a.dask:
        n = a.rows[0]
        data = generate(folder, n, a.series, a.days)
        runs = []
        for token in a.dask:  # an entry named twice runs twice: alternate on a busy machine
            w, confined = int(token.rstrip("c")), token.endswith("c")
            with tempfile.TemporaryDirectory(dir=folder) as out:
                r = child(CHILD_DASK, str(model), str(data), out, str(w),
                          cores=w if confined else 0)  # fmt: skip
            # the bare kernel as w one-thread workers run it (w calls side by side), right
            # after: how far the cores themselves scale bounds the cluster's speed-up
            r["kernel"] = child(CHILD_KERNEL, str(model), str(w), str(a.kernel_rows * w),
                                "side", cores=w if confined else 0)["windows_per_s"]
            runs.append((token, r))
        print(f"--dask local:N, one-thread worker processes each bound to its share of the "
              f"cores, {n:,} rows (driver's planning and merge included; a cluster's "
              "start-up not); 'Nc': confined to N cores; 'kernel': the bare kernel as N "
              "one-thread calls side by side, measured after each run, and its own "
              "speed-up, which bounds the cluster's:")  # fmt: skip
        print(f"{'workers':>8} {'seconds':>8} {'rows/s':>10} {'vs first':>9} "
              f"{'kernel':>10} {'kernel vs first':>15} {'share':>6}")
        first = np.mean([r["seconds"] for w, r in runs if w == a.dask[0]])
        k_first = np.mean([r["kernel"] for w, r in runs if w == a.dask[0]])
        for w, r in runs:
            speed, k_speed = first / r["seconds"], r["kernel"] / k_first
            print(f"{w:>8} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>10,.0f} "
                  f"{speed:>9.2f} {r['kernel']:>10,.0f} {k_speed:>15.2f} "
                  f"{speed / k_speed:>6.2f}")

if __name__ == "__main__":
    main()
