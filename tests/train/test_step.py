"""One training step of a pipeline (anomae/train/step.py): its settings reach the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from test_pipeline import _doc  # noqa: E402

from anomae.errors import PipelineError  # noqa: E402
from anomae.io import SeriesData  # noqa: E402
from anomae.modelfile import read_card  # noqa: E402
from anomae.pipeline import parse_pipeline  # noqa: E402
from anomae.train.step import train_step  # noqa: E402


def _series() -> SeriesData:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 3)).astype(np.float32)
    values[:, 1] += np.linspace(0, 30, 200, dtype=np.float32)  # a drifting level
    return SeriesData("s", "s", np.arange(200) * 10**9, values, None, np.arange(200))


def test_center_features_reach_the_model_card(tmp_path: Path) -> None:
    pipe = parse_pipeline(_doc(center_features=["temp"]))
    card, _, _ = train_step(pipe, [_series()], ("flow", "temp", "p"), tmp_path / "m.onnx")
    assert card.architecture["center"] == ["temp"]
    assert read_card(tmp_path / "m.onnx").architecture["center"] == ["temp"]


def test_unknown_center_feature_is_named(tmp_path: Path) -> None:
    pipe = parse_pipeline(_doc(center_features=["tmp"]))
    match = r"center_features.*\['tmp'\].*\['flow', 'temp', 'p'\]"
    with pytest.raises(PipelineError, match=match):
        train_step(pipe, [_series()], ("flow", "temp", "p"), tmp_path / "m.onnx")
