from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from anomae.eval.evaluate import evaluate_windows, event_metrics, span_days
from anomae.score import window_labels

HOUR = 3600 * 10**9


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


def test_evaluate_windows_event_f1_and_false_events_per_day() -> None:
    w = pl.DataFrame(
        {
            "series": ["a"] * 10,
            "score": np.arange(10.0),
            "label": [0, 1, 1, 0, 0, 0, 1, 0, 0, 0],
            "is_anomaly": [0, 0, 1, 1, 0, 0, 0, 0, 1, 1],
            "in_event": [0, 0, 1, 1, 0, 0, 0, 0, 1, 1],
        }
    )
    m = evaluate_windows(w, days=0.5)
    # precision 1 of 4 windows in events, 1 of 2 segments found: F1 2 (1/4)(1/2) / (3/4)
    assert m["event_f1"] == pytest.approx(1 / 3)
    assert m["false_events"] == 1 and m["false_events_per_day"] == pytest.approx(2.0)
    assert "false_events_per_day" not in evaluate_windows(w)


@pytest.mark.parametrize(
    ("timestamps", "days"),
    [([], 0.0), ([0], 0.0), ([0, 1, 2, 3], 4 / 24), ([0, 1, 2, 10], 11 / 24)],
)
def test_span_days(timestamps: list[int], days: float) -> None:
    assert span_days(np.array(timestamps, np.int64) * HOUR) == pytest.approx(days)
