"""Monitor throughput end to end from Kafka, against the same readings replayed from a file.

Builds ``monitor_bench``'s dense AE (random weights, 32-row window) and N readings of S series
(JSON lines, series interleaved), produces them into a topic keyed by series, then runs the
``Monitor`` in this process twice with one onnxruntime thread: once on ``--source file:...``
(the replay ceiling) and once on ``--source kafka://.../topic`` from the start of the topic.
Time runs from the first reading received (a consumer group join takes seconds) until every
reading is parsed and the queue is empty. Without ``--brokers`` the broker
is librdkafka's in-process mock cluster (``test.mock.num.brokers``), not a real Kafka: its
broker threads share this machine's cores with the monitor.

The mock cluster keeps a bounded log per partition (it drops old segments): beyond about
100,000 readings some are gone before the consumer reads them; the table shows ``received``.

    python bench/kafka_bench.py [--events 100000] [--series 1000] [--brokers HOST:PORT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitor_bench import calibrate, write_events  # noqa: E402
from score_bench import random_model  # noqa: E402


def produce(brokers: str, topic: str, lines: list[bytes]) -> float:
    import confluent_kafka as ck

    p = ck.Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.size": 1_000_000})
    t0 = time.perf_counter()
    for line in lines:
        key = line[12 : line.index(b'"', 12)]  # {"series": "m7", ...
        while True:
            try:
                p.produce(topic, value=line, key=key)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0
    return time.perf_counter() - t0


def run(model: Path, source: Any, n: int) -> dict[str, float]:
    from prometheus_client import CollectorRegistry

    from anomae.detector import Detector
    from anomae.monitor.daemon import Monitor, MonitorOptions

    det = Detector.load(model, threads=1)
    mon = Monitor(det, source, CollectorRegistry(), MonitorOptions(stats_log_seconds=0))
    st, stop = mon.metrics.stats, threading.Event()
    th = threading.Thread(target=lambda: mon.run(stop), daemon=True)
    th.start()
    while th.is_alive() and not st.received:  # a group join takes seconds: not counted
        time.sleep(0.001)
    t0, first = time.perf_counter(), st.received
    last, idle_since = st.received, time.perf_counter()
    while th.is_alive() and st.received < n:
        time.sleep(0.005)
        if st.received != last:
            last, idle_since = st.received, time.perf_counter()
        elif time.perf_counter() - idle_since > 3.0:  # the mock trims old log segments
            break
    while th.is_alive() and mon.queue.depth:
        time.sleep(0.005)
    stop.set()
    th.join()
    seconds = (idle_since if st.received < n else time.perf_counter()) - t0
    return {"received": st.received - first, "accepted": st.accepted, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--features", type=int, default=8)
    ap.add_argument("--brokers", help="a real broker; default: librdkafka's mock cluster")
    args = ap.parse_args()
    import confluent_kafka as ck

    from anomae.monitor.sources.files import FileSource
    from anomae.monitor.sources.kafka import KafkaSource

    owner, fast = None, {}
    brokers = args.brokers
    if brokers is None:
        owner = ck.Producer({"test.mock.num.brokers": 1})
        b = next(iter(owner.list_topics(timeout=10).brokers.values()))
        brokers = f"{b.host}:{b.port}"
        fast = {"kafka.group.protocol": "consumer"}  # the mock's classic join waits 3 s
    with tempfile.TemporaryDirectory() as tmp:
        model, feed = Path(tmp) / "model.onnx", Path(tmp) / "feed.jsonl"
        random_model(model, 32, (256, 64), args.features)
        calibrate(model, write_events(feed, args.events, args.series, args.features))
        lines = feed.read_bytes().splitlines()
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        produce_s = produce(brokers, topic, lines)
        rows = [("file replay", run(model, FileSource(str(feed)), len(lines)))]
        src = KafkaSource.from_url(
            f"kafka://{brokers}/{topic}", offset_reset="earliest", group=topic, **fast
        )
        rows.append(("kafka", run(model, src, len(lines))))
    print(f"{len(lines):,} readings, {args.series} series x {args.features} features; "
          f"produced in {produce_s:.1f} s ({'mock cluster' if owner else brokers})")  # fmt: skip
    print(f"{'source':<12} {'received':>10} {'accepted':>10} {'seconds':>8} {'readings/s':>11}")
    for name, r in rows:
        rate = r["received"] / r["seconds"]
        print(
            f"{name:<12} {r['received']:>10,.0f} {r['accepted']:>10,.0f} "
            f"{r['seconds']:>8.2f} {rate:>11,.0f}"
        )
    print(json.dumps({name: round(r["received"] / r["seconds"]) for name, r in rows}))


if __name__ == "__main__":
    main()
