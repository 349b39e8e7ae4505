"""MQTT source: subscribe to one topic filter on a broker and hand every message to the daemon.

``--source mqtt://host:1883/plant/+/telemetry`` (``mqtts://`` for TLS, default port 8883;
``mqtt://user:password@host/...`` for credentials). Everything after the first ``/`` of the
address is the topic filter, taken literally (so ``#`` needs no escaping; ``%xx`` is decoded).

**Delivery.** QoS 1 on a persistent session: a fixed client id, ``clean_start=False`` and a
session expiry (MQTT 5, the default) or ``clean_session=False`` (MQTT 3.1.1), so the broker
keeps the subscription and queues QoS 1 messages while we are away (a broker restart keeps
them too when it runs with ``persistence true``; a kill -9 of the broker too only when it
saves on every change, as ``deploy/mosquitto/mosquitto.conf`` does). Each message is
acknowledged only after ``emit(Raw(payload, series_hint), False)`` returned: accepted means
it is in the daemon's queue before the broker forgets it. That queue is memory: a kill -9
of the daemon loses the readings waiting in it (at most ``--queue-size``); SIGTERM scores
them first. A refused message (daemon queue full) is acknowledged
too and counted in ``dropped["queue_full"]``: leaving it unacknowledged would hold one of the
broker's in-flight slots until the next reconnect. QoS 1 means *at least once*: after a
reconnect the broker may resend a message we had not acknowledged yet (a duplicate). An
exception from ``emit`` propagates out of ``run``, its message unacknowledged.

**Series.** ``series_from="payload"``: the JSON payload carries ``series``.
``series_from="topic"``: the topic level matched by the first wildcard of the filter is the
series id (``Raw.series_hint``); for ``+`` that is the one level, for ``#`` all the levels it
matched joined by ``/``. An empty match gives ``None`` (the payload must then name it). A
shared-subscription prefix ``$share/GROUP/`` is not counted as levels.

**Bounds.** paho keeps no incoming queue: the network loop reads one PUBLISH at a time, hands
it to ``emit`` (which never blocks) and acknowledges it. What can pile up is therefore the
broker's: at most ``max_inflight`` unacknowledged messages in flight to us (MQTT 5 Receive
Maximum; with 3.1.1 the broker's ``max_inflight_messages``) and its ``max_queued_messages``
per session while we are away or slow (mosquitto's default is 1000; the broker drops beyond).
paho reads a whole PUBLISH into memory before ``on_message``, so with MQTT 5 the CONNECT
asks the broker for packets of at most ``max_payload_bytes`` plus room for the longest
topic (MQTT 5 Maximum Packet Size): a broker must not send a larger one (mosquitto drops
it and counts it on its side). MQTT 3.1.1 has no such limit; there the parser's
``too_large`` check applies after the payload arrived.

**Counters** for the daemon: ``up`` (connected and subscribed), ``received`` (messages from
the broker), ``dropped`` (reason → count), ``reconnects`` (successful connections after the
first), ``last_error`` (text of the last connection problem, or None).

    >>> src = MqttSource.from_url("mqtt://broker:1884/plant/+/telemetry", series_from="topic")
    >>> src.host, src.port, src.topic, src.tls
    ('broker', 1884, 'plant/+/telemetry', False)
    >>> series_hint("plant/+/telemetry", "plant/m7/telemetry"), series_hint("a/#", "a/b/c")
    ('m7', 'b/c')
"""

from __future__ import annotations

import hashlib
import logging
import random
import socket
import ssl
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from anomae.errors import install_hint
from anomae.monitor.sources.base import Emit, Raw, Source

if TYPE_CHECKING:
    from paho.mqtt.client import Client, MQTTMessage

log = logging.getLogger(__name__)

INSTALL_HINT = f"the MQTT source needs paho-mqtt: {install_hint('mqtt')}"
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def _paho() -> ModuleType:
    try:
        import paho.mqtt.client as mqtt
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return mqtt


def _wildcard(topic_filter: str) -> tuple[int, str] | None:
    """(level index, ``+`` or ``#``) of the filter's first wildcard, or None."""
    levels = topic_filter.split("/")
    if levels[0] == "$share" and len(levels) > 2:
        levels = levels[2:]
    for i, level in enumerate(levels):
        if level in ("+", "#"):
            return i, level
    return None


def series_hint(topic_filter: str, topic: str) -> str | None:
    """The series id ``topic`` names under ``topic_filter`` (see the module docstring)."""
    wild = _wildcard(topic_filter)
    return None if wild is None else _matched(wild, topic)


def _matched(wild: tuple[int, str], topic: str) -> str | None:
    i, kind = wild
    parts = topic.split("/", i + 1 if kind == "+" else i)
    return (parts[i] or None) if len(parts) > i else None


_PROTOCOLS = {"5": "5", "5.0": "5", "3.1.1": "3.1.1", "311": "3.1.1"}


class MqttSource(Source):
    """Subscribe to ``topic`` on ``host:port`` and emit each message as a :class:`Raw`.

    ``client_id`` defaults to one derived from this host, the broker and the filter, so a
    restarted daemon resumes its session; give each daemon sharing a broker and filter its
    own. Changing the filter under an explicit ``client_id`` leaves the old subscription in
    the broker's session. ``run`` returns within about 0.1 s of ``stop.set()``, except while
    a TCP/TLS connect is under way (at most ``connect_timeout``). Reconnects back off from
    ``reconnect_min`` to ``reconnect_max`` seconds (with jitter)."""

    kind = "mqtt"

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        *,
        client_id: str | None = None,
        qos: int = 1,
        series_from: Literal["payload", "topic"] = "payload",
        protocol: Literal["5", "3.1.1"] = "5",
        max_inflight: int = 1000,
        session_expiry: int = 86_400,
        keepalive: int = 30,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        tls_insecure: bool = False,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        connect_timeout: float = 5.0,
        max_payload_bytes: int = 64 * 1024,
    ) -> None:
        super().__init__()
        # --source-opt values arrive typed (protocol=5 is an int, password=1234 too)
        protocol = _PROTOCOLS.get(str(protocol), protocol)  # type: ignore[assignment]
        client_id, username, password = (
            None if v is None else str(v) for v in (client_id, username, password)
        )
        if not topic:
            raise ValueError("MQTT source needs a topic filter, e.g. mqtt://host:1883/sensors/#")
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        if series_from not in ("payload", "topic"):
            raise ValueError(f"series_from must be 'payload' or 'topic', not {series_from!r}")
        if series_from == "topic" and _wildcard(topic) is None:
            raise ValueError(f"series_from='topic' needs a '+' or '#' in the filter {topic!r}")
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"protocol must be '5' or '3.1.1', not {protocol!r}")
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.host, self.port, self.topic = host, port, topic
        digest = hashlib.sha1(f"{socket.gethostname()}|{host}:{port}|{topic}".encode()).hexdigest()
        self.client_id = client_id or f"anomae-{digest[:12]}"
        self.qos, self.series_from, self.protocol = qos, series_from, protocol
        self.max_inflight, self.session_expiry, self.keepalive = (
            max_inflight,
            session_expiry,
            keepalive,
        )
        self.username, self.password = username, password
        self.tls, self.ca_certs, self.certfile, self.keyfile = tls, ca_certs, certfile, keyfile
        self.tls_insecure = tls_insecure
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.connect_timeout = connect_timeout
        self.max_payload_bytes = max_payload_bytes
        self.received = 0
        self.dropped: dict[str, int] = {"queue_full": 0}
        self.reconnects = 0
        self.last_error: str | None = None
        self._client: Client | None = None
        self._connected_once = False
        self._subscribed = False  # in this run: SUBACK seen for self.topic
        self._delay = reconnect_min

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MqttSource:
        """``mqtt[s]://[user[:password]@]host[:port]/topic/filter``; ``options`` are the
        constructor's keyword arguments (explicit ``username``/``password`` win over the URL's).
        Raises ImportError with the install hint when paho-mqtt is missing."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in DEFAULT_PORTS:
            raise ValueError(f"not an MQTT URL (mqtt:// or mqtts://): {url!r}")
        netloc, _, topic = rest.partition("/")
        userinfo, at, hostport = netloc.rpartition("@")
        if at:
            user, _, pw = userinfo.partition(":")
            options.setdefault("username", unquote(user))
            options.setdefault("password", unquote(pw) if pw else None)
        host, port = hostport, DEFAULT_PORTS[scheme]
        if hostport.startswith("["):  # [IPv6]:port
            host, _, tail = hostport[1:].partition("]")
            if tail.startswith(":"):
                port = int(tail[1:])
        elif ":" in hostport:
            host, _, port_text = hostport.partition(":")
            port = int(port_text)
        if not host:
            raise ValueError(f"no host in MQTT URL {url!r}")
        options.setdefault("tls", scheme == "mqtts")
        _paho()
        return cls(host, port, unquote(topic), **options)

    def _make_client(self, mqtt: ModuleType, emit: Emit) -> Client:
        v5 = self.protocol == "5"
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if v5 else False,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=True,
            reconnect_on_failure=False,
        )
        client.connect_timeout = self.connect_timeout
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            context = ssl.create_default_context(cafile=self.ca_certs)
            if self.certfile:
                context.load_cert_chain(self.certfile, self.keyfile)
            if self.tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            client.tls_set_context(context)

        wild = _wildcard(self.topic) if self.series_from == "topic" else None
        dropped = self.dropped

        def on_message(client: Client, _userdata: Any, msg: MQTTMessage) -> None:
            self.received += 1
            hint = None if wild is None else _matched(wild, msg.topic)
            if not emit(Raw(bytes(msg.payload), hint), False):
                dropped["queue_full"] += 1
            client.ack(msg.mid, msg.qos)

        def on_connect(client: Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self._problem(f"broker refused the connection: {reason}")
                return
            if self._connected_once:
                self.reconnects += 1
            self._connected_once = True
            log.info(
                "mqtt connected to %s:%d as %s (session present: %s)",
                self.host,
                self.port,
                self.client_id,
                flags.session_present,
            )
            if flags.session_present and self._subscribed:
                # the session we subscribed in survived: resubscribing would only make the
                # broker resend retained messages
                self.up, self._delay, self.last_error = True, self.reconnect_min, None
            elif v5:
                # an existing subscription (a restarted daemon) does not resend retained ones
                opts = mqtt.SubscribeOptions(
                    qos=self.qos, retainHandling=mqtt.SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
                )
                client.subscribe(self.topic, options=opts)
            else:
                client.subscribe(self.topic, qos=self.qos)

        def on_subscribe(client: Client, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
            failed = [r for r in reasons if r.is_failure]
            if failed:
                self._problem(f"subscription to {self.topic!r} refused: {failed[0]}")
                client.disconnect()  # retried with backoff
                return
            self._subscribed = True
            self.up, self._delay, self.last_error = True, self.reconnect_min, None

        def on_disconnect(_c: Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if self.up:
                self._problem(f"disconnected from {self.host}:{self.port}: {reason}")

        client.on_message = on_message
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        return client

    def _problem(self, text: str) -> None:
        self.up, self.last_error = False, text
        log.warning("mqtt %s", text)

    def _connect(self, mqtt: ModuleType, client: Client) -> None:
        if self.protocol == "5":
            props = mqtt.Properties(mqtt.PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
            props.ReceiveMaximum = min(self.max_inflight, 65_535)
            # payload + the longest topic (2 + 65,535) + header and properties
            props.MaximumPacketSize = self.max_payload_bytes + 65_537 + 1024
            client.connect(
                self.host, self.port, self.keepalive, clean_start=False, properties=props
            )
        else:
            client.connect(self.host, self.port, self.keepalive)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Receive until ``stop`` is set, reconnecting with backoff whenever the broker goes."""
        mqtt = _paho()
        client = self._client = self._make_client(mqtt, emit)
        self._subscribed = False
        connected = False  # a socket is open and the network loop must run
        try:
            while not stop.is_set():
                if not connected:
                    try:
                        self._connect(mqtt, client)
                        connected = True
                    except OSError as err:
                        self._problem(f"cannot connect to {self.host}:{self.port}: {err}")
                if connected:
                    if client.loop(timeout=0.1) == mqtt.MQTT_ERR_SUCCESS:
                        continue
                    connected = False
                    self.up = False
                stop.wait(self._delay * random.uniform(0.5, 1.0))
                self._delay = min(self._delay * 2, self.reconnect_max)
        finally:
            self.up = False
            self.close()

    def close(self) -> None:
        """Disconnect cleanly (the broker keeps the session); safe to call more than once."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()  # also closes a socket still waiting for CONNACK
