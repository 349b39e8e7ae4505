from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    """Run ``python -m anomae.cli ARGS`` in a subprocess; returns CompletedProcess."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "anomae.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )


def blocked_imports(folder: Path, *packages: str) -> dict[str, str]:
    """Environment for a subprocess in which importing ``packages`` (and their submodules)
    fails with ModuleNotFoundError: a ``sitecustomize`` in ``folder``, first on PYTHONPATH,
    runs before anything else."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"_BLOCKED = {tuple(packages)!r}\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in _BLOCKED:\n"
        "            raise ModuleNotFoundError(f'{name} is blocked in this test', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    return {"PYTHONPATH": f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small generated dataset: 2 machines, 6 sensors, 2 days normal, 1 day test."""
    from anomae.synth import SynthConfig, write_demo

    out = tmp_path_factory.mktemp("demo")
    return write_demo(
        out, SynthConfig(seed=3, n_series=2, n_features=6, train_days=2.0, test_days=1.0)
    )


# `anomae train` flags for a quick model of small_demo
TRAIN_FLAGS = [
    "--window",
    "16",
    "--hidden",
    "32,8",
    "--epochs",
    "12",
    "--lr",
    "0.003",
    "--train-stride",
    "2",
    "--noise",
    "masking",
    "--no-progress",
]


@pytest.fixture(scope="session")
def trained(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained once by ``anomae train`` (tests copy it before changing it)."""
    model = tmp_path_factory.mktemp("model") / "model.onnx"
    r = run_cli(["train", str(small_demo["train"]), "-o", str(model), *TRAIN_FLAGS])
    assert r.returncode == 0, r.stderr
    assert "threshold" in r.stdout and model.is_file()
    return model
