"""Typed training settings (:mod:`anomae.train.config`) are torch-free: a pipeline's
``[model]``, ``[noise]``, ``[sparsity]`` and ``[train]`` sections are checked when the file
is read, with file and section named, even where torch cannot be imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import blocked_imports, run_cli

from anomae.errors import PipelineError
from anomae.pipeline import parse_pipeline
from anomae.train.config import ArchConfig, NoiseConfig, SparsityConfig, TrainConfig, train_config

REPO = Path(__file__).resolve().parents[2]
BASE = '[data]\ntrain = "t.parquet"\n'

# A bad training key or value, and what the error says besides the file name.
BAD = [
    ("[model]\nhiden = [8]\n", "p.toml [model]: unknown key(s) ['hiden']"),
    ('[noise]\nkind = "salt"\n', "p.toml [noise]: noise kind must be one of"),
    ("[noise]\nsigma = -1\n", "p.toml [noise]: noise sigma must be >= 0"),
    ('[sparsity]\nkind = "kl"\n', 'set [model] code_activation = "sigmoid"'),
    ("[sparsity]\nrho = 1.5\n", "p.toml [sparsity]: sparsity rho must be in (0, 1)"),
    ("[train]\nepochs = 0\n", "p.toml [train]: epochs must be >= 1"),
    ('[train]\nlr = "fast"\n', "p.toml [train]: key 'lr' must be float"),
    ("[train]\nnoise = {}\n", "p.toml [train]: ['noise'] have sections of their own"),
]

_CHECK = textwrap.dedent("""
    import json, sys, tomllib
    from pathlib import Path
    from anomae.errors import PipelineError
    from anomae.pipeline import load_pipeline, parse_pipeline
    from anomae.train.config import train_config

    out = {"errors": []}
    for text in json.loads(sys.argv[1]):
        path = Path(sys.argv[2]) / "p.toml"
        path.write_text(text)
        try:
            load_pipeline(path)
            out["errors"].append(None)
        except PipelineError as exc:
            out["errors"].append(str(exc))
    good = {"data": {"train": "t.parquet"}, "model": {"hidden": [8, 2]}, "train": {"epochs": 2}}
    cfg = train_config(parse_pipeline(good, "good.toml"))
    out["good"] = [list(cfg.arch.hidden), cfg.epochs]
    out["torch"] = "torch" in sys.modules
    print(json.dumps(out))
""")


def test_training_sections_are_checked_with_torch_blocked(tmp_path: Path) -> None:
    env = blocked_imports(tmp_path / "block", "torch")
    texts = [BASE + text for text, _ in BAD]
    r = subprocess.run(
        [sys.executable, "-c", _CHECK, json.dumps(texts), str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["torch"] is False
    assert out["good"] == [[8, 2], 2]
    for (_, message), error in zip(BAD, out["errors"], strict=True):
        assert error is not None and message in error and "p.toml" in error, (message, error)


def test_anomae_run_names_a_bad_training_key_with_torch_blocked(tmp_path: Path) -> None:
    """The user's journey: ``anomae run`` on a pipeline with a typo, torch not installed:
    one line naming file, section and key, exit 1, no traceback, nothing written."""
    pipe = tmp_path / "p.toml"
    pipe.write_text(BASE + "[model]\nhiden = [8]\n")
    r = run_cli(["run", str(pipe), "-o", str(tmp_path / "out")],
                env=blocked_imports(tmp_path / "block", "torch"))  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "p.toml [model]: unknown key(s) ['hiden']" in r.stderr
    assert "Traceback" not in r.stderr and "torch" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_sections_build_the_typed_settings() -> None:
    pipe = parse_pipeline(
        {
            "data": {"train": "t.parquet"},
            "model": {"kind": "conv", "hidden": [16, 4], "code_activation": "sigmoid"},
            "noise": {"kind": "masking", "p": 0},
            "sparsity": {"kind": "kl", "rho": 0.1},
            "train": {"epochs": 7, "lr": 1, "threads": 1},
        }
    )
    cfg = train_config(pipe)
    assert cfg == TrainConfig(
        arch=ArchConfig(kind="conv", hidden=(16, 4), code_activation="sigmoid"),
        noise=NoiseConfig("masking", p=0.0),
        sparsity=SparsityConfig("kl", rho=0.1),
        epochs=7,
        lr=1.0,
        threads=1,
    )
    assert train_config(parse_pipeline({"data": {"train": "t.parquet"}})) == TrainConfig()


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (ArchConfig, {"kind": "lstm"}, "arch kind must be 'dense' or 'conv'"),
        (ArchConfig, {"hidden": ()}, "hidden widths must be positive"),
        (ArchConfig, {"kind": "conv", "channels": ()}, "at least one channel width"),
        (ArchConfig, {"code": "auto"}, "code must be 'fixed' (hidden as given) or 'features'"),
        (NoiseConfig, {"p": 1.0}, "noise p must be in [0, 1)"),
        (NoiseConfig, {"sigma": float("nan")}, "noise sigma must be >= 0"),
        (SparsityConfig, {"beta": -1.0}, "sparsity beta must be >= 0"),
        (TrainConfig, {"threads": -1}, "threads must be >= 0"),
        (TrainConfig, {"val_fraction": 1.0}, "val_fraction must be in [0, 1)"),
    ],
)
def test_settings_check_their_values(cls: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**kwargs)


def test_bad_value_is_a_pipeline_error_naming_the_source() -> None:
    doc = {"data": {"train": "t.parquet"}, "model": {"activation": "swish", "hidden": [0]}}
    with pytest.raises(PipelineError, match=r"^x\.toml \[model\]: hidden widths"):
        parse_pipeline(doc, "x.toml")


def test_the_old_homes_still_import() -> None:
    pytest.importorskip("torch")
    from anomae.train import fit, model, noise

    assert fit.TrainConfig is TrainConfig and fit.SparsityConfig is SparsityConfig
    assert model.ArchConfig is ArchConfig and noise.NoiseConfig is NoiseConfig


@pytest.mark.parametrize("command", ["run", "tune", "evaluate"])
def test_training_commands_need_torch_before_reading_data(tmp_path: Path, command: str) -> None:
    """A valid pipeline, torch not installed: the install hint comes first (not an error
    about the data, nor minutes later), and no output folder or file is made."""
    pipe = tmp_path / "p.toml"
    pipe.write_text('[data]\ntrain = "missing.csv"\n')
    out = tmp_path / "out"
    args = {
        "run": ["run", str(pipe), "-o", str(out)],
        "tune": ["tune", str(tmp_path / "missing.csv"), "-o", str(out / "m.onnx")],
        "evaluate": ["evaluate", str(REPO / "pipelines" / "skab.toml"), "-o", str(out),
                     "--data", str(tmp_path / "no-data")],
    }[command]  # fmt: skip
    r = run_cli(args, env=blocked_imports(tmp_path / "block", "torch"))
    assert r.returncode == 1, r.stderr
    assert "error: training needs PyTorch: pip install 'anomae[train]'" in r.stderr, r.stderr
    assert not out.exists()
