"""deploy/ as a whole: every file parses, and the metric names it uses are exactly the list at
the top of deploy/README.md (one place to align them with the monitor). The helpers here are
shared by the other tests/deploy/test_deploy_*.py files.

Tools (promtool, amtool, systemd-analyze, ...) and the dev packages that check the files skip
their tests where they are missing, unless ANOMAE_REQUIRE_SERVERS=1 (CI), where they fail."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
README = DEPLOY / "README.md"
REQUIRED = os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1"


def missing(what: str) -> None:
    """Skip, or fail under ANOMAE_REQUIRE_SERVERS=1, for a missing tool or package."""
    if REQUIRED:
        pytest.fail(f"{what} is missing (ANOMAE_REQUIRE_SERVERS=1)", pytrace=False)
    pytest.skip(f"{what} is missing")


def need_tool(*names: str) -> str:
    """The first of ``names`` found on PATH or as an absolute path, else skip/fail."""
    for name in names:
        found = shutil.which(name) or (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    missing(" or ".join(names))
    raise AssertionError  # unreachable: missing() raises


def need_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package {name}")
        raise


def load_yaml(path: Path) -> Any:
    return need_module("yaml").safe_load(path.read_text())


def load_yaml_all(path: Path) -> list[Any]:
    return [d for d in need_module("yaml").safe_load_all(path.read_text()) if d is not None]


def run(args: list[str], timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_metrics() -> dict[str, str]:
    """name -> type from the table between the metric-names markers of deploy/README.md."""
    text = README.read_text()
    start, end = text.index("<!-- metric-names:begin"), text.index("<!-- metric-names:end")
    rows = re.findall(r"^\| `([a-z_:0-9]+)` \| (\w+) \|", text[start:end], re.M)
    assert rows, "no metric rows found between the metric-names markers"
    return dict(rows)


def metric_tokens(text: str) -> set[str]:
    # anomae_* names only: recorded series are anomae:..., env vars ANOMAE_..., uids anomae-...
    return set(re.findall(r"(?<![A-Za-z0-9_:.-])anomae_[a-z0-9_]+", text))


def used_metrics() -> dict[str, set[str]]:
    """metric name (histogram suffixes folded) -> deploy files that use it."""
    hist = {n for n, t in readme_metrics().items() if t == "histogram"}
    used: dict[str, set[str]] = {}
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path == README:
            continue
        for tok in metric_tokens(path.read_text()):
            base = re.sub(r"_(bucket|sum|count)$", "", tok)
            used.setdefault(base if base in hist else tok, set()).add(str(path.relative_to(DEPLOY)))
    return used


def test_metric_names_are_the_readme_list() -> None:
    listed, used = set(readme_metrics()), used_metrics()
    unlisted = {n: sorted(f) for n, f in used.items() if n not in listed}
    assert not unlisted, f"add to the table in deploy/README.md (or fix the typo): {unlisted}"
    assert not listed - set(used), f"listed in deploy/README.md but unused: {listed - set(used)}"


def test_metric_scan_sees_names_in_every_kind_of_file() -> None:
    # guards the scanner itself: a regex that matched nothing would pass the test above
    # against an empty README list only, but a file kind silently skipped would not show
    used = used_metrics()
    kinds = {Path(f).suffix for files in used.values() for f in files}
    assert {".yml", ".json", ".yaml"} <= kinds
    assert "grafana/dashboards/anomae-monitor.json" in used["anomae_event_to_score_seconds"]
    assert metric_tokens('x{a="anomae_x"} anomae:y ANOMAE_MONITOR_Z anomae-monitor') == {"anomae_x"}


def test_readme_metric_types_are_known() -> None:
    types = set(readme_metrics().values())
    assert types <= {"gauge", "counter", "histogram", "info"}, types
    counters = [n for n, t in readme_metrics().items() if t == "counter"]
    assert all(n.endswith("_total") for n in counters), counters


@pytest.mark.parametrize(
    "path",
    sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yml", ".yaml", ".json"}),
    ids=lambda p: str(p.relative_to(DEPLOY)),
)
def test_every_config_file_parses(path: Path) -> None:
    if path.suffix == ".json":
        json.loads(path.read_text())
    else:
        assert load_yaml_all(path), f"{path} is empty"
    assert "\t" not in path.read_text(), "tabs in a YAML/JSON file"


def test_readme_has_copy_paste_steps_for_systemd_and_kubernetes() -> None:
    text = README.read_text()
    for heading in ("## systemd", "## Kubernetes", "## Docker Compose"):
        assert heading in text, heading
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    joined = "\n".join(blocks)
    for step in (
        "systemctl enable --now anomae-monitor",
        "kubectl create configmap anomae-model",
        "kubectl apply -f deploy/k8s/",
        "docker compose -f deploy/docker-compose.yml up",
    ):
        assert step in joined, f"README lacks the step: {step}"
    # every deploy/ path the README mentions exists
    for ref in set(re.findall(r"(?<![\w/])deploy/[\w./-]+\w", text)):
        assert (ROOT / ref).exists(), f"README refers to a missing {ref}"


def test_environment_variables_are_monitor_options() -> None:
    """Every ANOMAE_MONITOR_* that deploy/ sets is the environment variable of an option of
    `anomae monitor` (ANOMAE_MONITOR_<LONG OPTION NAME>). Skips until the monitor lands."""
    from anomae.cli import main

    monitor = main.commands.get("monitor")
    if monitor is None:
        pytest.skip("no `anomae monitor` command yet")
    options = {p.envvar for p in monitor.params if isinstance(p.envvar, str)}
    used: dict[str, set[str]] = {}
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path != README:
            for name in re.findall(r"\bANOMAE_MONITOR_[A-Z0-9_]+", path.read_text()):
                used.setdefault(name, set()).add(str(path.relative_to(DEPLOY)))
    assert used, "no ANOMAE_MONITOR_* found in deploy/"
    unknown = {n: sorted(f) for n, f in used.items() if n not in options}
    assert not unknown, f"not options of `anomae monitor`: {unknown}"


def test_shipped_sources_are_accepted_by_the_monitor() -> None:
    """Every mqtt:// source URL in deploy/ parses with the monitor's own --source parser
    (nothing connects). Skips until the monitor lands."""
    if importlib.util.find_spec("anomae.monitor.app") is None:
        pytest.skip("no anomae.monitor.app yet")
    from anomae.monitor.app import open_source

    urls = {
        u
        for p in DEPLOY.rglob("*")
        if p.is_file()
        for u in re.findall(r"mqtts?://[\w.-]+:\d+/[^\s'\"]*", p.read_text())
    }
    assert urls, "no mqtt:// source in deploy/"
    for url in sorted(urls):
        open_source(url)
