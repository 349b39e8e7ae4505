"""KafkaSource against librdkafka's mock cluster, NOT a real Kafka broker: a producer created
with ``test.mock.num.brokers`` runs in-process mock brokers on 127.0.0.1 that speak the Kafka
protocol (topics auto-created with 4 partitions, consumer groups, offsets). No Kafka
distribution can be downloaded where the tests run. Consumers join with
``kafka.group.protocol=consumer`` (KIP-848) where speed matters: the mock's classic group
protocol waits 3 s before the first assignment. Without confluent-kafka these tests skip,
unless ANOMAE_REQUIRE_SERVERS=1 (CI), where they fail."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from test_monitor_daemon import FakeDetector

from anomae.monitor.app import MonitorError, open_source
from anomae.monitor.daemon import Monitor
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.sink import JsonlSink
from anomae.monitor.sources.base import Emit, RawBatch, Source
from anomae.monitor.sources.files import FileSource
from anomae.monitor.sources.kafka import KafkaSource

REQUIRE = os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1"
FAST = {"kafka.group.protocol": "consumer"}


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """(bootstrap address, producer) of a mock cluster alive for the module."""
    try:
        import confluent_kafka as ck
    except ImportError:
        if REQUIRE:
            pytest.fail("confluent-kafka is not installed (ANOMAE_REQUIRE_SERVERS=1)")
        pytest.skip("confluent-kafka not installed")
    owner = ck.Producer({"test.mock.num.brokers": 1, "logger": _quiet()})
    broker = next(iter(owner.list_topics(timeout=10).brokers.values()))
    boot = f"{broker.host}:{broker.port}"
    producer = ck.Producer({"bootstrap.servers": boot, "linger.ms": 5, "logger": _quiet()})
    yield boot, producer
    producer.flush(10)
    owner.flush(1)


def _quiet() -> Any:
    import logging

    return logging.getLogger("tests.kafka")


def produce(cluster: Any, topic: str, items: list[tuple[str | None, bytes]]) -> None:
    _, producer = cluster
    for key, value in items:
        producer.produce(topic, value=value, key=None if key is None else key.encode())
        producer.poll(0)
    assert producer.flush(10) == 0


def reading(
    series: str, ts: float, temp: float, seq: int | None = None, named: bool = True
) -> bytes:
    obj: dict[str, Any] = {"ts": ts, "values": {"temp": temp, "rpm": 0.0}}
    if named:
        obj["series"] = series
    if seq is not None:
        obj["seq"] = seq
    return json.dumps(obj).encode()


def source(cluster: Any, topic: str, **options: Any) -> KafkaSource:
    opts: dict[str, Any] = {"offset_reset": "earliest", "stats_interval_ms": 100, **FAST}
    opts.update(options)
    return KafkaSource.from_url(f"kafka://{cluster[0]}/{topic}", **opts)


class Collector:
    """An ``emit`` that keeps what it accepts; refuses (like a stopping daemon) after
    ``capacity`` batches."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity, self.items = capacity, list[RawBatch]()

    def __call__(self, item: object, block: bool) -> bool:
        assert isinstance(item, RawBatch) and block is True  # Kafka keeps the backlog
        if self.capacity is not None and len(self.items) >= self.capacity:
            return False
        self.items.append(item)
        return True

    def payloads(self) -> list[bytes]:
        return [p for b in self.items for p in b.payloads]


@contextmanager
def running(src: Source, emit: Emit) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=src.run, args=(emit, stop), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(10.0)
        assert not thread.is_alive(), "run did not return after stop"
        src.close()


def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "brokers", "topic", "tls"),
    [
        ("kafka://broker:9092/readings", "broker:9092", "readings", False),
        ("kafka://broker/readings", "broker:9092", "readings", False),
        ("kafkas://broker/plant.readings", "broker:9093", "plant.readings", True),
        ("kafka://a:1,b/t", "a:1,b:9092", "t", False),
        ("kafka://[::1]:19092/t", "[::1]:19092", "t", False),
    ],
)
def test_from_url(url: str, brokers: str, topic: str, tls: bool) -> None:
    pytest.importorskip("confluent_kafka")
    s = KafkaSource.from_url(url)
    assert (s.brokers, s.topic, s.tls, s.group) == (brokers, topic, tls, "anomae-monitor")


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("http://b/t", {}, "not a Kafka URL"),
        ("kafka://b:9092/", {}, "needs a topic"),
        ("kafka:///t", {}, "no broker"),
        ("kafka://b:x/t", {}, "bad broker"),
        ("kafka://b/t", {"series_from": "topic"}, "series_from"),
        ("kafka://b/t", {"offset_reset": "smallest"}, "offset_reset"),
        ("kafka://b/t", {"batch": 0}, "batch"),
        ("kafka://b/t", {"group": ""}, "group"),
    ],
)
def test_from_url_rejects(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KafkaSource.from_url(url, **options)


def test_source_opts_reach_the_source_and_librdkafka() -> None:
    pytest.importorskip("confluent_kafka")
    s = open_source(
        "kafka://b/t", opts=["group=42", "kafka.fetch.wait.max.ms=50", "series_from=payload"]
    )
    assert isinstance(s, KafkaSource)
    assert s.group == "42" and s.series_from == "payload"
    conf = s._settings()
    assert conf["fetch.wait.max.ms"] == 50 and conf["group.id"] == "42"
    assert conf["enable.auto.offset.store"] is False  # offsets stored only once queued


def test_without_confluent_kafka_errors_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)
    with pytest.raises(ImportError, match=r"pip install 'anomae\[kafka\]'"):
        KafkaSource.from_url("kafka://b/t")
    with pytest.raises(MonitorError, match=r"pip install 'anomae\[kafka\]'"):
        open_source("kafka://b/t")


# -- against the mock cluster ---------------------------------------------------------------
def test_batches_by_key_keep_each_series_in_order(cluster: Any) -> None:
    topic = topic_name()
    sent = [(f"m{i % 3}", reading(f"m{i % 3}", 60.0 * i, i, named=False)) for i in range(300)]
    sent.append((None, reading("m9", 0.0, 1.0)))  # no key: the payload names the series
    produce(cluster, topic, sent)
    src, got = source(cluster, topic), Collector()
    with running(src, got):
        assert wait_for(lambda: len(got.payloads()) >= len(sent))
    for key in ("m0", "m1", "m2", None):
        mine = [b for b in got.items if b.series_hint == key]
        assert [p for b in mine for p in b.payloads] == [v for k, v in sent if k == key]
    assert src.received == len(sent) and src.errors == 0


def test_replay_scores_equal_the_file_source(cluster: Any, tmp_path: Path) -> None:
    """A demo-like stream (3 series, readings interleaved in time) through Kafka gives the
    same window scores as the same lines read from a file."""
    lines = [
        reading(f"m{s}", 60.0 * i, ((i * 7 + s * 3) % 11) / 5.0, seq=i)
        for i in range(400)
        for s in range(3)
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(lines) + b"\n")
    topic = topic_name()
    produce(cluster, topic, [(json.loads(v)["series"], v) for v in lines])

    def scores(src: Source, name: str, until: Callable[[Monitor], bool]) -> list[Any]:
        sink = JsonlSink(tmp_path / f"{name}.jsonl")
        mon = Monitor(FakeDetector(length=8), src, CollectorRegistry(), sink=sink)
        stop = threading.Event()
        th = threading.Thread(target=mon.run, args=(stop,), daemon=True)
        th.start()
        assert wait_for(lambda: until(mon) or not th.is_alive())
        stop.set()
        th.join(10)
        recs = [json.loads(x) for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        return sorted((r["series"], r["ts"], r["score"]) for r in recs if r["type"] == "window")

    expected = scores(FileSource(str(feed)), "file", lambda m: False)
    got = scores(source(cluster, topic), "kafka", lambda m: m.metrics.stats.accepted >= len(lines))
    assert len(expected) == 3 * (400 - 7)
    assert got == expected


def test_a_restart_before_the_commit_redelivers_and_the_repeats_are_dropped(
    cluster: Any,
) -> None:
    """The first consumer never commits (as if killed before the auto-commit): the second
    one of the same group reads everything again, and the monitor's series table drops the
    repeats (not newer than what it accepted), so each window is scored once."""
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    n = 200
    produce(cluster, topic, [("m1", reading("m1", 60.0 * i, 0.1)) for i in range(n)])

    class Restarted(Source):
        kind = "kafka"

        def __init__(self) -> None:
            super().__init__()
            no_commit = {"kafka.enable.auto.commit": False}
            self.first = source(cluster, topic, group=group, **no_commit)
            self.second = source(cluster, topic, group=group)

        def run(self, emit: Emit, stop: threading.Event) -> None:
            seen = [0]

            def counting(item: Any, block: bool) -> bool:
                seen[0] += len(item.payloads)
                return emit(item, block)

            stop_first = threading.Event()
            t = threading.Thread(target=self.first.run, args=(counting, stop_first))
            t.start()
            wait_for(lambda: seen[0] >= n)
            stop_first.set()
            t.join()
            self.up = True
            self.second.run(emit, stop)

    src = Restarted()
    mon = Monitor(FakeDetector(length=3), src, CollectorRegistry())
    stop = threading.Event()
    th = threading.Thread(target=mon.run, args=(stop,), daemon=True)
    th.start()
    st = mon.metrics.stats
    repeats = st.dropped
    assert wait_for(lambda: repeats["duplicate"] + repeats["out_of_order"] >= n)
    stop.set()
    th.join(10)
    assert st.received == 2 * n and st.accepted == n
    # the last repeat has the newest timestamp (duplicate), the earlier ones are older
    assert (repeats["duplicate"], repeats["out_of_order"]) == (1, n - 1)


def test_a_killed_consumer_is_read_again_a_cleanly_stopped_one_is_not(
    cluster: Any, tmp_path: Path
) -> None:
    """kill -9 of a consumer process after it queued readings but before the auto-commit:
    they come again. Stopped cleanly, the stored offsets are committed: nothing comes again."""
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    produce(cluster, topic, [("m1", reading("m1", 60.0 * i, 0.1, seq=i)) for i in range(50)])
    script = tmp_path / "consume.py"
    script.write_text(
        "import sys, threading\n"
        "from anomae.monitor.sources.kafka import KafkaSource\n"
        "src = KafkaSource.from_url(sys.argv[1], group=sys.argv[2], offset_reset='earliest',\n"
        "    **{'kafka.group.protocol': 'consumer', 'kafka.auto.commit.interval.ms': 60000})\n"
        "def emit(item, block):\n"
        "    for p in item.payloads: print(p.decode(), flush=True)\n"
        "    return True\n"
        "src.run(emit, threading.Event())\n"
    )
    url = f"kafka://{cluster[0]}/{topic}"

    def consume_and_kill(n: int) -> list[int]:
        proc = subprocess.Popen(
            [sys.executable, str(script), url, group], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        seqs = [json.loads(proc.stdout.readline())["seq"] for _ in range(n)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return seqs

    assert consume_and_kill(50) == list(range(50))
    assert consume_and_kill(50) == list(range(50))  # nothing was committed: all again
    src, got = source(cluster, topic, group=group), Collector()
    with running(src, got):
        assert wait_for(lambda: len(got.payloads()) >= 50)
    produce(cluster, topic, [("m1", reading("m1", 6e4, 0.1, seq=50))])
    again, got2 = source(cluster, topic, group=group), Collector()
    with running(again, got2):
        assert wait_for(lambda: len(got2.payloads()) >= 1)
        time.sleep(0.3)
    assert [json.loads(p)["seq"] for p in got2.payloads()] == [50]


def test_bad_messages_are_counted_by_reason(cluster: Any) -> None:
    topic = topic_name()
    items: list[tuple[str | None, bytes]] = [
        ("m1", reading("m1", 0.0, 0.1, named=False)),
        ("m1", b"{broken"),
        ("m1", b"[1, 2]"),
        (None, reading("x", 60.0, 0.1, named=False)),  # no key, no series
        ("m1", json.dumps({"ts": 120, "values": {"other": 1}}).encode()),
        ("m1", b""),  # an empty value
    ]
    produce(cluster, topic, items)
    mon = Monitor(FakeDetector(length=3), source(cluster, topic), CollectorRegistry())
    stop = threading.Event()
    th = threading.Thread(target=mon.run, args=(stop,), daemon=True)
    th.start()
    st = mon.metrics.stats
    assert wait_for(lambda: st.received >= len(items))
    stop.set()
    th.join(10)
    invalid = {k: v for k, v in st.invalid.items() if v}
    assert invalid == {"bad_json": 2, "not_object": 1, "missing_series": 1, "unknown_feature": 1}
    assert st.accepted == 1


def test_a_broker_that_goes_away_sets_up_to_zero_and_nothing_crashes() -> None:
    """A mock cluster of its own, destroyed while the monitor consumes from it: source_up
    goes from 1 to 0, librdkafka keeps retrying, and the monitor stops cleanly."""
    import gc

    import confluent_kafka as ck

    owner = ck.Producer({"test.mock.num.brokers": 1, "logger": _quiet()})
    broker = next(iter(owner.list_topics(timeout=10).brokers.values()))
    src = KafkaSource.from_url(
        f"kafka://{broker.host}:{broker.port}/t", stats_interval_ms=100, **FAST
    )
    reg = CollectorRegistry()
    mon = Monitor(FakeDetector(), src, reg)
    stop = threading.Event()
    th = threading.Thread(target=mon.run, args=(stop,), daemon=True)
    th.start()
    assert wait_for(lambda: reg.get_sample_value("anomae_source_up") == 1.0)
    del owner  # destroys the mock cluster: its brokers close
    gc.collect()
    assert wait_for(lambda: reg.get_sample_value("anomae_source_up") == 0.0)
    time.sleep(0.5)
    assert th.is_alive() and not src.up and src.last_error is not None
    stop.set()
    th.join(10)
    assert not th.is_alive()


def test_an_unreachable_broker_is_down_retried_and_stops_cleanly() -> None:
    pytest.importorskip("confluent_kafka")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    src = KafkaSource.from_url(f"kafka://127.0.0.1:{port}/t", stats_interval_ms=100, **FAST)
    reg = CollectorRegistry()
    mon = Monitor(FakeDetector(), src, reg)
    stop = threading.Event()
    th = threading.Thread(target=mon.run, args=(stop,), daemon=True)
    th.start()
    assert wait_for(lambda: src.last_error is not None)
    time.sleep(0.5)
    assert th.is_alive() and not src.up
    assert reg.get_sample_value("anomae_source_up") == 0.0
    assert reg.get_sample_value("anomae_source_lag_messages") == 0.0  # nothing assigned
    assert "Connection refused" in src.last_error or "down" in src.last_error
    stop.set()
    th.join(10)
    assert not th.is_alive()


def test_readings_the_daemon_refused_are_read_again(cluster: Any) -> None:
    """Offsets are stored only for batches the daemon queued: the ones it refused (it was
    stopping) come again to the group's next consumer, the queued ones do not."""
    topic, group = topic_name(), f"g-{uuid.uuid4().hex[:6]}"
    produce(cluster, topic, [("m1", reading("m1", 60.0 * i, 0.1, seq=i)) for i in range(100)])
    first, took = source(cluster, topic, group=group, batch=10), Collector(capacity=2)
    first.run(took, threading.Event())  # returns at the first refusal, committing on close
    queued = {json.loads(p)["seq"] for p in took.payloads()}
    assert 0 < len(queued) < 100
    again, got = source(cluster, topic, group=group), Collector()
    with running(again, got):
        assert wait_for(lambda: len(got.payloads()) >= 100 - len(queued))
        time.sleep(0.3)
    assert sorted(json.loads(p)["seq"] for p in got.payloads()) == sorted(set(range(100)) - queued)


def test_lag_is_exported_and_falls_to_zero(cluster: Any) -> None:
    topic = topic_name()
    produce(cluster, topic, [("m1", reading("m1", 60.0 * i, 0.1)) for i in range(1000)])
    src = source(cluster, topic, batch=100)
    gate = threading.Event()
    got = Collector()

    def held(item: object, block: bool) -> bool:
        if got.items:
            gate.wait(20)  # the daemon's queue is full: the consumer waits, Kafka keeps them
        return got(item, block)

    reg = CollectorRegistry()
    metrics = MonitorMetrics(reg, ("temp",))
    assert reg.get_sample_value("anomae_source_lag_messages") is None  # sources without lag
    metrics.source_lag = src.lag  # as the daemon wires it
    with running(src, held):
        assert wait_for(lambda: len(got.items) == 1)
        assert wait_for(lambda: (src.lag() or 0) > 0)
        first = reg.get_sample_value("anomae_source_lag_messages")
        assert first is not None and 1000 - 100 <= first < 1000
        gate.set()
        assert wait_for(lambda: len(got.payloads()) == 1000)
        assert wait_for(lambda: reg.get_sample_value("anomae_source_lag_messages") == 0.0)
    assert src.lag() is None  # closed
