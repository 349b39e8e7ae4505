"""deploy/mosquitto/mosquitto.conf under kill -9, with a real mosquitto on 127.0.0.1: QoS 1
readings the broker acknowledged for a subscriber that was away survive the kill (the
config saves its database on every change, not every 30 minutes)."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO_CONF = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
N = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(conf: Path, port: int) -> subprocess.Popen[str]:
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [mosquitto, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 10
    while True:
        assert proc.poll() is None, f"mosquitto exited: {proc.communicate()[0]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            assert time.monotonic() < deadline, "mosquitto did not listen"
            time.sleep(0.05)


def client(mqtt: Any, client_id: str, port: int, on_message: Any = None) -> Any:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    if on_message is not None:
        c.on_message = on_message
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_acknowledged_readings_survive_kill_9_of_the_broker(tmp_path: Path) -> None:
    mqtt = pytest.importorskip("paho.mqtt.client")
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = MOSQUITTO_CONF.read_text()
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    conf = f"user {pwd.getpwuid(os.getuid()).pw_name}\n" + conf  # root would switch user
    (tmp_path / "mosquitto.conf").write_text(conf)
    broker = start_broker(tmp_path / "mosquitto.conf", port)
    try:
        subscribed = threading.Event()
        sub = client(mqtt, "anomae-away", port)
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.subscribe("sensors/#", qos=1)
        assert subscribed.wait(5)
        sub.disconnect()
        sub.loop_stop()
        pub = client(mqtt, "anomae-publisher", port)
        for i in range(N):
            info = pub.publish("sensors/m1", f'{{"series": "m1", "ts": {i}}}', qos=1)
            info.wait_for_publish(5)  # PUBACK: the broker has it
        pub.disconnect()
        pub.loop_stop()
        time.sleep(0.2)
    finally:
        broker.kill()  # kill -9: no save on the way out
        broker.communicate(timeout=5)
    broker = start_broker(tmp_path / "mosquitto.conf", port)
    try:
        got: list[bytes] = []
        sub = client(mqtt, "anomae-away", port, lambda _c, _u, msg: got.append(msg.payload))
        deadline = time.monotonic() + 5
        while len(got) < N and time.monotonic() < deadline:
            time.sleep(0.05)
        sub.disconnect()
        sub.loop_stop()
        assert len(set(got)) == N, f"{len(set(got))} of {N} acknowledged readings survived"
    finally:
        broker.terminate()
        broker.communicate(timeout=5)
