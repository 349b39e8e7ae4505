"""deploy/k8s offline: Deployment and Service against the Kubernetes OpenAPI schemas of the
kubernetes-validate package in strict mode (unknown fields fail); the ServiceMonitor, a CRD
that package has no schema for, against the subset of the Prometheus Operator's schema it
uses; the PrometheusRule equal to deploy/prometheus/rules; and the wiring between them
(selectors, ports, probes, the model mount, the job name the alert rules select).

``python tests/deploy/test_deploy_k8s.py`` rewrites deploy/k8s/prometheusrule.yaml from the
rules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from test_deploy import DEPLOY, load_yaml, load_yaml_all, need_module

K8S = DEPLOY / "k8s"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
# the oldest Kubernetes still commonly run, and the newest the validator knows
VERSIONS = ["1.28.0", "1.33.0"]


def docs() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for d in load_yaml_all(path):
            assert d["kind"] not in found, f"two {d['kind']} objects"
            found[d["kind"]] = d
    return found


def test_expected_objects() -> None:
    assert set(docs()) == {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "CronJob"}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["Deployment", "Service", "CronJob"])
def test_strict_schema(kind: str, version: str) -> None:
    kv = need_module("kubernetes_validate")
    kv.validate(docs()[kind], version, strict=True)


def test_strict_schema_rejects_an_unknown_field() -> None:
    kv = need_module("kubernetes_validate")
    bad = docs()["Deployment"]
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, VERSIONS[-1], strict=True)


# The fields of monitoring.coreos.com/v1 ServiceMonitor this file uses, from the Operator's
# CRD; additionalProperties: false catches misspelt keys as --strict does for built-ins.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "scrapeTimeout": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}


def test_service_monitor_schema() -> None:
    jsonschema = need_module("jsonschema")
    jsonschema.validate(docs()["ServiceMonitor"], SERVICE_MONITOR_SCHEMA)
    bad = docs()["ServiceMonitor"]
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SERVICE_MONITOR_SCHEMA)


def test_deployment_is_hardened_and_probed() -> None:
    dep = docs()["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["ANOMAE_MONITOR_LISTEN"] == f"0.0.0.0:{ports['metrics']}"
    # SIGTERM drain fits in the grace period
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_model_comes_from_a_read_only_configmap_volume() -> None:
    pod = docs()["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    model_arg = next(a for a in c["args"] if a.endswith(".onnx"))
    mount = mounts[str(Path(model_arg).parent)]
    assert mount["readOnly"] is True
    assert volumes[mount["name"]]["configMap"]["name"] == "anomae-model"
    # with a read-only root filesystem every written path needs a volume
    env = {e["name"]: e["value"] for e in c["env"]}
    sink = Path(env["ANOMAE_MONITOR_SINK"]).parent
    assert str(sink) in mounts and "readOnly" not in mounts[str(sink)]
    assert "/tmp" in mounts
    assert {m["name"] for m in c["volumeMounts"]} == set(volumes)


def test_selectors_ports_and_job_name_line_up() -> None:
    d = docs()
    dep, svc, sm = d["Deployment"], d["Service"], d["ServiceMonitor"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in c["ports"]}
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert {e["port"] for e in sm["spec"]["endpoints"]} == {port["name"]}
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    # the Operator names the job after this label of the Service: the rules select "anomae"
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "anomae"


def prometheus_rule() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "anomae",
            "labels": {
                "app.kubernetes.io/name": "anomae",
                "app.kubernetes.io/component": "monitor",
            },
        },
        "spec": {"groups": [g for f in RULES for g in load_yaml(f)["groups"]]},
    }


def write_prometheus_rule() -> None:
    yaml = need_module("yaml")
    header = (
        "# GENERATED from deploy/prometheus/rules/*.yml by "
        "`python tests/deploy/test_deploy_k8s.py`:\n"
        "# edit the rules there, then regenerate. For the Prometheus Operator; your\n"
        "# Prometheus' ruleSelector may require a label such as release: <helm release>.\n"
    )
    body = yaml.safe_dump(prometheus_rule(), sort_keys=False, width=1000, allow_unicode=True)
    (K8S / "prometheusrule.yaml").write_text(header + body)


def test_prometheus_rule_matches_the_rule_files() -> None:
    assert docs()["PrometheusRule"] == prometheus_rule(), (
        "deploy/k8s/prometheusrule.yaml is stale: run python tests/deploy/test_deploy_k8s.py"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    write_prometheus_rule()
    print(f"wrote {K8S / 'prometheusrule.yaml'}")


SHARDED = K8S / "sharded" / "statefulset.yaml"


@pytest.mark.parametrize("version", VERSIONS)
def test_sharded_statefulset_schema(version: str) -> None:
    kv = need_module("kubernetes_validate")
    kv.validate(load_yaml_all(SHARDED)[0], version, strict=True)


def test_sharded_statefulset_splits_the_fleet_like_the_deployment_runs_it() -> None:
    sts, dep = load_yaml_all(SHARDED)[0], docs()["Deployment"]
    assert sts["kind"] == "StatefulSet"
    spec = sts["spec"]
    container = spec["template"]["spec"]["containers"][0]
    # --shard I/N with N the replica count and I the pod's ordinal
    args = container["args"]
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(SHARD_INDEX)/{spec['replicas']}" and spec["replicas"] > 1
    env = {e["name"]: e for e in container["env"]}
    field = env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.labels['apps.kubernetes.io/pod-index']"
    # everything else as the single-replica Deployment: same pod hardening, probes, mounts
    dep_pod, sts_pod = dep["spec"]["template"]["spec"], spec["template"]["spec"]
    for key in ("securityContext", "volumes", "automountServiceAccountToken"):
        assert sts_pod[key] == dep_pod[key], key
    dep_c = dep_pod["containers"][0]
    for key in ("readinessProbe", "livenessProbe", "securityContext", "volumeMounts", "ports"):
        assert container[key] == dep_c[key], key
    assert spec["selector"] == dep["spec"]["selector"]  # the Service selects every replica


def test_retrain_cronjob_writes_the_candidate_the_monitor_shadows() -> None:
    """The CronJob runs `anomae retrain` (one run at a time) from the model file a
    promotion overwrites to the candidate path, both on the shared claim, hardened like the
    monitor; an unknown field in it fails the strict schema."""
    job = docs()["CronJob"]
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    args = c["args"]
    assert args[0] == "retrain" and args[args.index("--out") + 1].endswith("candidate.onnx")
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["models"]
    assert args[1].startswith(mount) and args[args.index("--out") + 1].startswith(mount)
    claims = {v["name"]: v for v in pod["volumes"]}
    assert claims["models"]["persistentVolumeClaim"]["claimName"] == "anomae-models"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    kv = need_module("kubernetes_validate")
    c["resources"]["limitz"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(job, VERSIONS[-1], strict=True)
