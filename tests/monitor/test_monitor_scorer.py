"""The monitor's Scorer on a real model file: normalised scores, counters and alarms of a
batch, series forgotten or closed by ``finish``, and the false-event rate the model's
calibration expects (a reloaded model swapped in between batches)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from anomae import __version__
from anomae.detector import Detector
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.modelfile import write_model
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.scorer import Scorer, WindowBatch
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


def _batch(slots: list[int], names: list[str], windows: np.ndarray) -> WindowBatch:
    n = len(slots)
    return WindowBatch(np.array(slots), names, np.arange(n, dtype=np.float64) * 60,
                       np.zeros(n), windows.astype(np.float32))  # fmt: skip


def test_a_batch_is_scored_normalised_counted_and_alarmed(tmp_path: Path) -> None:
    det = _detector(tmp_path / "m.onnx", Threshold(2.0, "quantile"))
    reg = CollectorRegistry()
    metrics = MonitorMetrics(reg, ("a", "b"))
    scorer = Scorer(det, metrics, SeriesAlarms(PostRule(1), ("a", "b")))
    windows = np.zeros((3, 4, 2))
    windows[1] = 3.0  # zero weights: reconstruction 0, far from the rows
    raw = det.run(windows.astype(np.float32))[0][:, 0]
    scorer.score(_batch([0, 1, 2], ["x", "y", "z"], windows))
    for name, s in zip("xyz", raw.tolist(), strict=True):
        got = reg.get_sample_value("anomae_anomaly_score", {"series": name})
        assert got == np.float32(s) / np.float32(2.0)
    assert raw[1] > 2.0 and raw[0] < 2.0
    st = metrics.stats
    assert (st.windows_scored, st.anomalous_windows, st.anomalies) == (3, 1, 1)
    assert reg.get_sample_value("anomae_anomaly", {"series": "y"}) == 1.0
    assert reg.get_sample_value("anomae_build_info", {"model_sha256": det.sha256,
        "version": __version__, "window": "4", "stride": "1", "features": "2",
        "threshold_method": "quantile"}) == 1.0  # fmt: skip
    scorer.finish([1], forget=False)  # closed: the last score stays, the alarm clears
    assert reg.get_sample_value("anomae_anomaly", {"series": "y"}) == 0.0
    scorer.finish([0], forget=True)  # evicted: its samples go
    assert reg.get_sample_value("anomae_anomaly_score", {"series": "x"}) is None
    assert reg.get_sample_value("anomae_anomaly_score", {"series": "z"}) is not None
