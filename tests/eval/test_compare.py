"""Baselines beside the autoencoder in ``anomae run``'s report (anomae.eval.compare): each
fitted per series on the same training rows, calibrated on the same held-out rows (their
labels for ``f1``), and judged through the same post-rules and metrics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from anomae.calibrate import calibrate
from anomae.calibrate_settings import CalibrateSection
from anomae.eval.baselines import KSigmaBaseline
from anomae.eval.compare import compare_baselines
from anomae.io import SeriesData
from anomae.pipeline import ScoreSection, WindowSection
from anomae.score import window_labels
from anomae.spec import WindowSpec
from anomae.windows import window_ends


def _series(name: str, values: np.ndarray, labels: np.ndarray | None = None) -> SeriesData:
    n = values.shape[0]
    return SeriesData(
        name=name,
        source=f"{name}.csv",
        timestamps=np.arange(n, dtype=np.int64) * 60 * 10**9,
        values=values.astype(np.float32),
        labels=labels,
        row_offset=np.arange(n),
    )


def _windows(test: list[SeriesData], spec: WindowSpec) -> pl.DataFrame:
    """anomae's scored windows as far as the comparison reads them."""
    frames = []
    for s in test:
        assert s.labels is not None
        ends = window_ends(s.values.shape[0], spec)
        frames.append(
            pl.DataFrame(
                {
                    "series": [s.name] * ends.size,
                    "timestamp": pl.Series(s.timestamps[ends]).cast(pl.Datetime("ns", "UTC")),
                    "label": window_labels(s.labels, ends, spec.length),
                }
            )
        )
    return pl.concat(frames)


def test_baselines_through_the_run_alarm_path() -> None:
    """Two machines at different levels: each baseline is fitted on its own machine's rows,
    one threshold comes from the held-out rows of both, the post-rules make the events."""
    rng = np.random.default_rng(0)
    train = [
        _series("a", rng.normal(0, 1, (1000, 2))),
        _series("b", rng.normal(100, 1, (1000, 2))),
    ]
    test_values = rng.normal(100, 1, (500, 2))
    test_values[300:310, 0] += 8.0  # a level excursion on machine b
    label = np.zeros(500, np.int8)
    label[300:310] = 1
    test = [_series("b", test_values, label)]
    pipe = SimpleNamespace(
        window=WindowSection(length=4),
        score=ScoreSection(min_windows=3),
        calibrate=CalibrateSection(method="quantile", q=0.995, holdout=0.2, holdout_from="tail"),
        likelihood=None,
    )
    spec = WindowSpec(4)
    r = compare_baselines(pipe, train, test, _windows(test, spec), days=500 / 1440)
    assert set(r) == {"ksigma", "pca", "windowed_gaussian"}
    # the threshold, by hand: k-sigma fitted on each machine's first 800 rows, scored on its
    # last 200 at the window ends, both machines pooled
    held = []
    for s in train:
        model = KSigmaBaseline().fit(s.values[:800])
        held.append(model.score(s.values[800:])[window_ends(200, spec)])
    expected = calibrate(np.concatenate(held), "quantile", q=0.995).value
    assert r["ksigma"]["threshold"] == pytest.approx(expected)
    for name in ("ksigma", "windowed_gaussian"):
        m = r[name]
        assert m["windows"] == 497 and m["segments_detected"] == 1, name
        assert m["false_events"] == 0 and m["false_events_per_day"] == 0.0, name
        assert m["event_f1"] > 0.9, name
    # a method the held-out rows cannot serve is reported per baseline, not raised
    pipe.calibrate = CalibrateSection(method="quantile", q=0.999, holdout=0.2, holdout_from="tail")
    r = compare_baselines(pipe, train, test, _windows(test, spec))
    assert "at least 1000 are needed" in r["ksigma"]["error"]


def test_baselines_f1_calibration_uses_the_held_out_labels() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, (1000, 1))
    values[900:910] += 6.0  # an anomaly in the held-out fifth, labelled
    labels = np.zeros(1000, np.int8)
    labels[900:910] = 1
    train = [_series("a", values, labels)]
    test = [_series("a", rng.normal(0, 1, (100, 1)), np.zeros(100, np.int8))]
    pipe = SimpleNamespace(
        window=WindowSection(length=4),
        score=ScoreSection(),
        calibrate=CalibrateSection(method="f1", holdout=0.2, holdout_from="tail"),
        likelihood=None,
    )
    spec = WindowSpec(4)
    r = compare_baselines(pipe, train, test, _windows(test, spec), names=("ksigma",))
    ends = window_ends(200, spec)
    held = KSigmaBaseline().fit(values[:800]).score(values[800:])[ends]
    want = calibrate(held, "f1", labels=window_labels(labels[800:], ends, 4)).value
    assert r["ksigma"]["threshold"] == pytest.approx(want)


def test_refusals_are_reported_per_baseline_and_a_new_series_uses_all_rows() -> None:
    rng = np.random.default_rng(2)
    train = [_series("a", rng.normal(0, 1, (1000, 1)))]
    test = [_series("new", rng.normal(0, 1, (100, 1)), np.zeros(100, np.int8))]
    pipe = SimpleNamespace(
        window=WindowSection(length=4),
        score=ScoreSection(),
        calibrate=CalibrateSection(method="f1", holdout=0.2, holdout_from="tail"),
        likelihood=None,
    )
    spec = WindowSpec(4)
    r = compare_baselines(pipe, train, test, _windows(test, spec), names=("ksigma",))
    assert r == {"ksigma": {"error": "method 'f1' needs labelled calibration rows"}}
    pipe.calibrate = CalibrateSection(method="quantile", q=0.9, holdout=0.2, holdout_from="tail")
    r = compare_baselines(pipe, train, test, _windows(test, spec), names=("ksigma",))
    assert r["ksigma"]["windows"] == 97  # "new" has no training rows: scored all the same
    short = [_series("a", rng.normal(0, 1, (3, 1)))]
    r = compare_baselines(pipe, short, test, _windows(test, spec), names=("ksigma",))
    assert r == {"ksigma": {"error": "no calibration block of 4 rows or more"}}
