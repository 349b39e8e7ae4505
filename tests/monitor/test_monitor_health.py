"""Model health: input drift against the training scaler and range, score drift against
the calibration quantiles, alarm counts per series, model age and training span."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from anomae.io import SeriesData
from anomae.monitor.health import HORIZON, SCORES, ModelHealth
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
from anomae.train.step import data_extent

FEATURES = ("a", "b")


def _card(**training: object) -> ModelCard:
    return ModelCard(
        FEATURES,
        WindowSpec(4),
        Scaler((10.0, 0.0), (2.0, 1.0)),
        threshold=Threshold(1.0, "quantile", score_quantiles={"0.5": 0.3, "0.9": 0.6}),
        training=dict(training),
        created_at="2026-11-01T00:00:00+00:00",
    )


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    assert v is not None, (name, labels)
    return v


RANGE = {"feature_range": {"min": [4.0, -3.0], "max": [16.0, 3.0]}, "data_span": [1.0e9, 1.1e9]}


def test_training_like_readings_show_no_drift() -> None:
    reg = CollectorRegistry()
    health = ModelHealth(reg, _card(**RANGE))
    rng = np.random.default_rng(0)
    for _ in range(20):
        rows = np.column_stack([rng.normal(10, 2, 500), rng.normal(0, 1, 500)])
        health.observe(rows, np.zeros(500))
    for f in FEATURES:
        assert abs(_value(reg, "anomae_feature_mean_shift", feature=f)) < 0.1
        assert abs(_value(reg, "anomae_feature_std_ratio", feature=f) - 1) < 0.1
        assert _value(reg, "anomae_feature_out_of_range_ratio", feature=f) < 0.01
    assert _value(reg, "anomae_model_trained_timestamp_seconds") == 1_793_491_200.0
    assert _value(reg, "anomae_model_training_data_start_timestamp_seconds") == 1.0e9
    assert _value(reg, "anomae_model_training_data_end_timestamp_seconds") == 1.1e9


def test_a_shifted_sensor_drifts_and_the_old_readings_fade() -> None:
    reg = CollectorRegistry()
    health = ModelHealth(reg, _card(**RANGE))
    rng = np.random.default_rng(1)
    health.observe(np.column_stack([rng.normal(10, 2, 1000), rng.normal(0, 1, 1000)]), np.zeros(0))
    # b is replaced by a sensor reading 4 units high, half of them beyond the training max
    for _ in range(10 * HORIZON // 1000):
        health.observe(
            np.column_stack([rng.normal(10, 2, 1000), rng.normal(4, 1, 1000)]), np.zeros(0)
        )
    assert _value(reg, "anomae_feature_mean_shift", feature="b") == pytest.approx(4, abs=0.15)
    assert _value(reg, "anomae_feature_out_of_range_ratio", feature="b") == pytest.approx(
        0.84, abs=0.05
    )  # P(N(4, 1) > 3)
    assert abs(_value(reg, "anomae_feature_mean_shift", feature="a")) < 0.1


def test_missing_readings_leave_a_feature_unmeasured() -> None:
    reg = CollectorRegistry()
    health = ModelHealth(reg, _card())  # a card without the training range
    health.observe(np.array([[np.nan, 1.0], [np.nan, 3.0]]), np.array([0.5, np.nan]))
    assert math.isnan(_value(reg, "anomae_feature_mean_shift", feature="a"))
    assert _value(reg, "anomae_feature_mean_shift", feature="b") == pytest.approx(2.0)
    assert _value(reg, "anomae_feature_std_ratio", feature="b") == pytest.approx(1.0)
    assert math.isnan(_value(reg, "anomae_feature_out_of_range_ratio", feature="b"))
    assert math.isnan(_value(reg, "anomae_model_training_data_start_timestamp_seconds"))


def test_score_quantiles_are_the_latest_windows_beside_the_calibration() -> None:
    reg = CollectorRegistry()
    health = ModelHealth(reg, _card())
    rng = np.random.default_rng(2)
    scores = rng.gamma(2.0, 0.2, 3 * SCORES + 17)
    for part in np.array_split(scores, 7):
        health.observe(np.zeros((0, 2)), part)
    for q in ("0.5", "0.9", "0.99"):
        want = np.quantile(scores[-SCORES:], float(q))
        assert _value(reg, "anomae_score_quantile", q=q) == pytest.approx(want)
    assert _value(reg, "anomae_calibration_score_quantile", q="0.9") == 0.6
    assert math.isnan(_value(reg, "anomae_calibration_score_quantile", q="0.99"))


def test_events_are_counted_per_series_until_it_is_forgotten() -> None:
    reg = CollectorRegistry()
    health = ModelHealth(reg, _card())
    for name in ("m1", "m2", "m1"):
        health.event(name)
    assert _value(reg, "anomae_series_events_total", series="m1") == 2
    health.forget("m1")
    assert reg.get_sample_value("anomae_series_events_total", {"series": "m1"}) is None
    assert _value(reg, "anomae_series_events_total", series="m2") == 1


def test_training_records_the_range_and_span() -> None:
    ts = np.array([0, 60, 120], np.int64) * 1_000_000_000
    s = SeriesData("m1", "f", ts, np.zeros((3, 2), np.float32), None, np.arange(3))
    rows = [np.array([[1.0, np.nan], [3.0, np.nan]])]
    assert data_extent(rows, [s]) == {
        "feature_range": {"min": [1.0, None], "max": [3.0, None]},
        "data_span": [0.0, 120.0],
    }
