"""``anomae train --recipe`` (anomae/cli/recipe.py): the options given laid over a recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import run_cli

from anomae.cli.recipe import OPTION_KEYS, RUN_OPTIONS, recipe_pipeline, settings_doc


def _defaults() -> dict[str, object]:
    from anomae.cli.training import train

    return {p.name: p.default for p in train.params if p.name}


def _doc(values: dict[str, object], given: set[str]) -> dict[str, dict[str, object]]:
    return {**settings_doc(values, given), "data": {"train": ["data.csv"]}}


def test_every_setting_option_is_laid_over_the_recipe() -> None:
    names = {p for p in _defaults()}
    assert set(OPTION_KEYS) <= names, set(OPTION_KEYS) - names


def test_the_defaults_shown_are_the_multivariate_recipes() -> None:
    """``anomae train --help`` shows the multivariate recipe's values: every option at its
    default, given explicitly, trains what the recipe alone trains."""
    values = _defaults()
    shown = {n for n, v in values.items() if n in OPTION_KEYS and v is not None}
    given = shown - {"search_min_windows"}  # "" = none: the recipe's post-rule
    alone, _ = recipe_pipeline("multivariate", _doc(values, set()), 8)
    explicit, _ = recipe_pipeline("multivariate", _doc(values, given), 8)
    from anomae.train.config import train_config

    # [model], [noise], [sparsity], [train] as trained (the keys a recipe leaves out at
    # their defaults), the other sections as parsed
    assert train_config(explicit) == train_config(alone)
    raw = ("model", "noise", "sparsity", "train")
    assert {k: v for k, v in explicit.to_dict().items() if k not in raw} == {
        k: v for k, v in alone.to_dict().items() if k not in raw
    }


def test_only_the_options_given_and_the_run_options_are_laid_over() -> None:
    values = {**_defaults(), "hidden": "32,4", "sparsity": "kl", "window": 12}
    doc = settings_doc(values, set())
    assert {k for section in doc.values() for k in section} == set(RUN_OPTIONS)
    doc = settings_doc(values, {"hidden", "sparsity", "window"})
    assert doc["window"] == {"length": 12}
    # widths given are the widths trained; kl needs a code in (0, 1)
    assert doc["model"] == {"hidden": [32, 4], "code": "fixed", "code_activation": "sigmoid"}
    doc = settings_doc({**values, "code": "features"}, {"hidden", "code"})
    assert doc["model"] == {"hidden": [32, 4], "code": "features"}


def test_auto_takes_the_recipe_for_the_datas_shape() -> None:
    doc = _doc(_defaults(), set())
    one, name1 = recipe_pipeline("auto", doc, 1)
    many, name8 = recipe_pipeline("auto", doc, 8)
    assert (name1, name8) == ("univariate", "multivariate")
    assert (one.window.length, many.window.length) == (16, 8)
    assert one.likelihood is not None and many.likelihood is None


@pytest.mark.slow
def test_train_on_one_feature_takes_the_univariate_recipe(tmp_path: Path) -> None:
    from anomae.modelfile import read_card

    t = np.arange(2000)
    x = np.sin(2 * np.pi * t / 37) + np.random.default_rng(0).normal(0, 0.1, t.size)
    data = tmp_path / "metric.csv"
    pl.DataFrame({"timestamp": t * 60, "x": x}).write_csv(data)
    base = ["train", str(data), "--epochs", "1", "--no-progress"]
    r = run_cli([*base, "-o", str(tmp_path / "a.onnx")])
    assert r.returncode == 0, r.stderr
    assert "recipe: univariate (auto: 1 feature(s))" in r.stdout
    card = read_card(tmp_path / "a.onnx")
    assert card.window.length == 16 and card.alarm.get("likelihood"), card.alarm
    assert card.threshold is not None and card.threshold.method == "ksigma"
    # an option given replaces the recipe's; a method of its own drops the recipe's k
    r = run_cli([*base, "-o", str(tmp_path / "b.onnx"), "--window", "12", "--method",
                 "quantile", "--q", "0.99"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    card = read_card(tmp_path / "b.onnx")
    assert card.window.length == 12 and card.alarm.get("likelihood")
    assert card.threshold is not None and card.threshold.params == {"q": 0.99}
    r = run_cli([*base, "-o", str(tmp_path / "c.onnx"), "--recipe", "multivariate",
                 "--method", "quantile"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "recipe: multivariate\n" in r.stdout
    card = read_card(tmp_path / "c.onnx")
    assert card.window.length == 8 and not card.alarm.get("likelihood")


def test_a_recipe_that_does_not_exist_is_refused_before_reading(tmp_path: Path) -> None:
    data = tmp_path / "missing.csv"  # never read: the recipe is checked first
    r = run_cli(["train", str(data), "-o", str(tmp_path / "m.onnx"), "--recipe", "nope.toml"])
    assert r.returncode == 1 and "recipe 'nope.toml' not found" in r.stderr, r.stderr
