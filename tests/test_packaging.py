"""What a user of the package expects: ``python -m anomae``, a licence, type hints shipped."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_python_dash_m_anomae_is_the_cli() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "anomae", "--help"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "Usage: python -m anomae" in r.stdout
    for command in ("train", "score", "monitor", "replay"):
        assert f"  {command} " in r.stdout


def test_metadata_names_the_licence_and_where_to_go() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text().splitlines()[0]
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # PEP 639
    assert {"Homepage", "Documentation", "Issues"} <= set(project["urls"])
    assert (REPO / "anomae" / "py.typed").is_file()


@pytest.mark.slow
def test_wheel_holds_licence_and_py_typed(tmp_path: Path) -> None:
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("the build backend (setuptools) is not installed")
    src = tmp_path / "src"  # a copy, so the build writes no build/ or egg-info into the tree
    shutil.copytree(REPO / "anomae", src / "anomae", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", str(src), "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "dist").glob("anomae-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "anomae/py.typed" in names
    # the recipes anomae.fit and pipelines name (recipe = "multivariate") ship in the package
    assert {"anomae/recipes/multivariate.toml", "anomae/recipes/univariate.toml"} <= set(names)
    assert "anomae/__main__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA")))
    assert b"License-Expression: Apache-2.0" in meta
