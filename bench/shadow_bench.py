"""CPU per reading of the monitor with and without a ``--shadow`` model, in one run.

Builds two dense AEs of the same shape with different random weights (the current model
and the candidate; :mod:`score_bench`'s ``random_model``, default ``anomae train``'s
32-row window and 256-64 encoder), thresholds at their 99th percentile, and a JSON-lines
file of S series x F features. Then replays the file through ``Monitor`` (file source,
blocking, nothing dropped, one onnxruntime thread) ``--rounds`` times each without and
with the shadow, alternating, and measures the process CPU time (user + system, all
threads) per reading. The shadow scores the same window batches with a second onnxruntime
call and runs its own post-rules, so its cost is the scoring share of the pipeline, not a
second pass over the readings; the target is a ratio <= 1.9.

    python bench/shadow_bench.py [--events 300000] [--series 100] [--features 8] [--rounds 3]

The machine may be shared: CPU time is less sensitive to that than wall time, but caches and
frequency are not; read the ratio (median of the rounds) rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def replay(model: Path, events: Path, shadow: Path | None, batch_size: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry

    from anomae.detector import Detector
    from anomae.monitor.daemon import Monitor, MonitorOptions
    from anomae.monitor.sources.files import FileSource

    det = Detector.load(model, threads=1)
    opts = MonitorOptions(
        batch_size=batch_size,
        stats_log_seconds=0,
        shadow=None if shadow is None else str(shadow),
    )
    mon = Monitor(det, FileSource(str(events)), CollectorRegistry(), opts,
                  loader=lambda p: Detector.load(p, threads=1))  # fmt: skip
    cpu0, t0 = time.process_time(), time.perf_counter()
    mon.run(threading.Event())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    n = mon.metrics.stats.received
    assert mon.metrics.stats.windows_scored > 0 and not sum(mon.metrics.stats.dropped.values())
    return {"cpu_us": cpu / n * 1e6, "wall_us": wall / n * 1e6, "readings": float(n)}


def main() -> None:
    from monitor_bench import calibrate, write_events
    from score_bench import random_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--series", type=int, default=100)
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--hidden", default="256,64")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    hidden = tuple(int(h) for h in args.hidden.split(","))
    with tempfile.TemporaryDirectory(prefix="anomae-shadow-bench-") as tmp:
        folder = Path(tmp)
        events = folder / "events.jsonl"
        values = write_events(events, args.events, args.series, args.features)
        models = []
        for name, seed in (("current", 0), ("candidate", 1)):
            path = folder / f"{name}.onnx"
            random_model(path, args.window, hidden, args.features, seed)
            calibrate(path, values)
            models.append(path)
        current, candidate = models
        rows: dict[str, list[dict[str, float]]] = {"alone": [], "with shadow": []}
        replay(current, events, candidate, args.batch_size)  # warm-up: page cache, imports
        for _ in range(args.rounds):
            rows["alone"].append(replay(current, events, None, args.batch_size))
            rows["with shadow"].append(replay(current, events, candidate, args.batch_size))
    cpus = os.cpu_count()
    print(f"# {args.events:,} readings, {args.series} series x {args.features} features, window "
          f"{args.window}, hidden {args.hidden}, batch {args.batch_size}, 1 onnxruntime thread, "
          f"{cpus} CPUs (shared machine)")  # fmt: skip
    print(f"{'run':<14}{'CPU us/reading (rounds)':>34}{'median':>10}{'wall us/reading':>18}")
    med = {}
    for name, runs in rows.items():
        cpu = [r["cpu_us"] for r in runs]
        med[name] = statistics.median(cpu)
        wall = statistics.median(r["wall_us"] for r in runs)
        rounds = ", ".join(f"{c:.2f}" for c in cpu)
        print(f"{name:<14}{rounds:>34}{med[name]:>10.2f}{wall:>18.2f}")
    ratios = [w["cpu_us"] / a["cpu_us"] for a, w in zip(rows["alone"], rows["with shadow"],
                                                         strict=True)]  # fmt: skip
    print(f"CPU per reading with / without the shadow: {statistics.median(ratios):.2f}x "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.9x)")  # fmt: skip


if __name__ == "__main__":
    main()
