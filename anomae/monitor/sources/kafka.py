"""Kafka source: consume one topic in a consumer group and hand its messages to the daemon.

``--source kafka://broker:9092/readings`` (``kafkas://`` for TLS, default port 9093;
several bootstrap brokers as ``kafka://b1:9092,b2:9092/readings``). Each message value is
one JSON reading (see :mod:`anomae.monitor.readings`); the client is confluent-kafka
(librdkafka), ``pip install 'anomae[kafka]'``.

**Delivery: at least once.** Offsets are *stored* only after ``emit`` accepted the
readings into the daemon's queue, and librdkafka commits the stored offsets every
``auto.commit.interval.ms`` (5 s), on a rebalance and on a clean stop. A consumer killed
before the commit, or a partition that moves to another consumer, makes the group read
those messages again: within one daemon the series table drops the repeats as
``duplicate``; a restarted daemon scores them again. The queue is memory: a kill -9 of the
daemon loses what waits in it (at most ``--queue-size`` readings) unless it was not yet
committed. ``emit`` is called with ``block=True``: a full daemon queue holds the consumer
(Kafka keeps the backlog, shown as lag) instead of dropping readings; readings refused at
shutdown are not stored, so the next start reads them again.

**Series and order.** The message key is the series name (``series_from="key"``, the
default): it serves as the series of a payload that names none, like an MQTT topic; the
payload's ``series`` wins when both are given, so producers should use the series name as
the key (then every reading of a series lands in one partition and keeps its order). One
``consume`` call yields up to ``batch`` messages; they become one :class:`RawBatch` per key
(one queue operation each) in first-seen order, so readings of one key keep their order.
``series_from="payload"`` ignores keys: one RawBatch per call.

**Health.** ``up`` is true while a broker connection is up (librdkafka's statistics, every
``stats_interval_ms``) and false as soon as librdkafka reports all brokers down; it retries
by itself with backoff (``reconnect.backoff.ms`` to ``reconnect.backoff.max.ms``).
:meth:`KafkaSource.lag` is the consumer lag (``anomae_source_lag_messages``): per assigned
partition, the high watermark librdkafka saw last minus the next offset to queue, summed,
measured by the polling thread after each poll (the consumer must not be called from the
scrape thread: that deadlocked). While a full daemon queue holds the consumer, the value is
the one from before.
librdkafka prefetches up to ``queued.max.messages.kbytes`` (64 MiB by default) in memory.

**Options** (``--source-opt``): ``group`` (default ``anomae-monitor``), ``series_from``,
``offset_reset`` (``latest``, Kafka's default, or ``earliest``: where a group without
committed offsets starts), ``batch``, ``client_id``, ``ca_certs``, ``certfile``,
``keyfile`` (TLS), and any librdkafka setting as ``kafka.NAME=VALUE`` (SASL, for example:
``kafka.sasl.mechanism=PLAIN``), which wins over ours.

The tests run against librdkafka's built-in mock cluster (``test.mock.num.brokers``), not a
real Kafka broker: no Kafka distribution can be downloaded where they run. TLS and SASL
settings are passed through to librdkafka as given and are untested here: the mock cluster
(librdkafka 2.16) refuses SASL/PLAIN ("SASL Handshake not supported by broker").

    >>> src = KafkaSource.from_url("kafka://b1:9092,b2/readings", group="g1")
    >>> src.brokers, src.topic, src.group, src.tls
    ('b1:9092,b2:9092', 'readings', 'g1', False)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from types import ModuleType
from typing import Any, Literal
from urllib.parse import unquote

from anomae.monitor.sources.base import Emit, RawBatch, Source

log = logging.getLogger(__name__)

INSTALL_HINT = "the Kafka source needs confluent-kafka: pip install 'anomae[kafka]'"
DEFAULT_PORTS = {"kafka": 9092, "kafkas": 9093}
_OFFSET_RESETS = ("latest", "earliest")


def _confluent() -> ModuleType:
    try:
        import confluent_kafka
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return confluent_kafka


def _brokers(netloc: str, port: int, url: str) -> str:
    """``host[:port],...`` with the default port filled in (``[v6]:port`` too)."""
    out = []
    for part in netloc.split(","):
        host, port_text = part, str(port)
        if part.startswith("["):
            host, _, tail = part.partition("]")
            host += "]"
            port_text = tail[1:] if tail.startswith(":") else port_text
        elif ":" in part:
            host, _, port_text = part.partition(":")
        if host in ("", "[]") or not port_text.isdigit():
            raise ValueError(f"bad broker {part!r} in Kafka URL {url!r} (want host:port)")
        out.append(f"{host}:{port_text}")
    return ",".join(out)


class KafkaSource(Source):
    """Consume ``topic`` from ``brokers`` in consumer group ``group``; see the module
    docstring. ``run`` returns within about ``poll_timeout`` of ``stop.set()`` (plus the
    time ``close`` takes to commit and leave the group)."""

    kind = "kafka"

    def __init__(
        self,
        brokers: str,
        topic: str,
        *,
        group: str = "anomae-monitor",
        series_from: Literal["key", "payload"] = "key",
        offset_reset: Literal["latest", "earliest"] = "latest",
        batch: int = 1000,
        poll_timeout: float = 0.1,
        client_id: str | None = None,
        tls: bool = False,
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        stats_interval_ms: int = 1000,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        group, topic = str(group), str(topic)  # --source-opt group=42 arrives as an int
        if not topic:
            raise ValueError("Kafka source needs a topic, e.g. kafka://broker:9092/readings")
        if not group:
            raise ValueError("group must not be empty (the consumer group's id)")
        if series_from not in ("key", "payload"):
            raise ValueError(f"series_from must be 'key' or 'payload', not {series_from!r}")
        if offset_reset not in _OFFSET_RESETS:
            raise ValueError(f"offset_reset must be 'latest' or 'earliest', not {offset_reset!r}")
        if not 1 <= batch <= 1_000_000:
            raise ValueError(f"batch must be 1 to 1000000 messages per poll, not {batch!r}")
        if poll_timeout <= 0 or stats_interval_ms < 1:
            raise ValueError("poll_timeout and stats_interval_ms must be positive")
        self.brokers, self.topic, self.group = brokers, topic, group
        self.series_from, self.offset_reset = series_from, offset_reset
        self.batch, self.poll_timeout = batch, poll_timeout
        self.client_id = "anomae-monitor" if client_id is None else str(client_id)
        self.tls, self.ca_certs, self.certfile, self.keyfile = tls, ca_certs, certfile, keyfile
        self.stats_interval_ms = stats_interval_ms
        self.config = dict(config or {})
        self.received = 0
        self.errors = 0  # messages that carried an error instead of a payload
        self.last_error: str | None = None
        self._fatal: str | None = None
        self._consumer: Any = None
        self._active = False  # run() is polling: only its thread may touch the consumer
        self._lag: float | None = None  # written by the polling thread, read by scrapes
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) -> offset to queue next

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaSource:
        """``kafka[s]://host[:port][,host[:port]...]/topic``; ``options`` are the constructor's
        keyword arguments, and ``kafka.NAME=VALUE`` ones go to librdkafka verbatim. Raises
        ImportError with the install hint when confluent-kafka is missing."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in DEFAULT_PORTS:
            raise ValueError(f"not a Kafka URL (kafka:// or kafkas://): {url!r}")
        netloc, _, topic = rest.partition("/")
        if not netloc:
            raise ValueError(f"no broker in Kafka URL {url!r}")
        config = dict(options.pop("config", None) or {})
        for key in [k for k in options if k.startswith("kafka.")]:
            config[key[len("kafka.") :]] = options.pop(key)
        options.setdefault("tls", scheme == "kafkas")
        brokers = _brokers(netloc, DEFAULT_PORTS[scheme], url)
        src = cls(brokers, unquote(topic), config=config, **options)
        _confluent()
        return src

    def _settings(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "bootstrap.servers": self.brokers,
            "group.id": self.group,
            "client.id": self.client_id,
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,  # stored by us once the daemon queued them
            "auto.offset.reset": self.offset_reset,
            "statistics.interval.ms": self.stats_interval_ms,
            "error_cb": self._on_error,
            "stats_cb": self._on_stats,
            "logger": log,
        }
        if self.tls:
            conf["security.protocol"] = "ssl"
            for key, value in (
                ("ssl.ca.location", self.ca_certs),
                ("ssl.certificate.location", self.certfile),
                ("ssl.key.location", self.keyfile),
            ):
                if value is not None:
                    conf[key] = value
        conf.update(self.config)
        return conf

    def _on_error(self, err: Any) -> None:
        ck = _confluent()
        self.last_error = str(err)
        if err.fatal():
            self._fatal = str(err)
        if err.fatal() or err.code() == ck.KafkaError._ALL_BROKERS_DOWN:
            self.up = False
        log.warning("kafka %s", err)

    def _on_stats(self, text: str) -> None:
        try:
            brokers = json.loads(text).get("brokers", {}).values()
        except (ValueError, AttributeError):
            return
        # nodeid -1: the bootstrap and coordinator pseudo-brokers
        self.up = any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers)
        if self.up:
            self.last_error = None

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        log.info("kafka assigned %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        self.up = True

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        for p in partitions:
            self._next.pop((p.topic, p.partition), None)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; librdkafka reconnects by itself."""
        ck = _confluent()
        consumer = self._consumer = ck.Consumer(self._settings())
        self._active = True
        consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not stop.is_set():
                msgs = consumer.consume(self.batch, self.poll_timeout)
                if msgs and not self._hand_over(ck, consumer, msgs, emit):
                    break  # the daemon is stopping: what it refused stays unstored
                self._measure_lag(consumer)
                if self._fatal is not None:  # e.g. fenced by another static member
                    raise RuntimeError(f"kafka consumer failed: {self._fatal}")
        finally:
            self.up = False
            self._active = False
            self.close()

    def _hand_over(self, ck: ModuleType, consumer: Any, msgs: list[Any], emit: Emit) -> bool:
        """Emit ``msgs`` grouped by key, then store their offsets; False when refused."""
        received = time.monotonic()
        by_key = self.series_from == "key"
        groups: dict[bytes | None, list[bytes]] = {}
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is not None:
                self.errors += 1
                self.last_error = str(m.error())
                log.warning("kafka message error: %s", m.error())
                continue
            key = m.key() if by_key else None
            payloads = groups.get(key)
            if payloads is None:
                payloads = groups[key] = []
            payloads.append(m.value() or b"")  # a tombstone (None) is counted as bad_json
            last[(m.topic(), m.partition())] = m.offset()
        for key, payloads in groups.items():
            self.received += len(payloads)
            if not emit(RawBatch(payloads, _hint(key), received), True):
                return False
        if last:
            offsets = [ck.TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            try:
                consumer.store_offsets(offsets=offsets)
            except ck.KafkaException as exc:  # revoked meanwhile: the new owner reads them
                log.info("kafka offsets not stored: %s", exc)
            for (t, p), o in last.items():
                self._next[(t, p)] = o + 1
        return True

    def _measure_lag(self, consumer: Any) -> None:
        total = 0
        for tp in consumer.assignment():
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            nxt = self._next.get((tp.topic, tp.partition))
            if nxt is None:
                nxt = consumer.position([tp])[0].offset
            if high >= 0 and nxt >= 0:
                total += max(0, high - nxt)
        self._lag = float(total)

    def lag(self) -> float | None:
        """Messages in the assigned partitions not yet queued by the daemon, as measured
        after the latest poll (see the module docstring); None when not running."""
        return self._lag

    def close(self) -> None:
        """Commit the stored offsets and leave the group; safe to call more than once. While
        ``run`` is active this is left to ``run`` itself: librdkafka's consumer must not be
        closed by one thread while another polls it."""
        if self._active:
            return
        consumer, self._consumer = self._consumer, None
        self._next.clear()
        self._lag = None
        if consumer is not None:
            try:
                consumer.close()
            except (RuntimeError, _confluent().KafkaException) as exc:
                log.warning("kafka close: %s", exc)


def _hint(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode() or None
    except UnicodeDecodeError:
        return None  # the payload must name its series (else: missing_series)
