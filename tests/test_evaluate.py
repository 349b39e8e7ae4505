from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from anomae.evaluate import auc_roc, average_precision, event_metrics, point_metrics
from anomae.score import window_labels


def test_point_metrics_by_hand() -> None:
    pred = np.array([1, 1, 0, 0, 1, 0], bool)
    label = np.array([1, 0, 1, 0, 1, 0], bool)
    m = point_metrics(pred, label)  # tp=2 fp=1 fn=1 tn=2
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["far"] == pytest.approx(1 / 3)
    assert m["mar"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("score", "label", "auc"),
    [
        ([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 1.0),
        ([0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1], 0.0),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ],
)
def test_auc_roc(score: list[float], label: list[int], auc: float) -> None:
    assert auc_roc(np.array(score), np.array(label)) == pytest.approx(auc)


def test_average_precision_by_hand() -> None:
    # ranked labels 1,0,1: precision at the hits 1/1 and 2/3
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1]))
    assert ap == pytest.approx((1 + 2 / 3) / 2)


def test_window_labels_cover_any_labelled_row() -> None:
    labels = np.array([0, 0, 0, 1, 0, 0, 0, 0], np.int8)
    ends = np.arange(2, 8)  # windows of 3 rows ending at 2..7
    assert window_labels(labels, ends, 3).tolist() == [0, 1, 1, 1, 0, 0]


def test_event_metrics_segments_and_false_events() -> None:
    w = pl.DataFrame(
        {
            "series": ["a"] * 10,
            "label": [0, 1, 1, 0, 0, 0, 1, 0, 0, 0],
            "in_event": [0, 0, 1, 1, 0, 0, 0, 0, 1, 1],
            "kind": ["", "spike", "spike", "", "", "", "drift", "", "", ""],
        }
    )
    m = event_metrics(w, "kind")
    assert m["segments"] == 2 and m["segments_detected"] == 1
    assert m["events"] == 2 and m["false_events"] == 1
    assert m["recall_by_kind"] == {"drift": 0.0, "spike": 1.0}
