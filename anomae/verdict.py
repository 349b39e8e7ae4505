"""How a window's score becomes a verdict, the same in batch and in the stream.

Three rules live here and only here; :mod:`anomae.score` (batch) and
:mod:`anomae.monitor.scorer` (stream) both call them, and ``tests/test_verdict.py`` checks
that the two agree:

* **Which threshold applies** (:func:`resolve_thresholds`): ``--threshold`` for every
  series if given; else the model card's, per series where the card has its own threshold
  for the series (:meth:`~anomae.spec.Threshold.for_series`); none when the anomaly
  likelihood decides instead. A model without a threshold cannot judge.
* **What is anomalous** (:func:`is_anomalous`): the normalised score ``score / threshold``
  above :data:`ANOMALOUS_ABOVE` (1); NaN (nothing observed) never is.
* **Which features explain it** (:func:`feature_ratios`, :func:`top_features`): each
  feature's error over its own per-feature threshold where the card has one
  (``--per-feature`` calibration), else over the window threshold; features are ranked by
  that ratio, largest first, ties by feature order. An event's features are ranked by the
  ratios summed over its windows.

    >>> from anomae.spec import Threshold
    >>> th = resolve_thresholds(Threshold(2.0, "quantile", per_series={"m1": 1.5}), "m.onnx")
    >>> float(th.for_series("m1")), float(th.for_series("m2"))
    (1.5, 2.0)
    >>> is_anomalous(np.array([0.5, 1.0, 1.5, np.nan])).tolist()
    [False, False, True, False]
    >>> ratios = feature_ratios(np.array([[1.0, 4.0, 3.0]]), th.feature_scale(("a", "b", "c")))
    >>> top_features(ratios, 2).tolist()
    [[1, 2]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anomae.spec import Threshold

ANOMALOUS_ABOVE = 1.0
"""A window is anomalous when its normalised score is above this (the ``> 1`` contract)."""


def is_anomalous(normalised: np.ndarray) -> np.ndarray:
    """The one place a label is decided: normalised score above 1 (NaN is not anomalous)."""
    out = np.zeros(normalised.shape, bool)
    return np.greater(normalised, ANOMALOUS_ABOVE, where=~np.isnan(normalised), out=out)


@dataclass(frozen=True)
class Thresholds:
    """The thresholds a scorer divides by: ``value`` for every series (NaN when there is
    none: the likelihood decides), the card's :class:`~anomae.spec.Threshold` for its
    per-feature thresholds, and whether its per-series thresholds apply."""

    value: float
    card: Threshold | None = None
    per_series: bool = False

    def for_series(self, name: str) -> float:
        """The threshold of series ``name``."""
        if self.per_series and self.card is not None:
            return self.card.for_series(name)
        return self.value

    def feature_scale(self, features: Sequence[str]) -> np.ndarray:
        """Each feature's error threshold ``[F]``: its own per-feature threshold, else the
        window threshold (1 where there is none, so the ratios are the raw errors)."""
        per = self.card.per_feature if self.card is not None else {}
        den = 1.0 if math.isnan(self.value) else self.value
        return np.array([per.get(f, den) for f in features], np.float32)


def resolve_thresholds(
    card: Threshold | None,
    path: str,
    override: float | None = None,
    likelihood: bool = False,
) -> Thresholds:
    """The thresholds that apply to a model whose card holds ``card`` (read from ``path``,
    named in the error): ``override`` (``--threshold``) for every series if given, else the
    card's, per series where it has them; with ``likelihood`` the per-series thresholds do
    not apply (the likelihood decides), and without any threshold ``value`` is NaN."""
    from anomae.detector import DetectorError

    if override is not None:
        if not (math.isfinite(override) and override > 0):
            raise DetectorError(f"threshold must be a finite number > 0, got {override}")
        return Thresholds(float(override), card)  # --threshold: the same for every series
    if card is None:
        if likelihood:
            return Thresholds(math.nan)
        raise DetectorError(
            f"{path}: the model has no threshold; run `anomae calibrate {path} DATA` on "
            f"held-out normal data, pass --threshold, or alarm on the anomaly likelihood "
            f"(--likelihood), which needs no threshold"
        )
    return Thresholds(float(card.value), card, per_series=bool(card.per_series) and not likelihood)


def feature_ratios(feature_error: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-feature errors ``[n, F]`` over their thresholds ``scale`` ``[F]``."""
    return feature_error / scale


# up to this many features a row's ranks come from pairwise comparisons (F * (F - 1) / 2
# passes over contiguous columns), past it from a stable sort: measured on [65536, F]
# float32, k = 3, the comparisons cost 0.20-0.31x the sort's CPU for F = 8-24 (8: 0.028 vs
# 0.089 us a row) and were still ahead at 32 (0.18 vs 0.55), but grow as F squared
PAIRWISE_MAX_FEATURES = 24


def top_features(ratios: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest ratios of each row, largest first (ties: feature order;
    NaN last); the same as ``np.argsort(-ratios, kind="stable")[..., :k]``."""
    n_f = ratios.shape[-1]
    k = min(k, n_f)
    if ratios.ndim != 2 or n_f > PAIRWISE_MAX_FEATURES or ratios.shape[0] < 64:
        return np.argsort(-ratios, axis=-1, kind="stable")[..., :k]
    return _top_pairwise(ratios, k)


def _top_pairwise(ratios: np.ndarray, k: int) -> np.ndarray:
    """:func:`top_features` of ``[n, F]`` by each feature's rank: how many features of its
    row come before it (larger, or equal and earlier). Returned as a transposed view, each
    column contiguous (the scores table takes them one by one)."""
    n, n_f = ratios.shape
    cols = np.ascontiguousarray(ratios.T)
    rank = np.zeros((n_f, n), np.int8)  # n_f <= PAIRWISE_MAX_FEATURES
    ahead = np.empty(n, bool)
    for j in range(n_f):
        for i in range(j + 1, n_f):
            np.greater(cols[i], cols[j], out=ahead)  # i before j; else j (earlier) first
            rank[j] += ahead
            np.logical_not(ahead, out=ahead)
            rank[i] += ahead
    top = np.empty((k, n), np.int64)
    for j in range(n_f):
        at = np.flatnonzero(rank[j] < k)
        top[rank[j][at], at] = j
    # a NaN makes the sum NaN (an inf - inf too: such rows are only sorted needlessly)
    with np.errstate(invalid="ignore", over="ignore"):
        nan = np.flatnonzero(np.isnan(np.add.reduce(cols, axis=0)))
    if nan.size:  # comparisons cannot put NaN last: those rows by the sort
        top[:, nan] = np.argsort(-ratios[nan], axis=-1, kind="stable")[:, :k].T
    return top.T
