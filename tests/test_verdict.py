"""One verdict in batch and stream: threshold resolution, the > 1 rule, top features.

The model reconstructs nothing (zero weights), so a window's per-feature error is the mean
square of its scaled values and every verdict can be set up by hand: a window exactly at its
threshold, series with their own thresholds, features with their own thresholds whose
ranking differs from the raw errors'. The same rows go through ``anomae.score.score_all``
(batch) and the monitor's :class:`Scorer` with its JSON-lines sink (stream)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from anomae.detector import Detector, DetectorError
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.io import SeriesData
from anomae.modelfile import write_model
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.scorer import MonitorError, Scorer, WindowBatch
from anomae.monitor.sink import JsonlSink
from anomae.score import ScoreOptions, score_all
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
from anomae.verdict import (
    PAIRWISE_MAX_FEATURES,
    is_anomalous,
    resolve_thresholds,
    top_features,
)
from anomae.windows import sliding_windows, window_ends

FEATURES = ("a", "b", "c")
WINDOW = WindowSpec(2, 1)


def _detector(path: Path, threshold: Threshold | None) -> Detector:
    card = ModelCard(FEATURES, WINDOW, Scaler((0.0,) * 3, (1.0,) * 3), threshold=threshold)
    n = WINDOW.length * len(FEATURES)
    model = build_graph(
        [Layer("MatMul", [np.zeros((n, n), np.float32)])], "flat", FEATURES, WINDOW, card.scaler
    )
    write_model(model, card, path)
    return Detector.load(path, threads=1)


def _series(name: str, values: np.ndarray) -> SeriesData:
    n = values.shape[0]
    return SeriesData(
        name=name,
        source="test",
        timestamps=np.arange(n, dtype=np.int64) * 60_000_000_000,
        values=values.astype(np.float32),
        labels=None,
        row_offset=np.arange(n),
    )


def _rows(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (40, 3))
    x[10:14, 2] = 4.0  # c dominates the raw error; b, with its low threshold, the ratios
    x[10:14, 1] = 1.5
    x[25:27] = 2.0  # two windows whose score is exactly 4 (= the threshold of m1 below)
    return x


def _stream(det: Detector, series: list[SeriesData], tmp: Path, **kw: object) -> list[dict]:
    sink_path = tmp / f"sink-{len(list(tmp.iterdir()))}.jsonl"
    reg = CollectorRegistry()
    scorer = Scorer(
        det,
        MonitorMetrics(reg, FEATURES),
        SeriesAlarms(PostRule(min_windows=1), FEATURES, top_k=2),
        top_k=2,
        sink=JsonlSink(sink_path),
        **kw,  # type: ignore[arg-type]
    )
    for slot, s in enumerate(series):
        win = sliding_windows(s.values, WINDOW)
        ends = window_ends(s.values.shape[0], WINDOW)
        for i in range(win.shape[0]):  # one window per micro-batch, interleaved as a stream
            scorer.score(
                WindowBatch(
                    np.array([slot]),
                    [s.name],
                    s.timestamps[ends[i : i + 1]] / 1e9,
                    np.zeros(1),
                    np.ascontiguousarray(win[i : i + 1]),
                )
            )
    scorer.finish(None, forget=False)
    return [json.loads(line) for line in sink_path.read_text().splitlines()]


CARD = Threshold(
    3.0,
    "quantile",
    per_series={"m1": 4.0},
    per_feature={"a": 10.0, "b": 0.5, "c": 10.0},
)


@pytest.mark.parametrize(
    "card, override",
    [(CARD, None), (CARD, 2.5), (Threshold(4.0, "quantile"), None)],
    ids=["per-series-and-feature", "override", "plain"],
)
def test_batch_and_stream_give_the_same_verdicts(
    tmp_path: Path, card: Threshold, override: float | None
) -> None:
    det = _detector(tmp_path / "m.onnx", card)
    series = [_series("m1", _rows(1)), _series("m2", _rows(2))]
    opts = ScoreOptions(rule=PostRule(min_windows=1), top_k=2, threshold=override)
    windows, events, _ = score_all(det, series, opts)
    records = _stream(det, series, tmp_path, threshold=override)
    stream_w = [r for r in records if r["type"] == "window"]
    assert len(stream_w) == windows.height
    np.testing.assert_allclose(
        [r["score_normalised"] for r in stream_w], windows["score_normalised"], rtol=1e-6
    )
    assert [r["is_anomaly"] for r in stream_w] == windows["is_anomaly"].to_list()
    batch_top = list(zip(windows["top_feature_1"], windows["top_feature_2"], strict=True))
    assert [tuple(r["top_features"]) for r in stream_w] == batch_top
    stream_e = [r for r in records if r["type"] == "event"]
    assert [(e["series"], ";".join(e["top_features"])) for e in stream_e] == list(
        zip(events["series"], events["top_features"], strict=True)
    )
    # the verdicts are the ones set up: exactly at the threshold is not anomalous
    m1 = windows.filter(windows["series"] == "m1")
    if override is None:
        assert m1["score_normalised"][25] == 1.0 and not m1["is_anomaly"][25]
    if card.per_feature:  # b leads on its own threshold although c's raw error is larger
        assert m1["top_feature_1"][11] == "b"
    else:
        assert m1["top_feature_1"][11] == "c"


def test_threshold_resolution() -> None:
    assert resolve_thresholds(CARD, "m").for_series("m1") == 4.0
    assert resolve_thresholds(CARD, "m").for_series("m9") == 3.0
    assert resolve_thresholds(CARD, "m", override=2.0).for_series("m1") == 2.0  # for all
    lik = resolve_thresholds(CARD, "m", likelihood=True)
    assert lik.for_series("m1") == 3.0 and not lik.per_series  # the likelihood decides
    assert math.isnan(resolve_thresholds(None, "m", likelihood=True).value)
    np.testing.assert_allclose(
        resolve_thresholds(CARD, "m", override=2.0).feature_scale(("a", "b", "z")), [10, 0.5, 2]
    )
    with pytest.raises(DetectorError, match="m.onnx: the model has no threshold.*calibrate"):
        resolve_thresholds(None, "m.onnx")


def test_a_model_without_threshold_is_refused_alike(tmp_path: Path) -> None:
    det = _detector(tmp_path / "none.onnx", None)
    with pytest.raises(DetectorError, match="no threshold"):
        score_all(det, [_series("m1", _rows(1))])
    with pytest.raises(MonitorError, match="no threshold"):
        _stream(det, [], tmp_path)


@pytest.mark.parametrize(
    "norm, expected",
    [(0.5, False), (1.0, False), (np.nextafter(1.0, 2.0), True), (np.nan, False), (np.inf, True)],
)
def test_the_one_rule(norm: float, expected: bool) -> None:
    assert is_anomalous(np.array([norm])).tolist() == [expected]


def test_top_features_ties_keep_feature_order() -> None:
    assert top_features(np.array([[1.0, 2.0, 2.0, 0.0]]), 3).tolist() == [[1, 2, 0]]
    assert top_features(np.array([[1.0, 2.0]]), 5).tolist() == [[1, 0]]


@pytest.mark.parametrize("n_f", [1, 2, 3, 8, 13, PAIRWISE_MAX_FEATURES, PAIRWISE_MAX_FEATURES + 1])
@pytest.mark.parametrize("k", [1, 3, 40])
@pytest.mark.filterwarnings("error")  # inf - inf in the NaN check is no warning of ours
def test_top_features_is_the_stable_sort(n_f: int, k: int) -> None:
    """Ties, NaN (last), infinities and signed zeros rank as the stable sort ranks them,
    whichever way the rows are ranked (pairwise up to PAIRWISE_MAX_FEATURES)."""
    rng = np.random.default_rng(n_f * 100 + k)
    special = rng.choice(np.array([0.0, -0.0, 0.5, 1.0, 2.0, np.inf, -np.inf]), (500, n_f))
    ratios = np.where(rng.random((500, n_f)) < 0.5, rng.gamma(2.0, 1.0, (500, n_f)), special)
    ratios[rng.random((500, n_f)) < 0.03] = np.nan
    for dtype in (np.float32, np.float64):
        r = ratios.astype(dtype)
        want = np.argsort(-r, axis=-1, kind="stable")[:, : min(k, n_f)]
        assert np.array_equal(top_features(r, k), want)
        assert np.array_equal(top_features(r[:5], k), want[:5])  # few rows: by the sort
