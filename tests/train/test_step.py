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


def test_code_sized_by_the_features_that_vary(tmp_path: Path) -> None:
    # [model] code = "features": one code unit per feature not constant in the rows fitted
    # on (2 of 3 here), recorded in the card; "fixed" keeps hidden as written
    s = _series()
    s.values[:, 2] = 5.0  # constant in training
    feats = ("flow", "temp", "p")
    for code, width in (("features", 2), ("fixed", 8)):
        pipe = parse_pipeline({**_doc(), "model": {"hidden": [16, 8], "code": code}})
        card, _, _ = train_step(pipe, [s], feats, tmp_path / f"{code}.onnx")
        assert list(card.architecture["hidden"]) == [16, width]
        assert card.architecture["code"] == code
        assert read_card(tmp_path / f"{code}.onnx").architecture["hidden"] == [16, width]
    s.values[:, 2] = np.arange(200, dtype=np.float32)  # now all three vary
    pipe = parse_pipeline({**_doc(), "model": {"hidden": [8], "code": "features"}})
    card, _, _ = train_step(pipe, [s], feats, tmp_path / "all.onnx")
    assert list(card.architecture["hidden"]) == [3]


def test_an_events_budget_the_data_cannot_resolve_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anomae.train.fit as fit_module
    from anomae.calibrate import CalibrationError

    def no_fit(*_: object, **__: object) -> None:  # reaching the fit would be too late
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(fit_module, "fit", no_fit)
    # 200 rows a second apart: 40 held-out windows are minutes, a budget of one a week
    # needs 0.7 series-days
    pipe = parse_pipeline({**_doc(), "calibrate": {"method": "events", "holdout": 0.2}})
    with pytest.raises(CalibrationError, match=r"needs at least 0\.70 series-days.*quantile"):
        train_step(pipe, [_series()], ("flow", "temp", "p"), tmp_path / "m.onnx", calibrated=True)
    assert not (tmp_path / "m.onnx").exists()


def test_unknown_center_feature_is_named(tmp_path: Path) -> None:
    pipe = parse_pipeline(_doc(center_features=["tmp"]))
    match = r"center_features.*\['tmp'\].*\['flow', 'temp', 'p'\]"
    with pytest.raises(PipelineError, match=match):
        train_step(pipe, [_series()], ("flow", "temp", "p"), tmp_path / "m.onnx")
