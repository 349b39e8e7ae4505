"""deploy/prometheus and deploy/alertmanager with the real promtool and amtool: the config and
rules check, the rules' unit tests pass, and they fail when a rule is broken (so they test
something); Alertmanager's config checks and routes each severity where the README says."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_deploy import DEPLOY, free_port, load_yaml, need_module, need_tool, run

PROM = DEPLOY / "prometheus"
RULES = PROM / "rules"
TESTS = sorted((PROM / "tests").glob("*.test.yml"))
ALERTS = RULES / "anomae-alerts.yml"
HEALTH = RULES / "anomae-health.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]


def test_config_and_rules_check() -> None:
    promtool = need_tool("promtool")
    r = run([promtool, "check", "config", str(PROM / "prometheus.yml")])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([promtool, "check", "rules", *map(str, sorted(RULES.glob("*.yml")))])
    assert r.returncode == 0, r.stdout + r.stderr


def test_scrape_job_is_the_one_the_rules_select() -> None:
    jobs = [j["job_name"] for j in load_yaml(PROM / "prometheus.yml")["scrape_configs"]]
    assert "anomae" in jobs
    assert all('up{job="anomae"}' in r["expr"] for r in alert_rules() if "up{" in r["expr"])


@pytest.mark.parametrize("test_file", TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    r = run([need_tool("promtool"), "test", "rules", str(test_file)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_rule_has_a_unit_test() -> None:
    tested: set[str] = set()
    for f in TESTS:
        for case in load_yaml(f)["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", [])}
            tested |= {t["expr"] for t in case.get("promql_expr_test", [])}
    names = {
        r.get("alert") or r["record"]
        for g in load_yaml(RULES / "anomae-recording.yml")["groups"]
        for r in g["rules"]
    }
    names |= {r["alert"] for r in alert_rules()}
    assert names <= tested, f"rules without a unit test: {names - tested}"


def test_every_alert_test_checks_the_for_boundary_and_firing() -> None:
    """Per alert: an evaluation where it is expected silent and one where it fires (with
    its labels), and its rule carries severity: what the routing matches on."""
    by_alert: dict[str, list[bool]] = {}
    for f in TESTS:
        for case in load_yaml(f)["tests"]:
            for t in case.get("alert_rule_test", []):
                by_alert.setdefault(t["alertname"], []).append(bool(t["exp_alerts"]))
                for a in t["exp_alerts"]:
                    assert "severity" in a["exp_labels"], t
    for rule in alert_rules():
        seen = by_alert[rule["alert"]]
        assert True in seen and False in seen, f"{rule['alert']}: needs firing and silent cases"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}


# Each mutation breaks one property of one alert; the unit tests must then fail.
def _set(rule: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(r: dict[str, Any]) -> None:
        if r.get("alert") == rule:
            r[key] = value

    return mutate


def _label(rule: str, name: str, value: str) -> Callable[[dict[str, Any]], None]:
    def mutate(r: dict[str, Any]) -> None:
        if r.get("alert") == rule:
            r["labels"][name] = value

    return mutate


def _features_of_any_instance(r: dict[str, Any]) -> None:
    if r.get("alert") == "AnomaeAnomaly":
        old = r["annotations"]["top_features"]
        new = old.replace("job=%q, instance=%q, series=%q", "series=%q")
        new = new.replace("$labels.job $labels.instance $labels.series", "$labels.series")
        assert new != old
        r["annotations"]["top_features"] = new


MUTATIONS = {
    "anomaly threshold": _set("AnomaeAnomaly", "expr", "anomae_anomaly_score >= 1"),
    "anomaly for": _set("AnomaeAnomaly", "for", "1m"),
    "anomaly severity": _label("AnomaeAnomaly", "severity", "critical"),
    "anomaly drops series": _set(
        "AnomaeAnomaly", "expr", "max without (series) (anomae_anomaly_score) > 1"
    ),
    "anomaly features of all monitors": _features_of_any_instance,
    "down for": _set("AnomaeMonitorDown", "for", "0s"),
    "down without absent": _set("AnomaeMonitorDown", "expr", 'up{job="anomae"} == 0'),
    "down any job": _set("AnomaeMonitorDown", "expr", "up == 0"),
    "source for": _set("AnomaeSourceDown", "for", "1m"),
    "stale limit": _set(
        "AnomaeInputStale", "expr", "time() - anomae_last_event_timestamp_seconds >= 600"
    ),
    "stale for": _set("AnomaeInputStale", "for", "0s"),
    "dropped for": _set("AnomaeEventsDropped", "for", "0s"),
    "dropped counts duplicates": _set(
        "AnomaeEventsDropped", "expr", "rate(anomae_events_dropped_total[5m]) > 0"
    ),
    "dropped loses reason": _set(
        "AnomaeEventsDropped",
        "expr",
        'sum by (job, instance) (rate(anomae_events_dropped_total{reason!="duplicate"}[5m])) > 0',
    ),
    "invalid ratio": _set(
        "AnomaeEventsInvalid",
        "expr",
        "sum by (job, instance) (rate(anomae_events_invalid_total[5m]))"
        " / sum by (job, instance) (rate(anomae_events_received_total[5m])) > 0.001",
    ),
    "invalid for": _set("AnomaeEventsInvalid", "for", "5m"),
    "model any sha": _set(
        "AnomaeModelChanged",
        "expr",
        "count by (job, instance) (max_over_time(anomae_build_info[15m])) > 1",
    ),
    "model severity": _label("AnomaeModelChanged", "severity", "warning"),
    "reload counts ok": _set(
        "AnomaeModelReloadFailed", "expr", "increase(anomae_model_reloads_total[15m]) > 0"
    ),
    "reload short window": _set(
        "AnomaeModelReloadFailed",
        "expr",
        'increase(anomae_model_reloads_total{result!="ok"}[5m]) > 0',
    ),
    "promotion counts ok": _set(
        "AnomaePromotionFailed", "expr", "increase(anomae_model_promotions_total[1h]) > 0"
    ),
    "promotion errors only": _set(
        "AnomaePromotionFailed",
        "expr",
        'increase(anomae_model_promotions_total{result="error"}[1h]) > 0',
    ),
    "promotion short window": _set(
        "AnomaePromotionFailed",
        "expr",
        'increase(anomae_model_promotions_total{result!="ok"}[15m]) > 0',
    ),
    "promotion severity": _label("AnomaePromotionFailed", "severity", "info"),
    "rollback counts failures": _set(
        "AnomaeModelRolledBack", "expr", "increase(anomae_model_rollbacks_total[1h]) > 0"
    ),
    "rollback short window": _set(
        "AnomaeModelRolledBack",
        "expr",
        'increase(anomae_model_rollbacks_total{result="ok"}[15m]) > 0',
    ),
    "rollback drops reason": _set(
        "AnomaeModelRolledBack",
        "expr",
        'sum without (reason) (increase(anomae_model_rollbacks_total{result="ok"}[1h])) > 0',
    ),
    "rollback severity": _label("AnomaeModelRolledBack", "severity", "critical"),
    "rollback failure counts ok": _set(
        "AnomaeRollbackFailed", "expr", "increase(anomae_model_rollbacks_total[1h]) > 0"
    ),
    "rollback failure short window": _set(
        "AnomaeRollbackFailed",
        "expr",
        'increase(anomae_model_rollbacks_total{result!="ok"}[5m]) > 0',
    ),
    "rollback failure severity": _label("AnomaeRollbackFailed", "severity", "info"),
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return need_tool("promtool")


def _tests_fail_with(
    rules: Path, mutate: Callable[[dict[str, Any]], None], promtool: str, tmp_path: Path
) -> bool:
    """Whether the unit tests fail on a copy of deploy/prometheus whose ``rules`` file has
    every rule passed through ``mutate``."""
    yaml = need_module("yaml")
    shutil.copytree(PROM, tmp_path / "prometheus")
    doc = load_yaml(rules)
    for group in doc["groups"]:
        for rule in group["rules"]:
            mutate(rule)
    assert doc != load_yaml(rules), "mutation changed nothing"
    (tmp_path / "prometheus" / "rules" / rules.name).write_text(yaml.safe_dump(doc))
    tests = sorted((tmp_path / "prometheus" / "tests").glob("*.test.yml"))
    return run([promtool, "test", "rules", *map(str, tests)]).returncode != 0


@pytest.mark.parametrize("name", MUTATIONS)
def test_unit_tests_catch_a_broken_rule(name: str, promtool: str, tmp_path: Path) -> None:
    assert _tests_fail_with(ALERTS, MUTATIONS[name], promtool, tmp_path), name


HEALTH_MUTATIONS = {
    "alarm rate margin": _set(
        "AnomaeAlarmRateAboveCalibration",
        "expr",
        "increase(anomae_series_events_total[6h]) > on (job, instance) group_left () "
        "(anomae_expected_false_events_per_day + 20)",
    ),
    "alarm rate for": _set("AnomaeAlarmRateAboveCalibration", "for", "0s"),
    "drift level": _set("AnomaeInputDrift", "expr", "abs(anomae_feature_mean_shift) >= 3"),
    "drift without spread": _set("AnomaeInputDrift", "expr", "abs(anomae_feature_mean_shift) > 3"),
    "drift for": _set("AnomaeInputDrift", "for", "30m"),
    "range level": _set(
        "AnomaeInputOutOfRange", "expr", "anomae_feature_out_of_range_ratio >= 0.05"
    ),
    "score drift factor": _set(
        "AnomaeScoreDrift",
        "expr",
        'anomae_score_quantile{q="0.9"} >= 2 * anomae_calibration_score_quantile{q="0.9"}',
    ),
    "score drift for": _set("AnomaeScoreDrift", "for", "1h"),
    "model age": _set(
        "AnomaeModelOld", "expr", "time() - anomae_model_trained_timestamp_seconds > 365 * 86400"
    ),
    "model old severity": _label("AnomaeModelOld", "severity", "warning"),
}


@pytest.mark.parametrize("name", HEALTH_MUTATIONS)
def test_health_unit_tests_catch_a_broken_rule(name: str, promtool: str, tmp_path: Path) -> None:
    assert _tests_fail_with(HEALTH, HEALTH_MUTATIONS[name], promtool, tmp_path), name


def test_unmutated_copy_passes(promtool: str, tmp_path: Path) -> None:
    # the mutation tests above are meaningful only if the copy itself passes
    yaml = need_module("yaml")
    shutil.copytree(PROM, tmp_path / "prometheus")
    (tmp_path / "prometheus" / "rules" / ALERTS.name).write_text(yaml.safe_dump(load_yaml(ALERTS)))
    tests = sorted((tmp_path / "prometheus" / "tests").glob("*.test.yml"))
    r = run([promtool, "test", "rules", *map(str, tests)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_config_checks() -> None:
    r = run([need_tool("amtool"), "check-config", str(ALERTMANAGER)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_alertmanager_rejects_a_broken_config(tmp_path: Path) -> None:
    bad = tmp_path / "alertmanager.yml"
    bad.write_text(ALERTMANAGER.read_text().replace("receiver: anomae-oncall", "receiver: nobody"))
    r = run([need_tool("amtool"), "check-config", str(bad)])
    assert r.returncode != 0


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "AnomaeMonitorDown", "severity": "critical"}, "anomae-oncall"),
        ({"alertname": "AnomaeAnomaly", "severity": "warning", "series": "m1"}, "anomae-webhook"),
        ({"alertname": "AnomaeModelChanged", "severity": "info"}, "anomae-webhook"),
        ({"alertname": "SomethingElse"}, "anomae-webhook"),
    ],
)
def test_alertmanager_routes(labels: dict[str, str], receiver: str) -> None:
    amtool = need_tool("amtool")
    args = [f"{k}={v}" for k, v in labels.items()]
    cmd = [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}"]
    r = run([*cmd, f"--verify.receivers={receiver}", *args])
    assert r.returncode == 0, r.stdout + r.stderr
    r = run([*cmd, "--verify.receivers=nobody", *args])
    assert r.returncode != 0


def test_every_severity_of_the_rules_has_a_route() -> None:
    routes = load_yaml(ALERTMANAGER)["route"]["routes"]
    matched = {m.split("=")[1].strip('"') for r in routes for m in r["matchers"]}
    severities = {r["labels"]["severity"] for r in alert_rules()}
    assert severities - {"warning"} <= matched  # warning takes the default route


def test_alert_receiver_prints_alerts(tmp_path: Path) -> None:
    port = free_port()
    script = DEPLOY / "alertmanager" / "alert_receiver.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        note = {
            "receiver": "anomae-webhook",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "AnomaeAnomaly", "series": "m1"},
                    "annotations": {"top_features": "rpm (0.60)"},
                }
            ],
        }
        deadline = time.monotonic() + 10
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/anomae", data=json.dumps(note).encode()
                )
                assert urllib.request.urlopen(req, timeout=2).status == 200
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["labels"]["series"] == "m1" and line["status"] == "firing"
        assert line["annotations"]["top_features"] == "rpm (0.60)" and line["path"] == "/anomae"
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
