"""Where ``anomae score``'s CPU goes besides the kernel: CPU seconds per million rows, by thread.

Scores a generated dataset (:func:`score_size.generate`: day-partitioned Parquet, every
series in every file, 8 float64 features) with the reference model through
:func:`anomae.score.score_files` in a child process, and reads every thread's CPU time
(``/proc/self/task/*/stat``, sampled while it runs: a thread that ends keeps its last
sample) and the process's (``getrusage``, every thread). The bare kernel
(``Detector.score_series`` on rows in memory, the same threads) runs in another child.
CPU time, not wall time, is what to read on a shared machine: on 2 cores every
CPU-second of host work is taken from onnxruntime.

``score_files`` runs onnxruntime's calls in ``--threads`` worker threads
(``anomae-score``), one onnxruntime thread each, so each call runs in the thread that
makes it and is timed there (``time.thread_time``): the workers' host share is their CPU
minus that. Two parts are also
timed where they run, whatever the thread: the scores tables made of the scorer's pieces
(:meth:`~anomae.stream_score.StreamScorer.table`, in the Parquet writer's threads) and the
batches read and split by series (the read-ahead thread, the first batch included).
``--profile`` adds the main thread's cProfile (top functions by own time).

    python bench/score_cpu.py [--rows 4000000] [--series 1000] [--days 1] [--threads 1]

The children run as ``python -c``, which puts the working directory first on ``sys.path``:
to measure another tree's ``anomae`` (an A/B), run from outside every checkout with
``PYTHONPATH=TREE``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHILD = """
import json, os, resource, sys, threading, time
model, data, out, threads, profile = sys.argv[1:6]
seen = {}  # tid -> [name, cpu seconds]
tick = os.sysconf("SC_CLK_TCK")

def sample():
    names = {t.native_id: t.name for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        f = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(f[11]) + int(f[12])) / tick
        name = names.get(int(tid)) or seen.get(tid, [comm])[0]
        seen[tid] = [name if int(tid) != os.getpid() else "main", cpu]

stop = threading.Event()
def sampler():
    while not stop.wait(1.0):
        sample()
threading.Thread(target=sampler, name="sampler", daemon=True).start()

import anomae.score
from anomae.detector import Detector
from anomae.score import ScoreOptions, score_files
kernel = [0.0]  # onnxruntime's CPU, all of it in the calling threads (one-thread sessions)
_run = Detector.run
lock = threading.Lock()
def timed_run(self, *a, **k):
    t = time.thread_time()
    try:
        return _run(self, *a, **k)
    finally:
        with lock:
            kernel[0] += time.thread_time() - t
Detector.run = timed_run
import anomae.batches, anomae.stream_score
parts = {"scores tables": 0.0, "batches read": 0.0}  # CPU of these, in whichever thread
_table = anomae.stream_score.StreamScorer.table
def timed_table(self, pieces):
    t = time.thread_time()
    try:
        return _table(self, pieces)
    finally:
        with lock:
            parts["scores tables"] += time.thread_time() - t
anomae.stream_score.StreamScorer.table = timed_table
_batches = anomae.batches._batches
def timed_batches(*a, **k):
    it = _batches(*a, **k)
    while True:
        t = time.thread_time()
        try:
            x = next(it)
        except StopIteration:
            return
        finally:
            with lock:
                parts["batches read"] += time.thread_time() - t
        yield x
anomae.batches._batches = timed_batches
start = []  # CPU up to the first batch (model load, planning) and the kernel's then
base = {}  # each thread's CPU then
_push = anomae.score._push_batch
def first_push(*a, **k):
    if not start:
        sample()
        base.update({tid: cpu for tid, (_, cpu) in seen.items()})
        r = resource.getrusage(resource.RUSAGE_SELF)
        start.extend([r.ru_utime + r.ru_stime - (r0.ru_utime + r0.ru_stime), kernel[0]])
    return _push(*a, **k)
anomae.score._push_batch = first_push
def run():
    return score_files(model, [data], out + "/scores.parquet", out + "/events.parquet",
                       opts=ScoreOptions(threshold=1e9, progress=False),
                       threads=int(threads), force=True)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
if profile == "1":
    import cProfile, pstats, io
    pr = cProfile.Profile()
    s = pr.runcall(run)
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(25)
    print(buf.getvalue(), file=sys.stderr)
else:
    s = run()
wall = time.perf_counter() - t0
sample()
stop.set()
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
size = os.path.getsize(out + "/scores.parquet")
print(json.dumps({"rows": s.n_rows, "windows": s.n_windows, "wall": wall, "cpu": cpu,
                  "threads": [[n, c - base.get(t, 0.0)] for t, (n, c) in seen.items()],
                  "bytes": size, "kernel": kernel[0] - start[1], "start": start[0],
                  "cpu_after": cpu - start[0], "parts": parts}))
"""

CHILD_KERNEL = """
import json, resource, sys
import numpy as np
from anomae.detector import Detector
det = Detector.load(sys.argv[1], threads=1)  # as score_files' workers: CPU per window
x = np.random.default_rng(0).normal(size=(int(sys.argv[3]), 8)).astype(np.float32)
det.score_series(x[:5000])
r0 = resource.getrusage(resource.RUSAGE_SELF)
n = det.score_series(x).score.shape[0]
r1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
print(json.dumps({"windows": n, "cpu": cpu}))
"""


def child(code: str, *args: str, stderr: bool = False) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)
    if stderr:
        print(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def group(name: str) -> str:
    """Threads by role: a pool's threads (``polars-3``, ``tokio-rt-worker``) as one."""
    return re.sub(r"[-_]?\d+$", "", name.rstrip("-")) or name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=4_000_000)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kernel-rows", type=int, default=400_000)
    ap.add_argument("--repeat", type=int, default=1, help="e2e runs (each reported)")
    ap.add_argument("--profile", action="store_true", help="cProfile the main thread")
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "anomae-size"))
    a = ap.parse_args()
    from score_bench import reference_model_in
    from score_size import generate

    folder = Path(a.folder)
    model = reference_model_in(folder)
    data = generate(folder / f"days-{a.days}-series-{a.series}", a.rows, a.series, a.days)
    k = child(CHILD_KERNEL, str(model), str(a.threads), str(a.kernel_rows))
    k_us = k["cpu"] / k["windows"] * 1e6
    print(f"kernel: {k_us:.2f} CPU-us per window (one thread, as each worker's, "
          f"{k['windows']:,} windows in memory)")  # fmt: skip
    for _ in range(a.repeat):
        with tempfile.TemporaryDirectory(dir=folder) as out:
            r = child(CHILD, str(model), str(data), out, str(a.threads),
                      "1" if a.profile else "0", stderr=a.profile)  # fmt: skip
        per = 1e6 / r["rows"]
        kern = r["kernel"]  # timed around each onnxruntime call, in the worker running it
        parts: dict[str, float] = {}
        for name, cpu in r["threads"]:
            parts[group(name)] = parts.get(group(name), 0.0) + cpu
        parts.pop("sampler", None)  # this script's
        workers_host = parts.pop("anomae-score", 0.0) - kern
        seen = sum(parts.values()) + workers_host + kern
        total = r["cpu_after"] - sum(c for n, c in r["threads"] if n == "sampler")
        print(f"{r['rows']:,} rows, {r['windows']:,} windows, {a.series} series, {a.days} "
              f"day files: wall {r['wall']:.1f} s, scores file {r['bytes'] / 2**20:.1f} MiB; "
              f"kernel in the run {1e6 * kern / r['windows']:.2f} CPU-us per window")  # fmt: skip
        print(f"{'part':<22} {'CPU s':>7} {'CPU-us/row':>10} {'% of kernel':>11}")
        rows = [("kernel", kern), ("workers' host", workers_host),
                *sorted(parts.items()), ("threads not sampled", total - seen),
                ("end to end", total), ("host (end - kernel)", total - kern),
                ("startup (load, plan)", r["start"]),
                *((f"of which {k}", v) for k, v in r["parts"].items())]  # fmt: skip
        for name, cpu in rows:
            print(f"{name:<22} {cpu:>7.2f} {cpu * per:>10.3f} {100 * cpu / kern:>10.1f}%")


if __name__ == "__main__":
    main()
