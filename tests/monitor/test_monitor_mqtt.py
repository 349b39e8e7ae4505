"""MqttSource against a real mosquitto started here on 127.0.0.1 (a free port, a temp config,
persistence in a temp dir). Without mosquitto the broker tests skip, unless
ANOMAE_REQUIRE_SERVERS=1 (CI), where they fail."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from anomae.monitor.sources.base import Raw
from anomae.monitor.sources.mqtt import MqttSource, series_hint

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class Broker:
    """A mosquitto process on 127.0.0.1 that can be stopped and started on the same port;
    SIGTERM makes it save its persistence file, so sessions and queued messages survive."""

    def __init__(self, workdir: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.port, self.tls_port = free_port(), free_port()
        (workdir / "data").mkdir()
        lines = [
            f"user {pwd.getpwuid(os.getuid()).pw_name}",  # as root it would switch to 'mosquitto'
            "persistence true",
            f"persistence_location {workdir / 'data'}/",
            "max_queued_messages 100000",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
        ]
        if tls:
            cert, key = tls
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {cert}"]
            lines += [f"certfile {cert}", f"keyfile {key}", "allow_anonymous true"]
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("per_listener_settings true\n" + "\n".join(lines) + "\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=log)
        if not wait_for(self._accepts, 5.0):
            raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()}")

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None

    def publish(
        self, topic: str | Callable[[int], str], payloads: list[bytes], retain: bool = False
    ) -> None:
        """Publish with QoS 1 and return once the broker acknowledged every message."""
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            infos = [
                client.publish(topic(i) if callable(topic) else topic, p, qos=1, retain=retain)
                for i, p in enumerate(payloads)
            ]
            for info in infos:
                info.wait_for_publish(10)
                assert info.is_published()
        finally:
            client.disconnect()
            client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not os.access(MOSQUITTO, os.X_OK):
        if os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1":
            pytest.fail(f"mosquitto not found at {MOSQUITTO} (ANOMAE_REQUIRE_SERVERS=1)")
        pytest.skip("mosquitto not installed")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Collector:
    """An ``emit`` that keeps what it accepts, refusing beyond ``capacity`` like a full queue."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity, self.items = capacity, list[Raw]()

    def __call__(self, item: object, block: bool) -> bool:
        assert isinstance(item, Raw) and block is False  # a live feed must never block
        if self.capacity is not None and len(self.items) >= self.capacity:
            return False
        self.items.append(item)
        return True

    def seqs(self) -> list[int]:
        return sorted(json.loads(r.payload)["seq"] for r in self.items)


@contextmanager
def running(source: MqttSource, emit: Collector) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(emit, stop), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(2.0)
        assert not thread.is_alive(), "run did not return after stop"
        source.close()


def readings(n: int, start: int = 0, series: Callable[[int], str] = lambda i: "m1") -> list[bytes]:
    return [
        json.dumps({"series": series(i), "ts": 1e9 + i, "values": {"t": i}, "seq": i}).encode()
        for i in range(start, start + n)
    ]


def source(b: Broker, filt: str = "plant/#", **options: object) -> MqttSource:
    options.setdefault("reconnect_min", 0.1)
    options.setdefault("reconnect_max", 0.5)
    return MqttSource.from_url(f"mqtt://127.0.0.1:{b.port}/{filt}", **options)


@pytest.mark.parametrize(
    ("url", "host", "port", "topic", "tls", "user", "password"),
    [
        ("mqtt://127.0.0.1:1884/plant/+/telemetry", "127.0.0.1", 1884, "plant/+/telemetry",
         False, None, None),
        ("mqtts://broker.example/sensors/#", "broker.example", 8883, "sensors/#", True, None, None),
        ("mqtt://u%40x:p%3Aw@host/a/b", "host", 1883, "a/b", False, "u@x", "p:w"),
        ("mqtt://reader@host/a", "host", 1883, "a", False, "reader", None),
        ("mqtt://[::1]:1999/t/%23", "::1", 1999, "t/#", False, None, None),
    ],
)  # fmt: skip
def test_from_url(
    url: str, host: str, port: int, topic: str, tls: bool, user: str | None, password: str | None
) -> None:
    s = MqttSource.from_url(url)
    assert (s.host, s.port, s.topic, s.tls, s.username, s.password) == (
        host, port, topic, tls, user, password
    )  # fmt: skip
    assert s.client_id == MqttSource.from_url(url).client_id  # fixed: the session resumes


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("http://host/t", {}),
        ("mqtt://host:1883/", {}),
        ("mqtt://:1883/t", {}),
        ("mqtt://host/plant/m1", {"series_from": "topic"}),
        ("mqtt://host/t", {"qos": 3}),
    ],
)
def test_from_url_rejects(url: str, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MqttSource.from_url(url, **options)


@pytest.mark.parametrize(
    ("opt", "attr", "value"),
    [
        ("protocol=5", "protocol", "5"),
        ("protocol=3.1.1", "protocol", "3.1.1"),
        ("protocol=311", "protocol", "3.1.1"),
        ("password=1234", "password", "1234"),
        ("username=42", "username", "42"),
        ("client_id=7", "client_id", "7"),
    ],
)
def test_source_opts_that_look_like_numbers_stay_text(opt: str, attr: str, value: str) -> None:
    from anomae.monitor.app import open_source

    s = open_source("mqtt://127.0.0.1:1883/plant/#", opts=[opt])
    assert getattr(s, attr) == value


@pytest.mark.parametrize(
    ("topic_filter", "topic", "series"),
    [
        ("plant/+/telemetry", "plant/m1/telemetry", "m1"),
        ("+/x", "m2/x", "m2"),
        ("a/+/b/+", "a/x/b/y", "x"),  # the first wildcard names the series
        ("plant/#", "plant/hall/m1", "hall/m1"),  # '#': every level it matched
        ("plant/#", "plant", None),  # '#' matched no level
        ("plant/+/t", "plant//t", None),  # empty level
        ("$share/g/plant/+/t", "plant/m3/t", "m3"),
        ("plant/t", "plant/t", None),  # no wildcard
    ],
)
def test_series_hint(topic_filter: str, topic: str, series: str | None) -> None:
    assert series_hint(topic_filter, topic) == series


def test_without_paho_import_works_and_errors_say_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("paho", "paho.mqtt", "paho.mqtt.client"):
        monkeypatch.setitem(sys.modules, name, None)
    s = MqttSource("127.0.0.1", 1, "t/#")  # settings only
    with pytest.raises(ImportError, match=r"pip install 'anomae\[mqtt\]'"):
        MqttSource.from_url("mqtt://127.0.0.1:1/t/#")
    with pytest.raises(ImportError, match=r"pip install 'anomae\[mqtt\]'"):
        s.run(Collector(), threading.Event())


@pytest.mark.parametrize("series_from", ["payload", "topic"])
def test_messages_arrive_intact_with_their_series(broker: Broker, series_from: str) -> None:
    src = source(broker, "plant/+/telemetry", series_from=series_from)
    got = Collector()
    sent = readings(300, series=lambda i: f"m{i % 3}")
    sent.append(json.dumps({"series": "m0", "note": "ünïcode", "pad": "x" * 65536}).encode())
    with running(src, got):
        assert wait_for(lambda: src.up)
        broker.publish(lambda i: f"plant/m{i % 3}/telemetry", sent)
        assert wait_for(lambda: len(got.items) >= len(sent))
    assert [r.payload for r in got.items] == sent  # one publisher: broker keeps the order
    hints = [r.series_hint for r in got.items]
    expected = [f"m{i % 3}" if series_from == "topic" else None for i in range(len(sent))]
    assert hints == expected
    assert src.received == len(sent) and src.dropped == {"queue_full": 0}


def test_mqtt5_broker_never_sends_a_packet_beyond_the_payload_limit(broker: Broker) -> None:
    src = source(broker, max_payload_bytes=1000)  # packets up to 1000 + topic room (~67 KB)
    got = Collector()
    small, huge = readings(2), json.dumps({"pad": "x" * 200_000}).encode()
    with running(src, got):
        assert wait_for(lambda: src.up)
        broker.publish("plant/m1", [small[0], huge, small[1]])
        assert wait_for(lambda: len(got.items) >= 2)
        time.sleep(0.2)
    assert [r.payload for r in got.items] == small  # paho never read the 200 KB one
    assert src.received == 2


def test_no_message_lost_at_a_moderate_rate(broker: Broker) -> None:
    n = 20_000
    src = source(broker)
    got = Collector()
    with running(src, got):
        assert wait_for(lambda: src.up)
        t0 = time.perf_counter()
        broker.publish("plant/m1", readings(n))
        assert wait_for(lambda: len(got.items) >= n, 20.0)
        rate = n / (time.perf_counter() - t0)
        time.sleep(0.1)  # nothing more (no duplicates) may follow
    print(f"mqtt end to end: {rate:,.0f} messages/s")
    assert got.seqs() == list(range(n))
    assert src.received == n and src.dropped["queue_full"] == 0


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_broker_restart_reconnects_and_loses_nothing(broker: Broker, protocol: str) -> None:
    broker.publish("plant/m0", readings(1, start=-1), retain=True)
    src = source(broker, protocol=protocol)
    got = Collector()
    with running(src, got):
        assert wait_for(lambda: src.up)
        broker.publish("plant/m1", readings(10))
        assert wait_for(lambda: len(got.items) == 11)
        broker.stop()
        assert wait_for(lambda: not src.up, 5.0)
        assert src.last_error is not None
        broker.start()
        broker.publish("plant/m1", readings(10, start=10))  # likely before we are back
        assert wait_for(lambda: src.up)
        broker.publish("plant/m1", readings(10, start=20))
        assert wait_for(lambda: len(set(got.seqs())) == 31)
    assert set(got.seqs()) == set(range(-1, 30))  # at least once: duplicates allowed
    assert got.seqs().count(-1) == 1  # the resumed session did not resend the retained one
    assert src.reconnects == 1 and src.last_error is None


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_messages_published_while_stopped_survive_a_broker_restart(
    broker: Broker, protocol: str
) -> None:
    first = source(broker, client_id="anomae-test-persist", protocol=protocol)
    with running(first, Collector()):
        assert wait_for(lambda: first.up)
    broker.publish("plant/m1", readings(50))  # queued in our session
    broker.stop()
    broker.start()
    second = source(broker, client_id="anomae-test-persist", protocol=protocol)
    got = Collector()
    with running(second, got):
        assert wait_for(lambda: len(got.items) >= 50)
        time.sleep(0.1)
    assert got.seqs() == list(range(50))


def test_overload_is_counted_and_drops_are_final(broker: Broker) -> None:
    src = source(broker, client_id="anomae-test-overload", max_inflight=10)
    full = Collector(capacity=5)
    with running(src, full):
        assert wait_for(lambda: src.up)
        broker.publish("plant/m1", readings(500))
        assert wait_for(lambda: src.received == 500)
    assert full.seqs() == list(range(5))
    assert src.dropped["queue_full"] == 495  # accepted + dropped = received
    # dropped messages were acknowledged: the next session does not get them again
    again = source(broker, client_id="anomae-test-overload")
    got = Collector()
    with running(again, got):
        assert wait_for(lambda: again.up)
        broker.publish("plant/m1", readings(1, start=500))
        assert wait_for(lambda: len(got.items) == 1)
    assert got.seqs() == [500]


@pytest.mark.parametrize("broker_down", [False, True])
def test_stop_returns_promptly(broker: Broker, broker_down: bool) -> None:
    src = source(broker, reconnect_min=5.0, reconnect_max=5.0)
    stop = threading.Event()
    thread = threading.Thread(target=src.run, args=(Collector(), stop), daemon=True)
    thread.start()
    assert wait_for(lambda: src.up)
    if broker_down:
        broker.stop()
        assert wait_for(lambda: not src.up)  # now waiting 5 s before the next try
    t0 = time.monotonic()
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive() and time.monotonic() - t0 < 1.0
    assert not src.up
    src.close()


def test_tls(tmp_path: Path) -> None:
    if not os.access(MOSQUITTO, os.X_OK) or shutil.which("openssl") is None:
        if os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1":
            pytest.fail("mosquitto and openssl are needed (ANOMAE_REQUIRE_SERVERS=1)")
        pytest.skip("mosquitto or openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    b = Broker(tmp_path, tls=(cert, key))
    b.start()
    try:
        src = MqttSource.from_url(f"mqtts://127.0.0.1:{b.tls_port}/t/+", ca_certs=str(cert))
        got = Collector()
        with running(src, got):
            assert wait_for(lambda: src.up)
            b.publish("t/m1", readings(3))
            assert wait_for(lambda: len(got.items) == 3)
        assert got.seqs() == [0, 1, 2]
    finally:
        b.stop()
