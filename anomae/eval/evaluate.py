"""Detection metrics of scored windows against labels (first version; see issue 3 for more).

A window is labelled anomalous when any of its rows is (:func:`anomae.score.window_labels`),
so a labelled segment is a run of label-1 windows. It is *detected* when an event covers
one of its windows; an event that covers none is a *false event*.

The metrics themselves live in :mod:`anomae.eval.metrics`; this module applies them to the
scored windows of ``anomae run``'s test data for its report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from anomae.eval.metrics import auc_pr, auc_roc, f_score, point_metrics
from anomae.events import runs


def event_metrics(windows: pl.DataFrame, kind_column: str | None = None) -> dict[str, Any]:
    """Segment recall, false events and (with ``kind_column``) recall per anomaly kind.

    ``windows`` is one series' or many series' scored windows with ``label`` and
    ``in_event`` columns, in window order within each series."""
    detected = total = false_events = n_events = 0
    by_kind: dict[str, list[int]] = {}
    for _, w in windows.group_by("series", maintain_order=True):
        label = w["label"].to_numpy().astype(bool)
        ev = w["in_event"].to_numpy().astype(bool)
        covered = np.zeros(label.size, dtype=bool)  # windows overlapping some segment
        for a, b in zip(*runs(label), strict=True):
            covered[a : b + 1] = True
            hit = bool(ev[a : b + 1].any())
            total += 1
            detected += hit
            if kind_column is not None:
                kinds = w[kind_column][a : b + 1].drop_nulls()
                kinds = kinds.filter(kinds != "")
                kind = str(kinds[-1]) if kinds.len() else "?"
                by_kind.setdefault(kind, [0, 0])
                by_kind[kind][0] += hit
                by_kind[kind][1] += 1
        for a, b in zip(*runs(ev), strict=True):
            n_events += 1
            false_events += not covered[a : b + 1].any()
    out: dict[str, Any] = {
        "segments": total,
        "segments_detected": detected,
        "segment_recall": detected / total if total else float("nan"),
        "events": n_events,
        "false_events": false_events,
        "event_precision": (n_events - false_events) / n_events if n_events else float("nan"),
    }
    if kind_column is not None:
        out["recall_by_kind"] = {k: v[0] / v[1] for k, v in sorted(by_kind.items())}
    return out


def span_days(timestamps: np.ndarray) -> float:
    """Days one series' rows span: first to last timestamp (int ns) plus one median step."""
    ts = np.asarray(timestamps, np.int64)
    if ts.size == 0:
        return 0.0
    step = float(np.median(np.diff(ts))) if ts.size > 1 else 0.0
    return (float(ts[-1] - ts[0]) + step) / 86_400e9


def evaluate_windows(
    windows: pl.DataFrame, kind_column: str | None = None, days: float | None = None
) -> dict[str, Any]:
    """All metrics for scored windows that carry a ``label`` column.

    ``event_f1`` is TSB-AD's event-based F1: the precision of the windows inside events with
    the share of labelled segments an event covers. With ``days``, the test span, the
    false events are also given per day."""
    label = windows["label"].to_numpy().astype(bool)
    score = windows["score"].to_numpy().astype(np.float64)
    out: dict[str, Any] = {
        "windows": windows.height,
        "anomalous_windows_labelled": int(label.sum()),
        "auc_roc": auc_roc(score, label),
        "auc_pr": auc_pr(score, label),
        "point": point_metrics(windows["is_anomaly"].to_numpy(), label),
        "point_after_post_rule": point_metrics(windows["in_event"].to_numpy(), label),
    }
    out.update(event_metrics(windows, kind_column))
    out["event_f1"] = f_score(out["point_after_post_rule"]["precision"], out["segment_recall"])
    if days:
        out["false_events_per_day"] = out["false_events"] / days
    return out
