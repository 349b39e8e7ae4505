"""NAB's scoring (Numenta Anomaly Benchmark v1.1): early detections inside labelled windows
earn up to ``tpWeight``, false alarms and missed windows cost, and a corpus is normalised so
that no detections score 0 and perfect ones 100. The threshold-free and point metrics are in
:mod:`anomae.eval.metrics`.

    >>> import numpy as np
    >>> det = np.zeros(100, bool)
    >>> det[40] = True  # the first row of the one window
    >>> r = nab_score(det, [(40, 49)], probationary=0)
    >>> r["score"], r["null"], r["perfect"], nab_normalised([r])
    (1.0, -1.0, 1.0, 100.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike

from anomae.eval.metrics import NAN, _as_bool

NAB_PROFILES: Final[dict[str, dict[str, float]]] = {
    "standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0},
}


def nab_probationary_length(n_rows: int, percent: float = 0.15) -> int:
    """NAB's unscored lead-in, ``min(floor(percent * n_rows), percent * 5000)`` rows."""
    return math.ceil(min(math.floor(percent * n_rows), percent * 5000))


def _scaled_sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        val = 2 * (1 / (1 + np.exp(5 * x))) - 1
    return np.where(x > 3.0, -1.0, val)


def nab_score(
    detections: ArrayLike,
    windows: Sequence[tuple[int, int]],
    probationary: int | None = None,
    profile: str | Mapping[str, float] = "standard",
) -> dict[str, float]:
    """One file's NAB score, as NAB v1.1's ``Sweeper`` computes it at a fixed threshold.

    ``detections`` flags rows (``score >= threshold``; NAB counts every flagged row, so pass
    alarm onsets if alarms are held), ``windows`` are sorted, disjoint ``(start, end)`` row
    pairs, inclusive, and rows before ``probationary`` (default
    :func:`nab_probationary_length`) are ignored, as is a window lying wholly inside them.

    Only the earliest scored detection in a window counts, worth
    ``tpWeight * S(-(end - row + 1) / width) / S(-1)`` with ``S(x) = 2 sigmoid(-5x) - 1``.
    A missed window costs ``fnWeight``. A detection outside windows costs
    ``fpWeight * S((row - prev_end) / (prev_width - 1))``, the full ``fpWeight`` before the
    first window (and, where NAB would divide by zero, after a 1-row window).

    Returns ``score`` with the file's ``null`` (no detections) and ``perfect`` (NAB's
    ``windows * tpWeight``) scores for :func:`nab_normalised`, and event counts."""
    det = np.asarray(detections)
    if det.ndim != 1 or det.size == 0:
        raise ValueError("detections must be a non-empty 1-D array")
    det, n = _as_bool(det, "detections"), det.size
    if isinstance(profile, str):
        if profile not in NAB_PROFILES:
            raise ValueError(f"unknown NAB profile {profile!r}; known: {sorted(NAB_PROFILES)}")
        profile = NAB_PROFILES[profile]
    tp_w, fp_w, fn_w = (float(profile[k]) for k in ("tpWeight", "fpWeight", "fnWeight"))
    win = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    starts, ends = win[:, 0], win[:, 1]
    if win.size and (
        starts[0] < 0 or ends[-1] >= n or (ends < starts).any() or (starts[1:] <= ends[:-1]).any()
    ):
        raise ValueError(f"windows must be sorted, disjoint (start, end) rows within 0..{n - 1}")
    prob = nab_probationary_length(n) if probationary is None else int(probationary)
    if prob < 0:
        raise ValueError(f"probationary must be >= 0, got {prob}")
    width = ends - starts + 1

    rows = np.flatnonzero(det)
    rows = rows[rows >= prob]
    k = np.searchsorted(ends, rows)  # first window ending at or after the row
    inside = k < ends.size
    inside[inside] = starts[k[inside]] <= rows[inside]
    # rows are ascending, so np.unique's first index is the window's earliest detection
    hit, first = np.unique(k[inside], return_index=True)
    row = rows[inside][first]
    tp_score = _scaled_sigmoid(-(ends[hit] - row + 1) / width[hit]) * tp_w
    tp_score /= _scaled_sigmoid(np.array(-1.0))
    scorable = ends >= prob
    scorable[hit] = False
    n_missed = int(scorable.sum())

    fp_rows = rows[~inside]
    prev = np.searchsorted(ends, fp_rows) - 1  # last window that ended before the row
    x = np.full(fp_rows.size, np.inf)  # no window before: as far from one as can be
    after = prev >= 0
    with np.errstate(divide="ignore"):
        x[after] = (fp_rows[after] - ends[prev[after]]) / (width[prev[after]] - 1.0)
    fp_score = _scaled_sigmoid(x) * fp_w
    return {
        "score": float(tp_score.sum() + fp_score.sum() - fn_w * n_missed),
        "null": 0.0 - fn_w * (n_missed + hit.size),  # 0.0 - : no "-0.0" in reports
        "perfect": tp_w * ends.size,
        "tp": hit.size,
        "fn": n_missed,
        "fp": fp_rows.size,
        "windows": ends.size,
        "probationary": prob,
    }


def nab_window_rows(
    timestamps: ArrayLike, limits: Iterable[Sequence[Any]]
) -> list[tuple[int, int]]:
    """NAB's ``combined_windows.json`` limits, ``[start, end]`` timestamps, as inclusive row
    pairs for :func:`nab_score`; ``timestamps`` are the file's, ascending."""
    ts = np.asarray(timestamps, dtype="datetime64[us]")
    lim = np.asarray(list(limits), dtype="datetime64[us]").reshape(-1, 2)
    lo, hi = np.searchsorted(ts, lim[:, 0]), np.searchsorted(ts, lim[:, 1], side="right") - 1
    return list(zip(lo.tolist(), hi.tolist(), strict=True))


def nab_normalised(results: Iterable[Mapping[str, float]]) -> float:
    """Corpus score ``100 (S - S_null) / (S_perfect - S_null)`` over :func:`nab_score` dicts,
    each term summed over files first (as NAB does); NaN if the corpus has no windows."""
    rows = list(results)
    s, null, perfect = (sum(float(r[c]) for r in rows) for c in ("score", "null", "perfect"))
    return 100 * (s - null) / (perfect - null) if perfect != null else NAN
