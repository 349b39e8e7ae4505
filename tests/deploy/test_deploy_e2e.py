"""From a scored stream to a delivered alert, with the real programs on 127.0.0.1: `anomae
monitor` fed demo readings in real time on stdin (20 per second per series, timestamps of the
data, one reading per minute of it), a real Prometheus loaded with the shipped rules (1 s
scrape and evaluation, the `for` of the two alerts under test shortened to 2 s), a real
Alertmanager with the shipped routing (timers shortened, webhooks pointed here) and a webhook
receiver in this process. Asserts: the anomaly alert fires for the series with the injected
fault, names the faulty feature first, reaches the webhook, resolves after the fault ends;
the fault's readings, far outside the training range, fire AnomaeInputOutOfRange (the health
rules, `for` shortened too), which resolves after it; SIGUSR1 promotes the --shadow model and
SIGUSR2 rolls it back (Prometheus sees the counters and the model's sha256 change, and
AnomaeModelRolledBack reaches the webhook; a second one, with nothing to go back to, fires
AnomaeRollbackFailed); a promotion that cannot keep the model in use
(MODEL.previous blocked) fires AnomaePromotionFailed while the current model scores on;
killing the monitor fires AnomaeMonitorDown on the on-call route.

Needs the `anomae monitor` command, torch (to train the tiny model), prometheus and
alertmanager; skips without them unless ANOMAE_REQUIRE_SERVERS=1 (CI) for the servers."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from test_deploy import DEPLOY, free_port, load_yaml, need_module, need_tool, readme_metrics

pytestmark = pytest.mark.slow

RATE = 20  # readings per second per series
FAULTY, HEALTHY, FEATURE = "m1", "m2", "rpm"
TRAIN_FLAGS = ["--window", "16", "--hidden", "32,8", "--epochs", "5", "--lr", "0.003"]
TRAIN_FLAGS += ["--train-stride", "2", "--no-progress"]
# two false events a week: the candidate retrained on the two training days less the rows
# this model flags has 0.65 series-days held out, less than one a week needs (0.70)
TRAIN_FLAGS += ["--false-events-per-day", "0.3"]


def _monitor_command_exists() -> bool:
    from anomae.cli import main

    return "monitor" in main.commands


if not _monitor_command_exists():
    pytest.skip("no `anomae monitor` command yet", allow_module_level=True)


def wait_for(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str]) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the servers' logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{logs()}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.loads(r.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as r:
        return str(r.read().decode())


class Webhook:
    """Alertmanager's webhook receiver: keeps (path, alert) for every alert it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    hook.received += [(self.path, a) for a in body["alerts"]]
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def alerts(self, name: str, status: str, **labels: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [
                (path, a)
                for path, a in self.received
                if a["labels"].get("alertname") == name
                and a["status"] == status
                and all(a["labels"].get(k) == v for k, v in labels.items())
            ]


class Feeder(threading.Thread):
    """Writes one reading per series to the monitor's stdin ``rate`` (RATE) times a second,
    from the start of the data again (timestamps moved on) when it ends; while ``fault`` is
    set, FEATURE of FAULTY reads 30 standard deviations high."""

    def __init__(self, proc: subprocess.Popen[str], data: Path) -> None:
        super().__init__(daemon=True)
        import polars as pl

        frame = pl.read_parquet(data)
        self.features = [
            c for c in frame.columns if c not in {"timestamp", "series", "label", "anomaly"}
        ]
        self.rows = {s: frame.filter(pl.col("series") == s).to_dicts() for s in (FAULTY, HEALTHY)}
        self.offset = 30 * float(frame[FEATURE].std() or 1.0)
        self.proc, self.fault, self.stop = proc, threading.Event(), threading.Event()
        self.sent, self.rate = 0, float(RATE)

    def line(self, series: str, row: dict[str, Any], shift: float = 0.0) -> str:
        values = {
            f: (None if row[f] is None or math.isnan(row[f]) else row[f]) for f in self.features
        }
        if series == FAULTY and self.fault.is_set() and values[FEATURE] is not None:
            values[FEATURE] += self.offset
        ts = row["timestamp"].timestamp() + shift
        return json.dumps({"series": series, "ts": ts, "values": values})

    def run(self) -> None:
        assert self.proc.stdin is not None
        tick = time.monotonic()
        i = 0
        n = min(len(r) for r in self.rows.values())
        first, last = (self.rows[FAULTY][k]["timestamp"].timestamp() for k in (0, n - 1))
        lap = last - first + (last - first) / max(n - 1, 1)
        while not self.stop.is_set():
            shift = (i // n) * lap
            text = "".join(
                self.line(s, rows[i % n], shift) + "\n" for s, rows in self.rows.items()
            )
            try:
                self.proc.stdin.write(text)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return  # the monitor was killed
            i += 1
            self.sent = i
            tick += 1 / self.rate
            time.sleep(max(0.0, tick - time.monotonic()))


def server(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


FAST = {  # rule file -> the alerts under test, whose `for` the e2e shortens to 2 s
    "anomae-alerts.yml": {"AnomaeAnomaly", "AnomaeMonitorDown"},
    "anomae-health.yml": {"AnomaeInputOutOfRange"},
}


def fast_rules(name: str = "anomae-alerts.yml") -> dict[str, Any]:
    doc = load_yaml(DEPLOY / "prometheus" / "rules" / name)
    for g in doc["groups"]:
        for r in g["rules"]:
            if r["alert"] in FAST[name]:
                r["for"] = "2s"
    return doc


def fast_alertmanager(webhook_port: int) -> dict[str, Any]:
    doc = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")

    def shorten(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "0s"), ("group_interval", "1s")):
            if key in route or route is doc["route"]:
                route[key] = value
        for child in route.get("routes", []):
            shorten(child)

    shorten(doc["route"])
    for rcv in doc["receivers"]:
        for hook in rcv.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{webhook_port}/{rcv['name']}"
    return doc


@pytest.mark.parametrize("name", sorted(FAST))
def test_rule_copy_changes_only_for(name: str) -> None:
    """The e2e runs the shipped rules: its copies differ in `for` only."""
    shipped = load_yaml(DEPLOY / "prometheus" / "rules" / name)
    copy = fast_rules(name)
    for g_s, g_c in zip(shipped["groups"], copy["groups"], strict=True):
        for r_s, r_c in zip(g_s["rules"], g_c["rules"], strict=True):
            assert {k: v for k, v in r_s.items() if k != "for"} == {
                k: v for k, v in r_c.items() if k != "for"
            }


@pytest.fixture(scope="module")
def model(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # tools first: no training when the test is going to skip
    need_tool("prometheus")
    need_tool("prometheus-alertmanager", "alertmanager")
    need_module("torch")
    out = tmp_path_factory.mktemp("e2e-model") / "model.onnx"
    r = run_cli(["train", str(small_demo["train"]), "-o", str(out), *TRAIN_FLAGS])
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def candidate(model: Path, small_demo: dict[str, Path]) -> Path:
    """`anomae retrain` of the model on the training data: the monitor's --shadow."""
    out = model.parent / "candidate.onnx"
    r = run_cli(["retrain", str(model), str(small_demo["train"]), "-o", str(out)])
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture
def stack(
    model: Path, candidate: Path, small_demo: dict[str, Path], tmp_path: Path
) -> Iterator[dict[str, Any]]:
    yaml = need_module("yaml")
    prometheus = need_tool("prometheus")
    alertmanager = need_tool("prometheus-alertmanager", "alertmanager")
    ports = {k: free_port() for k in ("monitor", "prometheus", "alertmanager")}
    webhook = Webhook()
    webhook.thread.start()

    (tmp_path / "rules").mkdir()
    for name in FAST:
        (tmp_path / "rules" / name).write_text(yaml.safe_dump(fast_rules(name)))
    recording = DEPLOY / "prometheus" / "rules" / "anomae-recording.yml"
    (tmp_path / "rules" / recording.name).write_text(recording.read_text())
    shipped = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in shipped["scrape_configs"] if j["job_name"] == "anomae"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{ports['monitor']}"]}]
    am_target = f"127.0.0.1:{ports['alertmanager']}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [f"rules/{name}" for name in (*FAST, "anomae-recording.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_target]}]}]},
        "scrape_configs": [job],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(fast_alertmanager(webhook.port)))

    logs = {k: tmp_path / f"{k}.log" for k in ("monitor", "prometheus", "alertmanager")}
    procs: dict[str, subprocess.Popen[Any]] = {}
    feeder: Feeder | None = None

    def show_logs() -> str:
        return "\n".join(f"--- {k}\n{p.read_text()[-3000:]}" for k, p in logs.items() if p.exists())

    try:
        procs["alertmanager"] = server(
            [
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
                "--cluster.listen-address=",  # no gossip: no settle wait, no 9094
            ],
            logs["alertmanager"],
        )
        current = tmp_path / "model.onnx"  # a promotion writes the candidate over it
        current.write_bytes(model.read_bytes())
        shadow = tmp_path / "candidate.onnx"  # the test writes it again: a new candidate
        shadow.write_bytes(candidate.read_bytes())
        with logs["monitor"].open("w") as log:
            procs["monitor"] = subprocess.Popen(
                [sys.executable, "-m", "anomae.cli", "monitor", str(current), "--source", "-"]
                + ["--listen", f"127.0.0.1:{ports['monitor']}", "--shadow", str(shadow)],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "ANOMAE_MONITOR_LOG_FORMAT": "logfmt"},
            )
        feeder = Feeder(procs["monitor"], small_demo["train"])
        feeder.start()
        procs["prometheus"] = server(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                "--rules.alert.resend-delay=1s",
            ],
            logs["prometheus"],
        )
        urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        for name, path in (
            ("monitor", "/readyz"),
            ("prometheus", "/-/ready"),
            ("alertmanager", "/-/ready"),
        ):
            wait_for(f"{name} ready", lambda u=urls[name] + path: get_text(u), 20, show_logs)
        yield {
            "urls": urls,
            "ports": ports,
            "webhook": webhook,
            "feeder": feeder,
            "monitor": procs["monitor"],
            "model": current,
            "candidate": shadow,
            "logs": show_logs,
        }
    finally:
        if feeder is not None:
            feeder.stop.set()
        for p in procs.values():
            stop(p)
        webhook.server.shutdown()


def prom_alerts(url: str, name: str, state: str = "firing") -> list[dict[str, Any]]:
    alerts = get_json(f"{url}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == state]


def prom_query(url: str, expr: str) -> list[dict[str, Any]]:
    q = urllib.parse.urlencode({"query": expr})
    return list(get_json(f"{url}/api/v1/query?{q}")["data"]["result"])


def scraped(url: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` on the monitor's /metrics (NaN: none)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(get_text(f"{url}/metrics")):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return math.nan


def test_anomaly_alert_fires_notifies_resolves_and_monitor_down(stack: dict[str, Any]) -> None:
    urls, webhook, feeder, logs = stack["urls"], stack["webhook"], stack["feeder"], stack["logs"]
    prom, instance = urls["prometheus"], f"127.0.0.1:{stack['ports']['monitor']}"
    mon, old = urls["monitor"], stack["model"].read_bytes()

    # every metric the assets use is exported by the monitor (the README list)
    exported = get_text(f"{urls['monitor']}/metrics")
    absent = [n for n in readme_metrics() if f"# TYPE {n} " not in exported]
    assert not absent, f"deploy/ uses metrics the monitor does not export: {absent}"

    wait_for(
        "Prometheus scraping the monitor",
        lambda: [r for r in prom_query(prom, 'up{job="anomae"} == 1')],
        20,
        logs,
    )
    wait_for(
        "scores of both series in Prometheus",
        lambda: len(prom_query(prom, "anomae_anomaly_score")) == 2,
        10,
        logs,
    )
    # normal data does not fire (a lone window over the threshold may make it pending)
    assert not prom_alerts(prom, "AnomaeAnomaly")

    feeder.fault.set()
    (alert,) = wait_for(
        "AnomaeAnomaly firing in Prometheus",
        lambda: prom_alerts(prom, "AnomaeAnomaly"),
        20,
        logs,
    )
    assert alert["labels"] == {
        "alertname": "AnomaeAnomaly",
        "severity": "warning",
        "job": "anomae",
        "instance": instance,
        "series": FAULTY,
    }
    top = alert["annotations"]["top_features"]
    assert top.startswith(f"{FEATURE} ("), top
    assert len(top.split(", ")) == 3, top
    (path, note) = wait_for(
        "the anomaly notification at the webhook",
        lambda: webhook.alerts("AnomaeAnomaly", "firing", series=FAULTY),
        15,
        logs,
    )[0]
    assert path == "/anomae-webhook"
    assert note["annotations"]["top_features"].startswith(f"{FEATURE} (")

    # the recording rules work on the monitor's real metrics too
    assert prom_query(prom, "anomae:events_received:rate5m > 0")
    assert prom_query(prom, "anomae:windows_scored:rate5m > 0")

    # drift: the fault's readings lie far outside the training range. The monitor's share of
    # them averages over about the last 10,000 readings: fed 10x faster until it passes 5 %,
    # at the live rate until the alert fires, 10x faster after the fault to fall back.
    def out_of_range() -> float:
        return scraped(mon, "anomae_feature_out_of_range_ratio", feature=FEATURE)

    feeder.rate = 10 * RATE
    wait_for("5 % of the readings out of range", lambda: out_of_range() > 0.05, 30, logs)
    feeder.rate = RATE
    (drift,) = wait_for(
        "AnomaeInputOutOfRange firing in Prometheus",
        lambda: prom_alerts(prom, "AnomaeInputOutOfRange"),
        20,
        logs,
    )
    assert drift["labels"]["feature"] == FEATURE
    assert drift["labels"]["severity"] == "warning"
    wait_for(
        "the out-of-range notification",
        lambda: webhook.alerts("AnomaeInputOutOfRange", "firing", feature=FEATURE),
        15,
        logs,
    )
    feeder.fault.clear()
    feeder.rate = 10 * RATE
    wait_for(
        "the resolved notification",
        lambda: webhook.alerts("AnomaeAnomaly", "resolved", series=FAULTY),
        20,
        logs,
    )
    wait_for(
        "the out-of-range alert resolved",
        lambda: webhook.alerts("AnomaeInputOutOfRange", "resolved", feature=FEATURE),
        30,
        logs,
    )
    feeder.rate = RATE
    assert not prom_alerts(prom, "AnomaeAnomaly")
    assert not webhook.alerts("AnomaeAnomaly", "firing", series=HEALTHY)
    # the shadow scored alongside, in Prometheus, and never alerted: every alert so far
    # was the current model's (no model label, the one firing alert above)
    assert len(prom_query(prom, "anomae_shadow_anomaly_score")) == 2
    assert prom_query(prom, 'anomae_model_events_total{model="current"}')
    assert not webhook.alerts("AnomaeAnomaly", "firing", model="shadow")

    # SIGUSR1 promotes the shadow: Prometheus sees the new model and the promotion
    sha = hashlib.sha256(stack["candidate"].read_bytes()).hexdigest()
    stack["monitor"].send_signal(signal.SIGUSR1)
    wait_for(
        "the promotion in Prometheus",
        lambda: prom_query(prom, 'anomae_model_promotions_total{result="ok"} == 1')
        and prom_query(prom, f'anomae_build_info{{model_sha256="{sha}"}}'),
        20,
        logs,
    )
    assert stack["model"].read_bytes() == stack["candidate"].read_bytes()
    assert len(prom_query(prom, "anomae_anomaly_score")) == 2  # both series scored on

    # SIGUSR2 rolls back to the model kept in MODEL.previous: Prometheus sees the old model
    # again and the rollback, and AnomaeModelRolledBack reaches the webhook
    previous = Path(f"{stack['model']}.previous")
    assert previous.read_bytes() == old
    old_sha = hashlib.sha256(old).hexdigest()
    stack["monitor"].send_signal(signal.SIGUSR2)
    wait_for(
        "the rollback in Prometheus",
        lambda: prom_query(prom, 'anomae_model_rollbacks_total{reason="signal",result="ok"} == 1')
        and prom_query(prom, f'anomae_build_info{{model_sha256="{old_sha}"}}'),
        20,
        logs,
    )
    assert stack["model"].read_bytes() == old and not previous.exists()
    (path, note) = wait_for(
        "AnomaeModelRolledBack at the webhook",
        lambda: webhook.alerts("AnomaeModelRolledBack", "firing", reason="signal"),
        15,
        logs,
    )[0]
    assert path == "/anomae-webhook" and note["labels"]["instance"] == instance

    # a second SIGUSR2 has no MODEL.previous to go back to: refused, AnomaeRollbackFailed
    stack["monitor"].send_signal(signal.SIGUSR2)
    wait_for(
        "AnomaeRollbackFailed at the webhook",
        lambda: webhook.alerts("AnomaeRollbackFailed", "firing", reason="signal", result="refused"),
        20,
        logs,
    )
    assert stack["model"].read_bytes() == old

    # the next candidate file is shadowed again; its promotion fails, as MODEL.previous (a
    # folder in the way) cannot keep the model in use: counted, alerted, the model scores on
    from anomae.atomic import atomic_write_bytes

    atomic_write_bytes(stack["candidate"], stack["candidate"].read_bytes())
    wait_for(
        "the new shadow scoring",
        lambda: not math.isnan(scraped(mon, "anomae_shadow_anomaly_score", series=FAULTY)),
        20,
        logs,
    )
    previous.mkdir()
    stack["monitor"].send_signal(signal.SIGUSR1)
    (path, note) = wait_for(
        "AnomaePromotionFailed at the webhook",
        lambda: webhook.alerts("AnomaePromotionFailed", "firing", result="error"),
        20,
        logs,
    )[0]
    assert path == "/anomae-webhook"
    assert scraped(mon, "anomae_model_promotions_total", result="ok") == 1
    assert stack["model"].read_bytes() == old
    assert prom_query(prom, f'anomae_build_info{{model_sha256="{old_sha}"}}')
    scored = scraped(mon, "anomae_windows_scored_total")
    wait_for(
        "the current model scoring on",
        lambda: scraped(mon, "anomae_windows_scored_total") > scored + 2 * RATE,
        10,
        logs,
    )

    stack["monitor"].kill()
    (path, note) = wait_for(
        "AnomaeMonitorDown at the on-call webhook",
        lambda: webhook.alerts("AnomaeMonitorDown", "firing", instance=instance),
        20,
        logs,
    )[0]
    assert path == "/anomae-oncall" and note["labels"]["severity"] == "critical"
