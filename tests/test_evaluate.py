from __future__ import annotations

import numpy as np
import polars as pl

from anomae.evaluate import event_metrics
from anomae.score import window_labels


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
