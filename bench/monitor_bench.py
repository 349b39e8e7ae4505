"""Streaming monitor throughput, latency and memory: JSON-lines replay of S series x F features.

Builds a dense AE with random weights (default: ``anomae train``'s defaults, a 32-row window
and 256-64 encoder; ``--window 64 --hidden 512,256,64`` is DESIGN.md's reference model), a
threshold at the 99th percentile of its scores (about 1 % anomalous windows, so post-rules
and events do real work), and a JSON-lines file of readings, all series interleaved in time
order. Then, in this process, with one onnxruntime thread:

1. **replay**: ``Monitor`` reads the file as fast as it can (``--source file:...``; blocking,
   nothing dropped): events/s end to end. Latency here is mostly queue wait (the reader runs
   ahead by up to ``--queue-size`` readings) and is shown for completeness.
   **replay + sink** is the same with ``--sink`` (one JSON line per window), the replay tool.
2. **paced**: the same lines offered at ``--rate`` events/s in 5 ms chunks by a non-blocking
   source (as a live broker would; overload shows as drops): p50/p99 event-to-score latency.
3. **baseline**: a per-event loop (``json.loads``, ``RingBuffer.push``, one onnxruntime call
   per window), the anchor the issue quotes (~13.7k events/s).

``--likelihood`` adds **replay + likelihood**: the same replay with ``anomae monitor
--likelihood`` (default settings), and prints its events/s as a ratio to the plain replay's.
``--health-cost`` replays three times each with the model health metrics off and on
(alternating) and prints the median ratio.

RSS is sampled during the replay: "warm" after the first 20 % of the events, "end" at the
end; flat memory means they match.

    python bench/monitor_bench.py [--events 1000000] [--series 1000] [--rate 100000]
                                  [--likelihood] [--health-cost]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from anomae.monitor.sources.base import RawBatch, Source  # noqa: E402


def calibrate(path: Path, values: np.ndarray) -> None:
    """Threshold at the 99th percentile of the model's scores on ``values`` [rows, F]."""
    from anomae.detector import Detector
    from anomae.modelfile import read_card, rewrite_card
    from anomae.spec import Threshold

    det = Detector.load(path, threads=1)
    q = float(np.nanquantile(det.score_series(values).score, 0.99))
    card = read_card(path)
    rewrite_card(path, card.with_threshold(Threshold(q, "quantile", {"q": 0.99}, 1000, 0.01)))


def write_events(path: Path, n: int, n_series: int, n_f: int, seed: int = 0) -> np.ndarray:
    """AR(1) sensor values (smooth, like real ones), series interleaved; returns one series'
    values for calibration."""
    rng = np.random.default_rng(seed)
    rounds = -(-n // n_series)
    x = np.zeros((n_series, n_f))
    t0 = 1_767_571_200
    with open(path, "w") as f:
        buf = []
        out = np.empty((rounds, n_f))
        for r in range(rounds):
            x = 0.9 * x + 0.44 * rng.normal(size=x.shape)
            out[r] = x[0]
            vals = np.round(x, 4).tolist()
            for s in range(min(n_series, n - r * n_series)):
                v = ", ".join(f'"s{j}": {vals[s][j]}' for j in range(n_f))
                buf.append(f'{{"series": "m{s}", "ts": {t0 + r}, "values": {{{v}}}, "seq": {r}}}\n')
            if len(buf) > 100_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    return out.astype(np.float32)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PacedSource(Source):
    """Offers the file's lines at ``rate`` per second, in 5 ms chunks, never blocking (a
    :class:`Source`, so it has every hook the daemon asks of a source)."""

    kind = "paced"

    def __init__(self, lines: list[bytes], rate: float) -> None:
        super().__init__()
        self.lines, self.rate = lines, rate
        self.offered = 0

    def run(self, emit, stop) -> None:  # type: ignore[no-untyped-def]
        self.up = True
        t0 = time.monotonic()
        i = 0
        while i < len(self.lines) and not stop.is_set():
            due = min(len(self.lines), int((time.monotonic() - t0) * self.rate))
            if due > i:
                emit(RawBatch(self.lines[i:due]), False)
                self.offered += due - i
                i = due
            time.sleep(0.005)
        self.up = False


def run_monitor(model: Path, source, args, n_events: int, sink=None, likelihood=None, health=True) -> dict:  # type: ignore[no-untyped-def]  # noqa: E501
    from prometheus_client import CollectorRegistry

    from anomae.detector import Detector
    from anomae.monitor.daemon import Monitor, MonitorOptions

    det = Detector.load(model, threads=args.threads)
    lat: list[np.ndarray] = []
    rss: dict[str, float] = {"start": rss_mb()}
    mon = Monitor(
        det,
        source,
        CollectorRegistry(),
        MonitorOptions(
            batch_size=args.batch_size,
            flush_ms=args.flush_ms,
            stats_log_seconds=0,
            likelihood=likelihood,
            health=health,
        ),
        sink=sink,
        observer=lat.append,
    )
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            if "warm" not in rss and mon.metrics.stats.received >= 0.2 * n_events:
                rss["warm"] = rss_mb()
            rss["peak"] = max(rss.get("peak", 0.0), rss_mb())

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    mon.run(threading.Event())
    seconds = time.perf_counter() - t0
    done.set()
    rss["end"] = rss_mb()
    lat_all = np.concatenate(lat) if lat else np.zeros(1)
    st = mon.metrics.stats
    return {
        "seconds": seconds,
        "events_per_s": st.received / seconds,
        "received": st.received,
        "scored": st.windows_scored,
        "dropped": sum(st.dropped.values()),
        "p50_ms": float(np.percentile(lat_all, 50) * 1e3),
        "p99_ms": float(np.percentile(lat_all, 99) * 1e3),
        "rss": rss,
    }


def baseline(model: Path, lines: list[bytes], seconds: float = 5.0) -> float:
    """Per-event loop: parse, ring buffer, one onnxruntime call per window."""
    from anomae.detector import Detector
    from anomae.windows import RingBuffer

    det = Detector.load(model, threads=1)
    feats = det.card.features
    bufs: dict[str, RingBuffer] = {}
    t0 = time.perf_counter()
    n = 0
    for line in lines:
        ev = json.loads(line)
        buf = bufs.get(ev["series"])
        if buf is None:
            buf = bufs[ev["series"]] = RingBuffer(det.card.window, len(feats))
        w = buf.push(np.array([ev["values"].get(f, np.nan) for f in feats], np.float32))
        if w is not None:
            det.run(w[None])
        n += 1
        if n % 1000 == 0 and time.perf_counter() - t0 > seconds:
            break
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--hidden", default="256,64")
    ap.add_argument("--rate", type=float, default=100_000)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--flush-ms", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--likelihood", action="store_true", help="also replay with the anomaly likelihood"
    )
    ap.add_argument(
        "--health-cost",
        action="store_true",
        help="replay with the model health metrics off and on, alternating 3 rounds each",
    )
    ap.add_argument("--skip", default="", help="comma list of replay,sink,paced,baseline to skip")
    args = ap.parse_args()
    from anomae.monitor.app import tune_malloc

    tune_malloc()  # as `anomae monitor` does
    skip = set(args.skip.split(","))
    from anomae.monitor.sources.files import FileSource

    with tempfile.TemporaryDirectory() as tmp:
        model, data = Path(tmp) / "model.onnx", Path(tmp) / "events.jsonl"
        hidden = tuple(int(h) for h in args.hidden.split(","))
        # torch in a child process: it would add ~300 MiB to this process's RSS
        code = "import sys; sys.argv = sys.argv[1:]; import score_bench as b; " + (
            f"b.random_model(__import__('pathlib').Path({str(model)!r}), {args.window}, "
            f"{hidden!r}, {args.features})"
        )
        subprocess.run(
            [sys.executable, "-c", code, "x"],
            check=True,
            cwd=Path(__file__).parent,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        t = time.perf_counter()
        cal = write_events(data, args.events, args.series, args.features)
        calibrate(model, cal)
        print(
            f"# wrote {args.events:,} events ({data.stat().st_size / 2**20:.0f} MiB) in "
            f"{time.perf_counter() - t:.1f}s; model: window {args.window}, hidden {hidden}, "
            f"{os.cpu_count()} CPUs, onnxruntime threads {args.threads}",
            flush=True,
        )
        rows = []
        if "replay" not in skip:
            r = run_monitor(model, FileSource(str(data)), args, args.events)
            rows.append(("replay (file, blocking)", r))
        if args.likelihood:
            from anomae.likelihood import Likelihood

            r = run_monitor(
                model, FileSource(str(data)), args, args.events, likelihood=Likelihood()
            )
            rows.append(("replay + --likelihood", r))
        if args.health_cost:
            for _ in range(3):
                for on in (False, True):
                    r = run_monitor(model, FileSource(str(data)), args, args.events, health=on)
                    rows.append((f"replay, health {'on' if on else 'off'}", r))
        if "sink" not in skip:
            from anomae.monitor.sink import JsonlSink

            sink = JsonlSink(Path(tmp) / "out.jsonl")
            r = run_monitor(model, FileSource(str(data)), args, args.events, sink)
            rows.append(("replay + --sink (a JSON line per window)", r))
            sink.close()
        lines = data.read_bytes().splitlines()
        if "paced" not in skip:
            r = run_monitor(model, PacedSource(lines, args.rate), args, args.events)
            rows.append((f"paced at {args.rate:,.0f}/s (non-blocking)", r))
        base = baseline(model, lines) if "baseline" not in skip else float("nan")

    def ratio(x: float) -> str:
        return f"{x / base:.1f}x" if base == base else "-"

    print()
    print(
        "| run | events/s | vs per-event loop | p50 ms | p99 ms | dropped "
        "| RSS MiB warm → end (peak) |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in rows:
        rss = r["rss"]
        print(
            f"| {name} | {r['events_per_s']:,.0f} | {ratio(r['events_per_s'])} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['dropped']:,} | "
            f"{rss.get('warm', float('nan')):.0f} → {rss['end']:.0f} ({rss.get('peak', 0):.0f}) |"
        )
    if base == base:
        print(f"| per-event onnxruntime loop (baseline) | {base:,.0f} | 1.0x | | | | |")
    rate = {name: r["events_per_s"] for name, r in rows}
    on = [r["events_per_s"] for name, r in rows if name == "replay, health on"]
    off = [r["events_per_s"] for name, r in rows if name == "replay, health off"]
    if on and off:
        x = float(np.median(on) / np.median(off))
        print(f"\nhealth on / off (medians of 3): {x:.3f} (throughput cost {100 * (1 - x):.1f} %)")
    if "replay + --likelihood" in rate and "replay (file, blocking)" in rate:
        x = rate["replay + --likelihood"] / rate["replay (file, blocking)"]
        print(f"\nlikelihood / plain replay: {x:.3f} (throughput cost {100 * (1 - x):.1f} %)")


if __name__ == "__main__":
    main()
