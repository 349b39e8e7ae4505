"""A model's threshold and alarm policy from held-out rows (anomae.calibrate_model): the
sampling interval, calibrate_rows on a real exported model (per-feature thresholds, labels,
score quantiles), the post-rule a threshold chose, and recalibrate_card as `anomae
calibrate` uses it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anomae.calibrate import CalibrationError, calibrate, calibrate_features
from anomae.calibrate_model import (
    calibrate_rows,
    chosen_rule,
    recalibrate_card,
    sampling_interval,
)
from anomae.calibrate_settings import CalibrateSection
from anomae.detector import Detector
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.io import SeriesData
from anomae.modelfile import read_card, rewrite_card, write_model
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec


def _series(name: str, values: np.ndarray, step_s: float = 60.0) -> SeriesData:
    n = values.shape[0]
    ts = (np.arange(n) * step_s * 1e9).astype(np.int64)
    return SeriesData(name, "mem", ts, values.astype(np.float32), None, np.arange(n))


def test_sampling_interval_is_the_median_step_over_all_series() -> None:
    a = _series("a", np.zeros((5, 3)), 60.0)
    b = SeriesData("b", "mem", np.array([0, 30, 90, 150], np.int64) * 10**9,
                   np.zeros((4, 3), np.float32), None, np.arange(4))  # fmt: skip
    assert sampling_interval([a]) == 60.0
    assert sampling_interval([a, b]) == 60.0  # steps 60 x4, 30, 60, 60: the median
    assert sampling_interval([b]) == 60.0
    assert sampling_interval([_series("c", np.zeros((1, 3)))]) is None  # one row: no step
    assert sampling_interval([]) is None


def test_the_rule_a_threshold_chose_wins_over_the_default() -> None:
    default = PostRule(3)
    assert chosen_rule(Threshold(1.0, "quantile"), default) is default
    th = Threshold(1.0, "events", post_rule={"min_windows": 5, "max_gap": 2})
    assert chosen_rule(th, default) == PostRule(min_windows=5, max_gap=2)


def test_recalibrate_card_sets_the_threshold_and_keeps_the_rule(detector: Detector) -> None:
    rng = np.random.default_rng(12)
    series = [_series(f"s{i}", rng.normal(0, 1, (3000, 3))) for i in range(3)]
    card = recalibrate_card(detector, series, CalibrateSection("quantile", q=0.99))
    want = calibrate_rows(detector, [s.values for s in series], "quantile", q=0.99)
    assert card.threshold == want
    assert card.alarm["post_rule"]["min_windows"] == 3  # no rule on the card: the default
    assert card.features == detector.card.features and card.window == detector.card.window
    section = CalibrateSection(false_events_per_day=1.0, min_windows=(1, 2))
    events = recalibrate_card(detector, series, section)  # chooses among 1 and 2, not 3
    assert events.threshold is not None and events.threshold.method == "events"
    assert events.threshold.params["interval_s"] == 60.0  # told by the rows timestamps
    assert events.alarm["post_rule"] == events.threshold.post_rule
    assert events.threshold.post_rule["min_windows"] in (1, 2)


FEATURES = ("a", "b", "c")


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    """A real exported model, no torch: a zero network, so a window's score is the mean
    squared scaled value and each feature's error its own mean square."""
    window = WindowSpec(4, 2)
    card = ModelCard(FEATURES, window, Scaler((0.0, 0.0, 0.0), (1.0, 2.0, 4.0)))
    lf = window.length * len(FEATURES)
    model = build_graph(
        [Layer("MatMul", [np.zeros((lf, lf), np.float32)])], "flat", FEATURES, window, card.scaler
    )
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    write_model(model, card, path)
    return Detector.load(path, threads=1)


def test_calibrate_rows_with_a_detector(detector: Detector, tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    blocks = [rng.normal(0, 1, (n, 3)).astype(np.float32) for n in (500, 0, 3, 801)]
    scores = [detector.score_series(b) for b in blocks]
    all_scores = np.concatenate([s.score for s in scores])
    th = calibrate_rows(detector, blocks, "pot", q=0.01, init_quantile=0.9, per_feature=True)
    plain = calibrate(all_scores, "pot", q=0.01, init_quantile=0.9)
    assert th == replace(plain, per_feature=th.per_feature, score_quantiles=th.score_quantiles)
    # the drift reference: quantiles of the calibration windows' normalised scores
    want = np.quantile(all_scores[np.isfinite(all_scores)] / plain.value, [0.5, 0.9, 0.99])
    np.testing.assert_allclose(list(th.score_quantiles.values()), want, rtol=1e-6)
    assert list(th.score_quantiles) == ["0.5", "0.9", "0.99"]
    fe = np.concatenate([s.feature_error for s in scores])
    assert th.per_feature == calibrate_features(fe, FEATURES, "pot", q=0.01, init_quantile=0.9)
    # the scaler's scale shrinks each feature's error: 1, 1/4, 1/16
    assert th.per_feature["a"] > th.per_feature["b"] > th.per_feature["c"]

    # the threshold, interval and per-feature values survive the trip through the file
    rewrite_card(detector.path, detector.card.with_threshold(th), tmp_path / "cal.onnx")
    assert read_card(tmp_path / "cal.onnx").threshold == th


def test_calibrate_rows_with_labels(detector: Detector) -> None:
    rng = np.random.default_rng(11)
    blocks = [rng.normal(0, 1, (n, 3)).astype(np.float32) for n in (400, 2, 600)]
    labels = []
    for b in blocks:
        n = detector.card.window.count(b.shape[0])
        y = np.zeros(n, int)
        y[n // 2 : n // 2 + 5] = 1
        b[(n // 2) * 2 : (n // 2 + 5) * 2 + 3] += 20  # rows of the labelled windows
        labels.append(y)
    th = calibrate_rows(detector, blocks, "f1", labels=labels)
    assert th.params["f1"] == 1.0 and th.params["n_anomalous"] == 10

    rows_not_windows = [np.zeros(b.shape[0], int) for b in blocks]
    with pytest.raises(CalibrationError, match="labels.0. has 400 values but block 0 has 199"):
        calibrate_rows(detector, blocks, "f1", labels=rows_not_windows)
    with pytest.raises(CalibrationError, match="2 label arrays for 3 row blocks"):
        calibrate_rows(detector, blocks, "f1", labels=labels[:2])
    with pytest.raises(CalibrationError, match="no complete window of 4 rows"):
        calibrate_rows(detector, [blocks[1]], "quantile")
