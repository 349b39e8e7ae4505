"""deploy/grafana without a Grafana: the provisioning files and the dashboard structurally
(schema keys, unique uids and ids, every datasource uid resolves, every alert condition and
expression refers to an existing refId, the dashboard links exist), every PromQL expression
parsed twice (the promql-parser package, and promtool, Prometheus' own parser), and the
Grafana-managed rules run through the Prometheus rules' promtool unit tests to prove they
are the same alerts."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_deploy import DEPLOY, load_yaml, need_module, need_tool, run

GRAFANA = DEPLOY / "grafana"
PROVISIONING = GRAFANA / "provisioning"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERTING = PROVISIONING / "alerting" / "anomae-alerts.yml"
PROM_ALERTS = DEPLOY / "prometheus" / "rules" / "anomae-alerts.yml"
PROM_TEST = DEPLOY / "prometheus" / "tests" / "anomae-alerts.test.yml"
BUILTIN_UIDS = {"-- Grafana --", "__expr__"}
# Grafana's own variables and the dashboard's: values that keep the PromQL valid
VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
PANEL_TYPES = {"timeseries", "state-timeline", "stat", "table", "bargauge", "heatmap", "row"}
THRESHOLD_OPS = {"gt": ">", "lt": "<"}
UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


def datasources() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yml")):
        doc = load_yaml(path)
        assert doc["apiVersion"] == 1
        for ds in doc["datasources"]:
            assert ds["uid"] not in found, f"duplicate datasource uid {ds['uid']}"
            found[ds["uid"]] = ds
    return found


def dashboards() -> dict[Path, dict[str, Any]]:
    return {p: json.loads(p.read_text()) for p in DASHBOARDS}


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def alert_rules() -> list[dict[str, Any]]:
    doc = load_yaml(ALERTING)
    assert doc["apiVersion"] == 1
    return [r for g in doc["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and query variable."""
    out = []
    for path, dash in dashboards().items():
        for p in panels(dash):
            for t in p.get("targets", []):
                out.append((f"{path.name} panel {p['id']} {t['refId']}", t["expr"]))
        for v in dash["templating"]["list"]:
            if v["type"] == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
                out.append((f"{path.name} variable {v['name']}", m.group(1) if m else q))
    return out


def alert_exprs() -> list[tuple[str, str]]:
    return [
        (f"alert {r['title']} {d['refId']}", d["model"]["expr"])
        for r in alert_rules()
        for d in r["data"]
        if d["datasourceUid"] != "__expr__"
    ]


def substitute(expr: str, dash_vars: set[str]) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    for name in dash_vars:
        expr = re.sub(rf"\${name}\b", ".*", expr)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def all_exprs() -> list[tuple[str, str]]:
    dash_vars = {v["name"] for d in dashboards().values() for v in d["templating"]["list"]}
    return [(w, substitute(e, dash_vars)) for w, e in dashboard_exprs() + alert_exprs()]


# --- datasources and dashboard provider


def test_datasource_is_prometheus_with_a_fixed_uid() -> None:
    ds = datasources()
    assert list(ds) == ["anomae-prometheus"]
    d = ds["anomae-prometheus"]
    assert d["type"] == "prometheus" and d["access"] == "proxy" and d["url"].startswith("http")
    assert UID.match(d["uid"])


def test_dashboard_provider_points_where_compose_mounts_the_dashboards() -> None:
    doc = load_yaml(PROVISIONING / "dashboards" / "anomae.yml")
    assert doc["apiVersion"] == 1
    (prov,) = doc["providers"]
    assert prov["type"] == "file" and UID.match(prov["folderUid"])
    grafana = load_yaml(DEPLOY / "docker-compose.yml")["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./grafana/dashboards"] == prov["options"]["path"]


# --- dashboard


def check_dashboard(dash: dict[str, Any]) -> None:
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time", "version"):
        assert key in dash, key
    assert UID.match(dash["uid"])
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert {"from", "to"} <= set(dash["time"])
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in panels(dash):
        assert p["type"] in PANEL_TYPES, p["type"]
        assert p["title"]
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        refs = [t["refId"] for t in p.get("targets", [])]
        assert len(refs) == len(set(refs)), f"duplicate refId in {p['title']}"
        assert all(t.get("expr") for t in p.get("targets", [])), p["title"]


def test_dashboard_schema() -> None:
    assert DASHBOARDS, "no dashboard"
    uids = [d["uid"] for d in dashboards().values()]
    assert len(uids) == len(set(uids))
    for dash in dashboards().values():
        check_dashboard(dash)


@pytest.mark.parametrize(
    "breakage",
    ["duplicate panel id", "panel off the grid", "unknown panel type", "no uid", "duplicate refId"],
)
def test_dashboard_check_catches(breakage: str) -> None:
    dash = next(iter(dashboards().values()))
    first, second = dash["panels"][0], dash["panels"][1]
    if breakage == "duplicate panel id":
        second["id"] = first["id"]
    elif breakage == "panel off the grid":
        first["gridPos"]["w"] = 30
    elif breakage == "unknown panel type":
        first["type"] = "graph-old"
    elif breakage == "no uid":
        del dash["uid"]
    else:
        first["targets"].append(dict(first["targets"][0]))
    with pytest.raises(AssertionError):
        check_dashboard(dash)


def test_dashboard_panels_do_not_overlap() -> None:
    for dash in dashboards().values():
        cells: dict[tuple[int, int], str] = {}
        for p in dash["panels"]:
            g = p["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]


def datasource_refs(dash: dict[str, Any]) -> list[tuple[str, Any]]:
    """``(where, datasource)`` of every panel, target, query variable and annotation."""
    refs: list[tuple[str, Any]] = []
    for p in panels(dash):
        if "datasource" in p:
            refs.append((p["title"], p["datasource"]))
        refs += [(p["title"], t["datasource"]) for t in p.get("targets", []) if "datasource" in t]
    refs += [(v["name"], v["datasource"]) for v in dash["templating"]["list"] if "datasource" in v]
    refs += [(a["name"], a["datasource"]) for a in dash["annotations"]["list"]]
    return refs


def test_every_datasource_reference_resolves() -> None:
    """Dashboards name their Prometheus through the ``datasource`` variable, which provisioning
    resolves to the default datasource (the provisioned one) and an import to any Prometheus."""
    known = datasources()
    assert [d["isDefault"] for d in known.values()] == [True]
    for dash in dashboards().values():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        refs = datasource_refs(dash)
        assert len(refs) > 10
        for where, ref in refs:
            assert isinstance(ref, dict), f"{where}: datasource by name, not {{type, uid}}"
            if ref["uid"] in BUILTIN_UIDS:
                continue
            var = variables.get(ref["uid"].removeprefix("${").removesuffix("}"))
            assert var is not None and var["type"] == "datasource", (
                f"{where}: datasource uid {ref['uid']} is not a datasource variable"
            )
            assert ref["type"] == var["query"], where
            assert var["query"] in {d["type"] for d in known.values()}
    for rule in alert_rules():
        for d in rule["data"]:
            assert d["datasourceUid"] in set(known) | BUILTIN_UIDS, rule["title"]


def test_no_hard_coded_datasource_uid() -> None:
    """A dashboard imported into another Grafana works only if no panel, target or variable
    names this Grafana's datasource uid: each uses ``${datasource}``."""
    for path, dash in dashboards().items():
        var = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
        assert [(v["name"], v["query"]) for v in var] == [("datasource", "prometheus")], path
        fixed = [
            f"{where}: {ref}"
            for where, ref in datasource_refs(dash)
            if ref["uid"] not in BUILTIN_UIDS and ref["uid"] != "${datasource}"
        ]
        assert not fixed, f"{path.name}: hard-coded datasource uids: {fixed}"
        assert "anomae-prometheus" not in path.read_text()


def test_dashboard_variables_used_are_defined() -> None:
    for dash in dashboards().values():
        defined = {v["name"] for v in dash["templating"]["list"]}
        used = {
            m
            for _, e in dashboard_exprs()
            for m in re.findall(r"\$(\w+)", e)
            if not m.startswith("__")
        }
        assert used <= defined, used - defined


@pytest.mark.parametrize(
    ("what", "panel_type", "needle"),
    [
        ("score vs threshold per series", "timeseries", "anomae_anomaly_score"),
        ("anomaly state timeline", "state-timeline", "anomae_anomaly{"),
        ("top features", "bargauge", "anomae_feature_error_ratio"),
        ("ingest rate", "timeseries", "rate(anomae_events_received_total"),
        ("drop rate", "timeseries", "rate(anomae_events_dropped_total"),
        ("latency heatmap", "heatmap", "anomae_event_to_score_seconds_bucket"),
        ("model info", "table", "anomae_build_info"),
    ],
)
def test_dashboard_has_panel(what: str, panel_type: str, needle: str) -> None:
    found = [
        p
        for d in dashboards().values()
        for p in panels(d)
        if p["type"] == panel_type and any(needle in t["expr"] for t in p.get("targets", []))
    ]
    assert found, f"no {panel_type} panel for {what}"
    if panel_type == "heatmap":
        assert found[0]["targets"][0]["format"] == "heatmap"
    if what.startswith("score"):  # the threshold line at 1
        steps = found[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert any(s["value"] == 1 for s in steps)


# --- Grafana-managed alert rules


def check_alert_rules(rules: list[dict[str, Any]]) -> None:
    dash_by_uid = {d["uid"]: d for d in dashboards().values()}
    assert len({r["uid"] for r in rules}) == len(rules), "duplicate rule uids"
    assert len({r["title"] for r in rules}) == len(rules), "duplicate rule titles"
    for r in rules:
        assert UID.match(r["uid"]), r["uid"]
        refs = [d["refId"] for d in r["data"]]
        assert len(refs) == len(set(refs)), r["title"]
        assert r["condition"] in refs, f"{r['title']}: condition {r['condition']} not a refId"
        for d in r["data"]:
            assert d["model"]["refId"] == d["refId"]
            if d["datasourceUid"] == "__expr__":
                assert d["model"]["type"] in {"threshold", "reduce", "math", "classic_conditions"}
                assert d["model"]["expression"] in refs, f"{r['title']} {d['refId']}"
                for c in d["model"].get("conditions", []):
                    assert c["evaluator"]["type"] in THRESHOLD_OPS
            else:
                assert d["model"]["instant"] is True and d["relativeTimeRange"]["to"] == 0
        assert r["noDataState"] in {"OK", "NoData", "Alerting"}
        assert r["execErrState"] in {"OK", "Error", "Alerting"}
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["for"]
        assert r["labels"]["severity"] in {"critical", "warning", "info"}
        ann = r["annotations"]
        if "__dashboardUid__" in ann:
            dash = dash_by_uid[ann["__dashboardUid__"]]
            assert int(ann["__panelId__"]) in {p["id"] for p in panels(dash)}, r["title"]


def test_alert_rules_structure() -> None:
    for g in load_yaml(ALERTING)["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(g)
    check_alert_rules(alert_rules())


@pytest.mark.parametrize(
    "breakage",
    ["condition refers to nothing", "expression refers to nothing", "duplicate uid", "bad panel"],
)
def test_alert_rules_check_catches(breakage: str) -> None:
    rules = alert_rules()
    if breakage == "condition refers to nothing":
        rules[0]["condition"] = "Z"
    elif breakage == "expression refers to nothing":
        rules[0]["data"][-1]["model"]["expression"] = "Q"
    elif breakage == "duplicate uid":
        rules[1]["uid"] = rules[0]["uid"]
    else:
        rules[0]["annotations"]["__panelId__"] = "999"
    with pytest.raises((AssertionError, KeyError)):
        check_alert_rules(rules)


def grafana_as_prometheus() -> dict[str, Any]:
    """Each Grafana rule as the PromQL alert it means: `(A) op threshold`, reduce `last` of
    an instant vector being the identity. Annotations are the Prometheus rule's, so the
    unit tests compare conditions, `for` and labels."""
    prom = {r["alert"]: r for g in load_yaml(PROM_ALERTS)["groups"] for r in g["rules"]}
    out = []
    for r in alert_rules():
        data = {d["refId"]: d["model"] for d in r["data"]}
        cond = data[r["condition"]]
        assert cond["type"] == "threshold"
        (c,) = cond["conditions"]
        src = data[cond["expression"]]
        if src.get("type") == "reduce":
            assert src["reducer"] == "last"
            src = data[src["expression"]]
        op, (value,) = THRESHOLD_OPS[c["evaluator"]["type"]], c["evaluator"]["params"]
        out.append(
            {
                "alert": r["title"],
                "expr": f"({src['expr']}) {op} {value}",
                "for": r["for"],
                "labels": r["labels"],
                "annotations": prom[r["title"]]["annotations"],
            }
        )
    return {"groups": [{"name": "grafana-as-prometheus", "rules": out}]}


def test_grafana_rules_are_the_prometheus_rules(tmp_path: Path) -> None:
    yaml = need_module("yaml")
    promtool = need_tool("promtool")
    translated = grafana_as_prometheus()
    prom_names = {r["alert"] for g in load_yaml(PROM_ALERTS)["groups"] for r in g["rules"]}
    assert {r["alert"] for r in translated["groups"][0]["rules"]} == prom_names
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(translated))
    test = load_yaml(PROM_TEST)
    test["rule_files"] = ["rules.yml"]
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    r = run([promtool, "test", "rules", str(tmp_path / "test.yml")])
    assert r.returncode == 0, r.stdout + r.stderr
    # and a Grafana rule that differs fails the same tests
    translated["groups"][0]["rules"][0]["for"] = "1m"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(translated))
    assert run([promtool, "test", "rules", str(tmp_path / "test.yml")]).returncode != 0


def test_monitor_down_covers_absent_targets() -> None:
    # Prometheus' absent() branch (tested in anomae-monitor-absent.test.yml) is noDataState
    (down,) = [r for r in alert_rules() if r["title"] == "AnomaeMonitorDown"]
    assert down["noDataState"] == "Alerting"


# --- PromQL parsing


def test_promql_parses_with_promql_parser() -> None:
    parser = need_module("promql_parser")
    exprs = all_exprs()
    assert len(exprs) > 20
    for where, expr in exprs:
        try:
            parser.parse(expr)
        except ValueError as e:
            pytest.fail(f"{where}: {expr}: {e}")
    with pytest.raises(ValueError):
        parser.parse("sum by (le) (rate(anomae_event_to_score_seconds_bucket[5m])")


def test_promql_parses_with_promtool(tmp_path: Path) -> None:
    yaml = need_module("yaml")
    promtool = need_tool("promtool")

    def check(exprs: list[str]) -> Any:
        rules = [{"record": f"grafana:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
        path = tmp_path / "exprs.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "grafana", "rules": rules}]}))
        return run([promtool, "check", "rules", str(path)])

    r = check([e for _, e in all_exprs()])
    assert r.returncode == 0, r.stdout + r.stderr
    assert check(["histogram_quantile(0.99, anomae_x_bucket"]).returncode != 0
