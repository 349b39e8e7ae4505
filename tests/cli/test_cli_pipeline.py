"""``anomae run`` (anomae/cli/pipeline.py), in subprocesses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow


def test_run_pipeline_end_to_end(small_demo: dict[str, Path], tmp_path: Path) -> None:
    pipe = tmp_path / "p.toml"
    pipe.write_text(
        textwrap.dedent(f"""
        [data]
        train = "{small_demo["train"]}"
        test = "{small_demo["test"]}"
        [window]
        length = 16
        train_stride = 2
        [model]
        kind = "conv"
        hidden = [16, 8]
        channels = [8, 16]
        [noise]
        kind = "gaussian"
        sigma = 0.1
        [sparsity]
        kind = "l1"
        beta = 0.0001
        [train]
        epochs = 2
        progress = false
        [calibrate]
        method = "quantile"
        q = 0.99
    """)
    )
    out = tmp_path / "run"
    r = run_cli(["run", str(pipe), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    for name in ("model.onnx", "scores.parquet", "events.csv", "report.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["threshold"]["params"] == {"q": 0.99}
    assert report["model"]["parity"]["max_rel_diff"] < 1e-4
    assert set(report["metrics"]["recall_by_kind"]) >= {"spike", "stuck", "drift"}
    assert "labelled anomalies detected" in r.stdout
    # what the model adds: each baseline through the same calibration and post-rules
    assert set(report["baselines"]) == {"ksigma", "pca", "windowed_gaussian"}
    assert report["baselines"]["pca"]["windows"] == report["metrics"]["windows"]
    assert "windowed_gaussian" in r.stdout and "false/day" in r.stdout


def test_evaluate_refuses_recipe_auto(tmp_path: Path) -> None:
    pipe = tmp_path / "b.toml"
    pipe.write_text('recipe = "auto"\n[benchmark]\ndataset = "skab"\n')
    r = run_cli(["evaluate", str(pipe), "--out", str(tmp_path / "out")])
    assert r.returncode == 1 and 'a benchmark pipeline names its recipe' in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
