"""Anomaly-detection metrics, computed the way TSB-AD (NeurIPS 2024) defines them; NAB's
scoring is in :mod:`anomae.eval.nab`.

Inputs are 1-D numpy arrays of equal length: ``score`` (float, higher is more anomalous; NaN
counts as the lowest score), ``label`` (0/1) and ``pred`` (bool or 0/1). Where a metric is
undefined (no anomalies for recall or AUC, no predictions for precision, a single class for
ROC) it is NaN, never a silent 0. Empty input and a length mismatch raise ``ValueError``.

Headline numbers are the threshold-free VUS-PR and AUC-PR and, at the alarm threshold, pooled
point F1 and the event-based F1 (:func:`event_f1`) beside the false events per day
(:func:`false_events`). Point-adjusted F1 is kept only for comparison with older papers: one
hit anywhere in a long segment marks all of it detected, so even random alarms score high on
it.

    >>> import numpy as np
    >>> label = np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    >>> score = np.array([0.1, 0.2, 0.1, 0.9, 0.4, 0.5, 0.1, np.nan, 0.0, 0.2])
    >>> auc_roc(score, label), auc_pr(score, label)
    (0.9375, 0.8333333333333333)
    >>> round(vus_pr(score, label, sliding_window=4), 4)
    0.908
    >>> point_metrics(score > 0.45, label)["f1"], event_f1(score > 0.45, label)["f1"]
    (0.5, 0.6666666666666666)
    >>> event_f1(np.ones(10), label)["f1"]  # flagging everything: precision 0.2, recall 1
    0.33333333333333337
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from anomae.events import runs

NAN: Final = float("nan")
_COUNTS: Final = ("tp", "fp", "fn", "tn")


def _check(a: Any, b: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D, got {a.ndim}-D and {b.ndim}-D")
    if a.size != b.size:
        raise ValueError(
            f"length mismatch: {names[0]} has {a.size} rows, {names[1]} has {b.size} rows"
        )
    if a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty")
    return a, b


def _as_bool(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype != bool and not np.isin(x, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (or booleans)")
    return x.astype(bool)


def _scored(score: ArrayLike, label: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Integer ranks of ``score`` (equal scores share a rank) and ``label`` as bool.

    Every metric here depends on the scores only through comparisons, so ranks change no
    result, and mapping NaN to -inf before ranking makes NaN the lowest score, tied with -inf."""
    s, y = _check(score, label, ("score", "label"))
    s = s.astype(np.float64)
    _, ranks = np.unique(np.where(np.isnan(s), -np.inf, s), return_inverse=True)
    return ranks.reshape(-1).astype(np.int64), _as_bool(y, "label")


def _ratio(num: float, den: float) -> float:
    return num / den if den else NAN


# -- threshold-free ---------------------------------------------------------------------------


def _curve(ranks: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positive counts at each distinct threshold, highest first."""
    order = np.argsort(-ranks, kind="stable")
    last = np.r_[np.flatnonzero(np.diff(ranks[order])), ranks.size - 1]
    tps = np.cumsum(y[order])[last]
    return tps, last + 1 - tps


def auc_roc(score: ArrayLike, label: ArrayLike) -> float:
    """Area under the ROC curve (ties as in sklearn); NaN unless both classes are present."""
    r, y = _scored(score, label)
    pos = int(y.sum())
    if pos in (0, y.size):
        return NAN
    tps, fps = _curve(r, y)
    tpr, fpr = np.r_[0.0, tps / pos], np.r_[0.0, fps / (y.size - pos)]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def auc_pr(score: ArrayLike, label: ArrayLike) -> float:
    """Average precision, as sklearn's ``average_precision_score``; NaN without anomalies."""
    r, y = _scored(score, label)
    pos = int(y.sum())
    if pos == 0:
        return NAN
    tps, fps = _curve(r, y)
    return float(np.sum(np.diff(np.r_[0.0, tps / pos]) * tps / (tps + fps)))


def vus(
    score: ArrayLike, label: ArrayLike, sliding_window: int = 100, *, n_thresholds: int = 250
) -> tuple[float, float]:
    """``(VUS-ROC, VUS-PR)``: TSB-AD 1.5's ``RangeAUC_volume_opt`` without its loops.

    For each buffer width ``w`` in ``0..sliding_window`` every labelled segment gets soft
    margins of ``w // 2`` rows weighted ``sqrt(1 - d / w)``, a range-aware ROC and PR curve is
    traced over ``n_thresholds`` score quantiles, and the areas are averaged over ``w``.
    Both are NaN when ``label`` has no anomalies or is all anomalous (TSB-AD raises there)."""
    if sliding_window < 0 or n_thresholds < 1:
        raise ValueError("sliding_window must be >= 0 and n_thresholds >= 1")
    r, y = _scored(score, label)
    n, pos = y.size, int(y.sum())
    if pos in (0, n):
        return NAN, NAN
    n_t = n_thresholds
    thr = np.sort(r)[::-1][np.linspace(0, n - 1, n_t).astype(int)]
    # Predictions only grow as the threshold falls, so each row is summarised by the first
    # threshold index that flags it (n_t: never), and any sum over flagged rows becomes a
    # cumulative histogram over threshold indices.
    first = np.searchsorted(-thr, -r, side="left")

    def flagged(idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.cumsum(np.bincount(idx, weights=weights, minlength=n_t + 1))[:n_t]

    n_pred, hit = flagged(first), flagged(first[y])
    starts, ends = runs(y)
    # Normal rows near a segment, with distances to the two nearest segment ends on the left
    # and starts on the right: two or more margins on a row sum past 1 (each is >= sqrt(1/2))
    # and TSB-AD clips that to 1, so nothing farther matters.
    far = n + sliding_window + 1
    i = np.flatnonzero(~y)
    k, m = np.searchsorted(ends, i), np.searchsorted(starts, i)
    ends_p, starts_p = np.r_[-far, -far, ends], np.r_[starts, 2 * far, 2 * far]
    dt1, dt2, dh1, dh2 = i - ends_p[k + 1], i - ends_p[k], starts_p[m] - i, starts_p[m + 1] - i
    near = np.minimum(dt1, dh1) <= sliding_window // 2
    i, dt1, dt2, dh1, dh2 = i[near], dt1[near], dt2[near], dh1[near], dh2[near]
    first_near = first[i]
    first_end = np.r_[first, n_t]  # so reduceat may index one past the last row

    shape = (sliding_window + 1, n_t)
    margin, exist, n_ranges = np.zeros(shape), np.zeros(shape), np.zeros(shape[0])
    for w in range(sliding_window + 1):
        h = w // 2
        if h:
            touched = (dt1 <= h) | (dh1 <= h)
            d = np.where(dt1 <= h, dt1, dh1)[touched]
            val = np.zeros(i.size)
            val[touched] = np.sqrt(1 - d / w)
            val[(dt2 <= h) | (dh2 <= h) | ((dt1 <= h) & (dh1 <= h))] = 1.0
            margin[w] = flagged(first_near, val)
        # Segments whose margins touch merge into one range; a range "exists" at a threshold
        # once any of its rows is flagged.
        gap = ends[:-1] + h < starts[1:] - h
        lo = np.maximum(np.r_[starts[0], starts[1:][gap]] - h, 0)
        hi = np.minimum(np.r_[ends[:-1][gap], ends[-1]] + h, n - 1)
        bounds = np.column_stack([lo, hi + 1]).reshape(-1)
        exist[w] = flagged(np.minimum.reduceat(first_end, bounds)[0::2])
        n_ranges[w] = lo.size

    tp = hit + margin
    # TSB-AD's recall denominator, halfway between the labelled rows and those plus the
    # flagged margin mass; kept as it is, since matching TSB-AD is the point
    p_new = (pos + pos + margin) / 2
    tpr = np.minimum(tp / p_new, 1) * exist / n_ranges[:, None]
    fpr = (n_pred - tp) / (n - p_new)
    zero, one = np.zeros((shape[0], 1)), np.ones((shape[0], 1))
    tpr, fpr = np.hstack([zero, tpr, one]), np.hstack([zero, fpr, one])
    roc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
    pr = np.sum(np.diff(tpr[:, :-1], axis=1) * tp / n_pred, axis=1)
    return float(roc.mean()), float(pr.mean())


def vus_roc(
    score: ArrayLike, label: ArrayLike, sliding_window: int = 100, *, n_thresholds: int = 250
) -> float:
    """VUS-ROC as TSB-AD's ``get_metrics(..., slidingWindow)``; see :func:`vus`."""
    return vus(score, label, sliding_window, n_thresholds=n_thresholds)[0]


def vus_pr(
    score: ArrayLike, label: ArrayLike, sliding_window: int = 100, *, n_thresholds: int = 250
) -> float:
    """VUS-PR as TSB-AD's ``get_metrics(..., slidingWindow)``; see :func:`vus`."""
    return vus(score, label, sliding_window, n_thresholds=n_thresholds)[1]


# -- thresholded ------------------------------------------------------------------------------


def _from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        # SKAB's form; equal to 2PR/(P+R), and still 0 (not NaN) when nothing is predicted
        "f1": _ratio(tp, tp + (fp + fn) / 2),
        "far": _ratio(fp, fp + tn),
        "mar": _ratio(fn, fn + tp),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def point_metrics(pred: ArrayLike, label: ArrayLike) -> dict[str, float]:
    """Per-row precision, recall, F1, SKAB's FAR = FP/(FP+TN) and MAR = FN/(FN+TP) (fractions,
    not SKAB's percent), and the raw ``tp``/``fp``/``fn``/``tn`` counts for :func:`pooled`.
    A ratio with a zero denominator is NaN."""
    p, y = _check(pred, label, ("pred", "label"))
    p, y = _as_bool(p, "pred"), _as_bool(y, "label")
    tp, fp, fn = int((p & y).sum()), int((p & ~y).sum()), int((~p & y).sum())
    return _from_counts(tp, fp, fn, y.size - tp - fp - fn)


def pooled(counts_list: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """:func:`point_metrics` of counts summed over files (SKAB pools, it does not average)."""
    rows = list(counts_list)
    if not rows:
        raise ValueError("pooled() needs at least one counts dict")
    tp, fp, fn, tn = (int(sum(r[c] for r in rows)) for c in _COUNTS)
    return _from_counts(tp, fp, fn, tn)


def point_adjust(pred: ArrayLike, label: ArrayLike) -> NDArray[np.bool_]:
    """``pred`` with every labelled segment that holds at least one hit marked in full."""
    p, y = _check(pred, label, ("pred", "label"))
    p, y = _as_bool(p, "pred"), _as_bool(y, "label")
    seg = np.cumsum(np.diff(y.astype(np.int8), prepend=0) == 1)  # segment number on label rows
    hit = np.bincount(seg[p & y], minlength=seg[-1] + 1) > 0
    return p | (y & hit[seg])


def point_adjusted_f1(pred: ArrayLike, label: ArrayLike) -> float:
    """F1 after :func:`point_adjust`. Inflated by construction: report it beside VUS-PR and
    event F1, never alone. Unlike TSB-AD's loop, a segment starting at row 0 is adjusted too."""
    return point_metrics(point_adjust(pred, label), label)["f1"]


def event_f1(pred: ArrayLike, label: ArrayLike) -> dict[str, float]:
    """TSB-AD's event-based F1 (Garg et al.'s composite F-score): **point-wise** precision
    with **event-wise** recall, the share of labelled segments with at least one flagged row.

    Flagging every row cannot win it: recall is 1 but precision is the anomalous share of the
    rows, so F1 is ``2a / (1 + a)`` for an anomalous share ``a``. (The older form with
    event-wise precision gave flag-everything 1.0: one predicted segment, and it overlaps.)
    ``f1`` is 0 when exactly one of precision and recall is undefined or both are 0, NaN when
    neither is defined (no predictions and no anomalies)."""
    p, y = _check(pred, label, ("pred", "label"))
    p, y = _as_bool(p, "pred"), _as_bool(y, "label")
    cp = np.r_[0, np.cumsum(p)]
    ts, te = runs(y)
    found = int(np.count_nonzero(cp[te + 1] > cp[ts]))
    tp, n_pred = int((p & y).sum()), int(p.sum())
    precision, recall = _ratio(tp, n_pred), _ratio(found, ts.size)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f_score(precision, recall),
        "events": ts.size,
        "events_found": found,
    }


def f_score(precision: float, recall: float) -> float:
    """Harmonic mean of ``precision`` and ``recall``: 0 when one is undefined (NaN) or both are
    0, NaN when both are undefined."""
    p_nan, r_nan = math.isnan(precision), math.isnan(recall)
    if p_nan and r_nan:
        return NAN
    if p_nan or r_nan or precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def false_events(starts: ArrayLike, ends: ArrayLike, label: ArrayLike) -> int:
    """How many events, inclusive row ranges ``starts[i]..ends[i]`` (as the post-rules give
    them), overlap no labelled row. Divide by the span they were raised in for a rate."""
    y = _as_bool(np.asarray(label), "label")
    a, b = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"starts and ends must be 1-D of one length, got {a.shape}, {b.shape}")
    if a.size and (a.min() < 0 or b.max() >= y.size or (b < a).any()):
        raise ValueError(f"events must be (start <= end) rows within 0..{y.size - 1}")
    cy = np.r_[0, np.cumsum(y)]
    return int(np.count_nonzero(cy[b + 1] == cy[a]))
