"""Soak: the real ``anomae monitor`` on a real mosquitto for minutes, with hostile readings and
broker restarts; prints memory growth, drops by reason, delivery accounting and latency.

A mosquitto on 127.0.0.1 runs deploy/mosquitto/mosquitto.conf (persistence, autosave on every
change; port and paths adapted). ``anomae monitor`` subscribes (QoS 1, persistent session) to
``soak/#``; this process publishes QoS 1 readings of ``--series`` series at ``--rate``
readings/s, ``--hostile`` of them hostile (bad JSON, lone surrogates, huge seq, timestamps a
day ahead, lines over ``--max-line-bytes``), and kills the broker (``--restart-signal``,
SIGKILL by default) every ``--restart-every`` seconds, restarting it at once.

Accounting: *offered* readings due at ``--rate``; *published* publish() calls (at most
``--max-unacked`` wait for their PUBACK: beyond, a reading is counted and not sent, as a
device with a bounded buffer would); *acknowledged* PUBACKs received; *received* the
monitor's ``anomae_events_received``. With the persistent config no acknowledged reading
may be lost, checked by count (acknowledged - received; QoS 1 redelivery after a kill adds
duplicates) and by identity (valid readings carry a per-series ``seq``;
``anomae_sequence_missing`` counts numbers the monitor skipped; the count alone can hide a
loss behind redelivered duplicates). ``--autosave-interval`` N trades that guarantee (up to
N acknowledged readings per kill) for broker throughput. Latency p99 is read from the
monitor's ``anomae_event_to_score_seconds`` histogram (a bucket bound). The model has random
weights (a 16-row window, 4 features): scoring cost, not quality.

    python bench/soak.py [--minutes 30] [--rate 100000] [--restart-every 300]
    python bench/soak.py --minutes 1 --rate 5000 --restart-every 20   # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
FEATURES = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what} did not listen on {port}") from None
            time.sleep(0.05)


class Broker:
    """mosquitto with the shipped config, on ``port``, its database in ``folder``."""

    def __init__(self, folder: Path, port: int, autosave: int) -> None:
        conf = CONF.read_text().replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
        conf = conf.replace("autosave_interval 1\n", f"autosave_interval {autosave}\n")
        conf = conf.replace("/mosquitto/data/", f"{folder}/")
        user = pwd.getpwuid(os.getuid()).pw_name  # as root, mosquitto would switch user
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(f"user {user}\n" + conf)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL)
        wait_port(self.port, self.proc, "mosquitto")

    def stop(self, sig: int) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def restart(self, sig: int) -> None:
        self.stop(sig)
        self.start()
        self.restarts += 1


def reading(
    rng: random.Random, i: int, n_series: int, hostile: float, max_line: int, seq: dict[str, int]
) -> bytes:
    series = f"m{i % n_series}"
    now = time.time()
    if rng.random() < hostile:
        kind = rng.randrange(5)
        if kind == 0:
            return b'{"series": "' + series.encode() + b'", "ts": '  # bad JSON
        if kind == 1:
            return b'{"series": "\\ud800", "ts": %f, "values": {"s0": 1}}' % now  # lone surrogate
        zeros = {f"s{k}": 0.0 for k in range(FEATURES)}
        if kind == 2:
            return json.dumps({"series": series, "ts": now, "seq": 2**70, "values": zeros}).encode()
        if kind == 3:  # a day ahead of this host's clock
            return json.dumps({"series": series, "ts": now + 86400, "values": zeros}).encode()
        return b'{"series": "' + series.encode() + b'", "pad": "' + b"x" * max_line + b'"}'
    values = {f"s{k}": rng.gauss(0.0, 1.0) for k in range(FEATURES)}
    seq[series] = seq.get(series, 0) + 1  # the monitor counts the numbers it never saw
    return json.dumps({"series": series, "ts": now, "values": values, "seq": seq[series]}).encode()


class Publisher:
    """QoS 1 publisher on a persistent session; counts publish() calls and PUBACKs."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.published = 0
        self.acked = 0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="anomae-soak-publisher",
            clean_session=False, protocol=mqtt.MQTTv311,
        )  # fmt: skip
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, *_: Any) -> None:
        self.acked += 1

    def publish(self, payload: bytes) -> None:
        self.client.publish("soak/readings", payload, qos=1)
        self.published += 1

    def close(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while self.acked < self.published and time.monotonic() < deadline:
            time.sleep(0.1)
        self.client.disconnect()
        self.client.loop_stop()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return str(r.read().decode())


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def by_reason(text: str, name: str) -> dict[str, int]:
    out = {}
    for reason, v in re.findall(rf'^{name}_total{{reason="([^"]+)"}} (\S+)$', text, re.M):
        out[reason] = int(float(v))
    return out


def p99(text: str, name: str) -> str:
    buckets = [
        (float(le), float(v))
        for le, v in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M)
    ]
    total = metric(text, name + "_count")
    if not total:
        return "n/a"
    for le, count in sorted(buckets):
        if count >= 0.99 * total:
            return f"<= {le * 1000:g} ms"
    return "> largest bucket"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--rate", type=float, default=100_000.0, help="readings/s offered")
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--hostile", type=float, default=0.01, help="fraction of hostile readings")
    ap.add_argument("--restart-every", type=float, default=300.0, help="seconds (0: never)")
    ap.add_argument("--restart-signal", choices=["kill", "term"], default="kill")
    ap.add_argument("--max-line-bytes", type=int, default=4096)
    ap.add_argument(
        "--max-unacked",
        type=int,
        default=20_000,
        help="readings sent but not acknowledged at most; beyond, new ones are counted, not sent",
    )
    ap.add_argument(
        "--autosave-interval",
        type=int,
        default=1,
        help="mosquitto saves every N changes (1: the shipped config; more: faster, and a "
        "kill -9 may lose up to N acknowledged readings)",
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    from score_bench import random_model

    sig = signal.SIGKILL if args.restart_signal == "kill" else signal.SIGTERM
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = folder / "model.onnx"
        random_model(model, 16, (32, 8), FEATURES)
        broker = Broker(folder, free_port(), args.autosave_interval)
        broker.start()
        listen = free_port()
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        log = (folder / "monitor.log").open("wb")
        mon = subprocess.Popen(
            [sys.executable, "-m", "anomae.cli", "monitor", str(model),
             "--source", f"mqtt://127.0.0.1:{broker.port}/soak/#",
             "--source-opt", "client_id=anomae-soak-monitor",
             "--listen", f"127.0.0.1:{listen}", "--max-line-bytes", str(args.max_line_bytes),
             "--reload-check-seconds", "0"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            wait_port(listen, mon, "anomae monitor")
            deadline = time.monotonic() + 30
            while metric(scrape(listen), "anomae_source_up") < 1:
                if time.monotonic() > deadline:
                    raise SystemExit("the monitor did not connect to the broker")
                time.sleep(0.1)
            rss_start = rss_kib(mon.pid)
            pub = Publisher(broker.port)
            rng = random.Random(args.seed)
            seq: dict[str, int] = {}
            shed = 0
            t0 = time.monotonic()
            end = t0 + args.minutes * 60
            next_restart = t0 + args.restart_every if args.restart_every > 0 else float("inf")
            tick = 0.005
            i = 0
            while (now := time.monotonic()) < end:
                if now >= next_restart:
                    broker.restart(sig)
                    next_restart += args.restart_every
                due = int((now - t0) * args.rate)
                while i < due:
                    if pub.published - pub.acked >= args.max_unacked:
                        shed += 1  # a device's buffer is bounded too: count, do not queue
                    else:
                        line = reading(rng, i, args.series, args.hostile, args.max_line_bytes, seq)
                        pub.publish(line)
                    i += 1
                time.sleep(tick)
            elapsed = time.monotonic() - t0
            pub.close(wait=60)
            # let the monitor take what the broker still holds for it
            settle = time.monotonic() + 60
            last = -1.0
            while time.monotonic() < settle:
                got = metric(scrape(listen), "anomae_events_received_total")
                if got >= pub.acked or got == last:
                    break
                last = got
                time.sleep(2)
            text = scrape(listen)
            rss_end = rss_kib(mon.pid)
        finally:
            mon.send_signal(signal.SIGTERM)
            try:
                mon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                mon.kill()
            broker.stop(signal.SIGTERM)
            log.close()
        received = int(metric(text, "anomae_events_received_total"))
        rows = [
            ("duration", f"{elapsed:.0f} s ({args.minutes:g} min asked)"),
            ("rate offered", f"{args.rate:,.0f} readings/s"),
            ("broker restarts", f"{broker.restarts} ({args.restart_signal})"),
            ("broker autosave_interval", str(args.autosave_interval)),
            ("offered", f"{i:,}"),
            ("not sent (unacked at --max-unacked)", f"{shed:,}"),
            ("published", f"{pub.published:,}"),
            ("acknowledged (PUBACK)", f"{pub.acked:,} ({pub.acked / elapsed:,.0f}/s)"),
            ("received by monitor", f"{received:,}"),
            ("lost acknowledged (count)", f"{max(0, pub.acked - received):,}"),
            ("missing by seq (skipped)", f"{int(metric(text, 'anomae_sequence_missing_total')):,}"),
            ("accepted", f"{int(metric(text, 'anomae_events_accepted_total')):,}"),
            ("windows scored", f"{int(metric(text, 'anomae_windows_scored_total')):,}"),
            ("p99 event-to-score", p99(text, "anomae_event_to_score_seconds")),
            ("RSS start / end", f"{rss_start / 1024:.1f} / {rss_end / 1024:.1f} MiB "
                                f"({100 * (rss_end - rss_start) / max(rss_start, 1):+.1f} %)"),
        ]  # fmt: skip
        for reason, n in sorted(by_reason(text, "anomae_events_invalid").items()):
            rows.append((f"invalid: {reason}", f"{n:,}"))
        for reason, n in sorted(by_reason(text, "anomae_events_dropped").items()):
            rows.append((f"dropped: {reason}", f"{n:,}"))
        width = max(len(k) for k, _ in rows)
        print(f"{'measure':<{width}}  value")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        if mon.returncode not in (0, None):
            print(f"monitor exited with status {mon.returncode}; log:")
            print((folder / "monitor.log").read_text()[-2000:])


if __name__ == "__main__":
    main()
