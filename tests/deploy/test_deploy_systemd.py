"""deploy/systemd with the real systemd-analyze: `verify` (unknown keys and unparsable values
only warn, so any line about the unit fails the test) and `security --offline` (the sandbox
scores at most 2.0 of 10 exposure), plus the hardening and drain settings the README
promises. `verify` needs ExecStart's binary to exist, and /opt/anomae/bin/anomae exists only
once installed: the test verifies a copy whose ExecStart points at an executable stub in a
temporary folder, every other line unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_deploy import DEPLOY, need_tool, run

UNIT = DEPLOY / "systemd" / "anomae-monitor.service"
ENV_FILE = DEPLOY / "systemd" / "monitor.env"
EXEC = "/opt/anomae/bin/anomae"


def unit_copy(tmp_path: Path, text: str | None = None) -> Path:
    stub = tmp_path / "anomae"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text() if text is None else text
    assert f"ExecStart={EXEC} " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={EXEC} ", f"ExecStart={stub} "))
    return copy


def verify(unit: Path) -> list[str]:
    """Problems systemd-analyze verify reports about ``unit``."""
    r = run([need_tool("systemd-analyze"), "verify", str(unit)])
    lines = [x for x in (r.stdout + r.stderr).splitlines() if unit.name in x]
    if r.returncode != 0 and not lines:
        lines = [f"exit {r.returncode}: {r.stderr.strip()}"]
    return lines


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_verify_is_clean(tmp_path: Path) -> None:
    assert verify(unit_copy(tmp_path)) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("NoNewPrivileges=yes", "NoNewPrivilege=yes"),  # unknown key
        ("ProtectSystem=strict", "ProtectSystem=strictest"),  # bad value
        ("TimeoutStopSec=30s", "TimeoutStopSec=thirty"),
        ("[Install]", "[Instal]"),  # unknown section
    ],
)
def test_verify_catches_a_broken_unit(tmp_path: Path, old: str, new: str) -> None:
    text = UNIT.read_text()
    assert old in text
    assert verify(unit_copy(tmp_path, text.replace(old, new)))


def test_verify_needs_the_binary(tmp_path: Path) -> None:
    # why the copy: the shipped path does not exist before installation
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(EXEC, str(tmp_path / "missing")))
    assert verify(copy)


def test_security_exposure_is_low(tmp_path: Path) -> None:
    sa = need_tool("systemd-analyze")
    r = run([sa, "security", "--offline=yes", "--threshold=20", str(unit_copy(tmp_path))])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
    assert score and float(score.group(1)) <= 2.0, r.stdout[-300:]


def test_security_threshold_fails_an_open_unit(tmp_path: Path) -> None:
    sa = need_tool("systemd-analyze")
    bare = "[Service]\nExecStart=" + EXEC + " monitor /etc/anomae/model.onnx\n"
    r = run([sa, "security", "--offline=yes", "--threshold=20", str(unit_copy(tmp_path, bare))])
    assert r.returncode != 0


def test_hardening_and_drain_settings() -> None:
    s = settings()
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
        "StateDirectory": "anomae",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "30s",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    for key, value in expected.items():
        assert s[key] == [value], key
    assert "@system-service" in s["SystemCallFilter"]
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert s["EnvironmentFile"] == ["-/etc/anomae/monitor.env"]


def test_environment_names_are_monitor_options() -> None:
    names = re.findall(r"^(\w+)=", ENV_FILE.read_text(), re.M)
    names += [v.split("=")[0] for v in settings()["Environment"]]
    assert names and all(n.startswith("ANOMAE_MONITOR_") or n == "PYTHONUNBUFFERED" for n in names)
    # the sink, the only file the monitor writes, is in the StateDirectory
    sink = re.search(r"^ANOMAE_MONITOR_SINK=(.*)$", ENV_FILE.read_text(), re.M)
    assert sink and sink.group(1).startswith("/var/lib/anomae/")


RETRAIN = DEPLOY / "systemd" / "anomae-retrain.service"
TIMER = DEPLOY / "systemd" / "anomae-retrain.timer"
RETRAIN_ENV = DEPLOY / "systemd" / "retrain.env"


def retrain_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The retrain unit with ExecStart's binary a stub, and its timer beside it."""
    stub = tmp_path / "anomae"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = RETRAIN.read_text() if text is None else text
    assert f"ExecStart={EXEC} retrain " in text
    (tmp_path / TIMER.name).write_text(TIMER.read_text())
    copy = tmp_path / RETRAIN.name
    copy.write_text(text.replace(f"ExecStart={EXEC} ", f"ExecStart={stub} "))
    return copy


def test_retrain_service_and_timer_verify_clean_and_are_sandboxed(tmp_path: Path) -> None:
    unit = retrain_copy(tmp_path)
    assert verify(unit) == [] and verify(tmp_path / TIMER.name) == []
    assert verify(retrain_copy(tmp_path, RETRAIN.read_text().replace("Type=oneshot", "Type=once")))
    sa = need_tool("systemd-analyze")
    r = run([sa, "security", "--offline=yes", "--threshold=20", str(unit)])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


def test_retrain_writes_the_candidate_from_the_model_a_promotion_writes() -> None:
    """The job reads the model where the monitor can overwrite it (its StateDirectory) and
    writes the candidate there; every ANOMAE_RETRAIN_* it sets is a retrain option."""
    from anomae.cli import main

    text = RETRAIN.read_text()
    exec_start = "ExecStart=/opt/anomae/bin/anomae retrain /var/lib/anomae/model.onnx $RETRAIN_DATA"
    assert exec_start in text
    assert "Environment=ANOMAE_RETRAIN_OUT=/var/lib/anomae/candidate.onnx" in text
    assert "StateDirectory=anomae" in text and "Type=oneshot" in text
    options = {p.envvar for p in main.commands["retrain"].params if isinstance(p.envvar, str)}
    names = set(re.findall(r"\bANOMAE_RETRAIN_[A-Z0-9_]+", text + RETRAIN_ENV.read_text()))
    assert names and names <= options, names - options
    assert "Unit=" not in TIMER.read_text()  # the timer starts the service of its own name
    assert TIMER.stem == RETRAIN.stem


DROPIN = DEPLOY / "systemd" / "anomae-monitor.service.d" / "promotion.conf"


def with_dropin(tmp_path: Path, text: str | None = None) -> Path:
    """The unit copy and, in its .d folder beside it, the promotion drop-in (ExecStart's
    binary the same stub)."""
    unit = unit_copy(tmp_path)
    text = DROPIN.read_text() if text is None else text
    folder = tmp_path / f"{UNIT.name}.d"
    folder.mkdir()
    (folder / DROPIN.name).write_text(
        text.replace(f"ExecStart={EXEC} ", f"ExecStart={tmp_path / 'anomae'} ")
    )
    return unit


def test_promotion_dropin_verifies_clean_and_stays_sandboxed(tmp_path: Path) -> None:
    unit = with_dropin(tmp_path)
    assert verify(unit) == []
    sa = need_tool("systemd-analyze")
    r = run([sa, "security", "--offline=yes", "--threshold=20", str(unit)])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


def test_verify_reads_the_dropin(tmp_path: Path) -> None:
    # without the empty ExecStart= the unit would have two: refused, so the drop-in is read
    text = DROPIN.read_text()
    assert "\nExecStart=\n" in text
    assert verify(with_dropin(tmp_path, text.replace("\nExecStart=\n", "\n")))


def test_promotion_dropin_writes_only_where_the_unit_already_may() -> None:
    """The model a promotion overwrites (and MODEL.previous beside it) is in the
    StateDirectory, the unit's one writable folder: no ReadWritePaths, no weaker sandbox.
    The shadow is the candidate anomae-retrain.service writes, from that same model."""
    from anomae.cli import main

    text = DROPIN.read_text()
    lines = [x for x in text.splitlines() if x and not x.startswith(("#", "["))]
    keys = {x.partition("=")[0] for x in lines}
    assert keys == {"Environment", "ExecStart"}, keys
    assert "ExecStart=/opt/anomae/bin/anomae monitor /var/lib/anomae/model.onnx" in lines
    env = dict(x.removeprefix("Environment=").split("=", 1) for x in lines if "Environment=" in x)
    options = {p.envvar for p in main.commands["monitor"].params if isinstance(p.envvar, str)}
    assert set(env) <= options, set(env) - options
    assert env["ANOMAE_MONITOR_SHADOW"] == "/var/lib/anomae/candidate.onnx"
    retrain = RETRAIN.read_text()
    assert f"Environment=ANOMAE_RETRAIN_OUT={env['ANOMAE_MONITOR_SHADOW']}" in retrain
    assert "retrain /var/lib/anomae/model.onnx " in retrain
    assert settings()["StateDirectory"] == ["anomae"]
