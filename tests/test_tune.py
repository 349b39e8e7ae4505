"""Tests for :mod:`anomae.tune`: label-free model choice, through ``anomae tune`` and
``anomae run`` (the grid itself: tests/test_grid.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import polars as pl
import pytest
from conftest import run_cli

from anomae.inject import rows_needed
from anomae.synth import ANOMALY_KINDS, SynthConfig, generate

# Two candidates, one epoch each: what is tested is the plumbing, not the choice.
QUICK = ["--grid", "window=8,16", "--grid", "hidden=3", "--grid", "noise=0", "--grid",
         "center=off", "--tune-epochs", "1", "--tune-stride", "8", "--epochs", "1",
         "--method", "quantile", "--no-progress"]  # fmt: skip (0.6 held-out days: no events)


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 days of one machine (4,320 rows) with a label column that cannot be parsed: any
    read of it as a label would fail, so a run that succeeds never read it."""
    train, _ = generate(SynthConfig(n_series=1, n_features=6, train_days=3, test_days=1))
    path = tmp_path_factory.mktemp("tune") / "train.csv"
    train.with_columns(pl.lit("not-a-label").alias("label")).write_csv(path)
    return path


def test_tune_cli_chooses_records_and_ignores_labels(train_csv: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    r = run_cli(["tune", str(train_csv), "-o", str(model), *QUICK])
    assert r.returncode == 0, r.stderr
    assert f"label column 'label' in {train_csv} ignored" in r.stdout
    assert "[ 2/2] window 16" in r.stdout and "vus_pr" in r.stdout
    card = json.loads(run_cli(["inspect", str(model), "--json"]).stdout)
    tune = card["training"]["tune"]
    assert tune["grid"] == {"window": [8, 16], "hidden": [[3]], "noise": [0.0], "center": [False]}
    assert len(tune["candidates"]) == 2 and set(tune["injected"]["kinds"]) == set(ANOMALY_KINDS)
    best = tune["candidates"][tune["choice"]]
    assert best["rank"] == 1
    assert best["vus_pr"] == max(c["vus_pr"] for c in tune["candidates"])
    assert card["window"]["length"] == best["window"]  # the model written is the choice
    assert card["threshold"] is not None
    # the rest is the recipe for the data's shape (6 features: multivariate)
    assert "recipe: multivariate (auto: 6 feature(s))" in r.stdout
    assert card["architecture"]["aggregate"] == "max"
    assert card["alarm"]["post_rule"]["max_gap"] == 16 and not card["alarm"].get("likelihood")


def test_tune_on_one_feature_starts_from_the_univariate_recipe(
    train_csv: Path, tmp_path: Path
) -> None:
    one = tmp_path / "one.csv"
    pl.read_csv(train_csv).select("timestamp", "series", "temp_in").write_csv(one)
    model = tmp_path / "model.onnx"
    args = [a for a in QUICK if a not in ("--method", "quantile")]  # the recipe's method
    r = run_cli(["tune", str(one), "-o", str(model), *args])
    assert r.returncode == 0, r.stderr
    assert "recipe: univariate (auto: 1 feature(s))" in r.stdout
    card = json.loads(run_cli(["inspect", str(model), "--json"]).stdout)
    assert card["threshold"]["method"] == "ksigma" and card["alarm"].get("likelihood")
    assert card["window"]["length"] in (8, 16)  # the grid's choice, over the recipe's


def test_too_short_data_says_how_many_rows(train_csv: Path, tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    pl.read_csv(train_csv).head(2000).write_csv(short)
    model = tmp_path / "model.onnx"
    model.write_bytes(b"keep me")
    r = run_cli(["tune", str(short), "-o", str(model), "--force", *QUICK])
    assert r.returncode == 1
    need = rows_needed(16)
    assert f"held-out blocks of {need} rows" in r.stderr
    assert f"series of at least {10 * need:,} rows" in r.stderr and "has 2,000" in r.stderr
    assert model.read_bytes() == b"keep me"


def test_a_budget_the_held_out_data_cannot_resolve_is_refused_before_the_grid(
    train_csv: Path, tmp_path: Path
) -> None:
    # the recipe's events calibration (one false event a week) on 0.6 held-out days
    args = QUICK[: QUICK.index("--method")] + ["--no-progress"]
    model = tmp_path / "model.onnx"
    r = run_cli(["tune", str(train_csv), "-o", str(model), *args])
    assert r.returncode == 1
    assert "needs at least 0.70 series-days" in r.stderr and "--method quantile" in r.stderr
    assert "[ 1/2]" not in r.stdout and not model.exists()  # no candidate was trained


def test_run_with_a_tune_section(train_csv: Path, tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        textwrap.dedent(
            f"""
            [data]
            train = "{train_csv}"
            [train]
            epochs = 1
            progress = false
            [calibrate]
            method = "quantile"
            [tune]
            window = [8, 16]
            hidden = [[3]]
            noise = [0.0]
            center = [false, true]
            epochs = 1
            train_stride = 8
            """
        )
    )
    r = run_cli(["run", str(toml), "--out", str(tmp_path / "run")])
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert len(report["tune"]["candidates"]) == 4
    assert "ignored" in report["tune"]["labels"]
    best = report["tune"]["candidates"][report["tune"]["choice"]]
    assert report["config"]["window"]["length"] == best["window"]
    assert report["config"]["window"]["center"] == best["center"]


def test_tune_tries_the_period_unless_told_not_to(tmp_path: Path) -> None:
    import numpy as np

    t = np.arange(6000)
    noise = np.random.default_rng(0).normal(0, 0.05, 6000)
    data = tmp_path / "wave.csv"
    pl.DataFrame({"timestamp": t * 60, "x": np.sin(2 * np.pi * t / 40) + noise}).write_csv(data)
    r = run_cli(["tune", str(data), "-o", str(tmp_path / "p.onnx"), *QUICK])
    assert r.returncode == 0, r.stderr
    assert "period, 40 rows, is tried as a window too" in r.stdout
    assert "[ 3/3] window 40" in r.stdout
    card = json.loads(run_cli(["inspect", str(tmp_path / "p.onnx"), "--json"]).stdout)
    assert card["training"]["tune"]["grid"]["window"] == [8, 16, 40]
    r = run_cli(["tune", str(data), "-o", str(tmp_path / "n.onnx"), *QUICK, "--no-period"])
    assert r.returncode == 0 and "period, " not in r.stdout and "[ 2/2]" in r.stdout, r.stderr
