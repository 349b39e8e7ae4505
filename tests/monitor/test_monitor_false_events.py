"""The monitor exposes the false-event rate the model's calibration expects."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from anomae.detector import Detector
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.modelfile import write_model
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.scorer import Scorer
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec

GAUGE = "anomae_expected_false_events_per_day"


def _detector(path: Path, threshold: Threshold) -> Detector:
    window = WindowSpec(4, 1)
    card = ModelCard(("a", "b"), window, Scaler((0.0, 0.0), (1.0, 1.0)), threshold=threshold)
    model = build_graph(
        [Layer("MatMul", [np.zeros((8, 8), np.float32)])],
        "flat",
        card.features,
        window,
        card.scaler,
    )
    write_model(model, card, path)
    return Detector.load(path, threads=1)


def test_gauge_follows_the_model_card(tmp_path: Path) -> None:
    events = Threshold(
        2.0,
        "events",
        false_events_per_day=1 / 7,
        expected_false_events_per_day=0.125,
        expected_false_events_per_day_ci=(0.05, 0.3),
    )
    reg = CollectorRegistry()
    metrics = MonitorMetrics(reg, ("a", "b"))
    assert math.isnan(reg.get_sample_value(GAUGE))  # no model yet
    det = _detector(tmp_path / "events.onnx", events)
    scorer = Scorer(det, metrics, SeriesAlarms(PostRule(3), ("a", "b")))
    assert reg.get_sample_value(GAUGE) == 0.125
    # a model calibrated otherwise has no such rate: NaN, not a stale value
    other = _detector(
        tmp_path / "q.onnx", replace(events, method="quantile", expected_false_events_per_day=None)
    )
    scorer.offer(other)
    scorer.swap()
    assert math.isnan(reg.get_sample_value(GAUGE))
