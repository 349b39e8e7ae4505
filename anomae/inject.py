"""Anomalies injected into copies of held-out normal rows: labels that no one had to write.

:mod:`anomae.tune` ranks candidate models by how well they find these. Every held-out
block long enough gets ``copies`` copies per kind of :data:`anomae.synth.ANOMALY_KINDS`,
each holding one anomaly of that kind at a random position, made by the same code as the
demo data's (:func:`anomae.synth.inject_segment`): segment lengths from
:data:`anomae.synth.SEGMENT_LENGTHS`, magnitudes from :data:`anomae.synth.SIZES` in units
of each feature's spread: ``"global"``, its standard deviation over the training rows, or
``"local"``, its spread in the :data:`MARGIN` rows before and after the segment as the
demo data has it (at least :data:`MIN_UNIT` of the global one, so a sensor flat for an
hour still gets a visible anomaly). A correlation break replaces a feature by an independent signal
beside the feature most correlated with it in the training rows. The labels are the
injected rows; the data's own label column is never read. Same seed, same copies.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> block = rng.standard_normal((400, 3)).cumsum(axis=0).astype(np.float32)
    >>> copies = injected_copies([block], block, lead=32, seed=1)
    >>> [c.kind for c in copies] == list(ANOMALY_KINDS)
    True
    >>> all(c.rows.shape == (400, 3) for c in copies)
    True
    >>> [(int(c.label.argmax()) >= 32, int(c.label.sum()) > 0) for c in copies][:2]
    [(True, True), (True, True)]
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anomae.synth import ANOMALY_KINDS, SEGMENT_LENGTHS, inject_segment

MARGIN = 60  # normal rows kept after each anomaly, and the spread's context either side
MIN_UNIT = 0.1  # local magnitude unit floor, as a fraction of the feature's training spread
UNITS = ("global", "local")


@dataclass(frozen=True)
class Injected:
    """A copy of one held-out block with one anomaly: ``rows [n, F]``, ``label [n]`` (int8)."""

    kind: str
    rows: np.ndarray
    label: np.ndarray


def rows_needed(lead: int) -> int:
    """Rows a held-out block needs to take every kind: ``lead`` normal rows before the
    anomaly (the largest window, or :data:`MARGIN` if more), the longest segment, then
    :data:`MARGIN` normal rows."""
    return max(lead, MARGIN) + max(hi for _, hi in SEGMENT_LENGTHS.values()) + MARGIN


def injected_copies(
    blocks: Sequence[np.ndarray],
    train_rows: np.ndarray,
    *,
    lead: int,
    seed: int = 0,
    copies: int = 1,
    scored: np.ndarray | None = None,
    unit: str = "global",
) -> list[Injected]:
    """``copies`` injected copies per kind of every block of at least ``rows_needed(lead)``
    rows. ``train_rows`` (the fit rows, ``[rows, F]``) set the spread floor and the
    correlation-break partners; ``scored`` (bool ``[F]``) limits the features touched;
    ``unit`` is ``"global"`` or ``"local"`` (see above)."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    n_f = train_rows.shape[1]
    scored = np.ones(n_f, bool) if scored is None else np.asarray(scored, bool)
    cols_ok = np.flatnonzero(scored)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nan_to_num(np.nanstd(train_rows.astype(np.float64), axis=0))
        partner = _partners(train_rows, cols_ok)
    rng = np.random.default_rng(seed)
    need = rows_needed(lead)
    out: list[Injected] = []
    for block in blocks:
        if block.shape[0] < need or cols_ok.size == 0:
            continue
        x = _filled(block.astype(np.float64))
        for kind in ANOMALY_KINDS:
            if kind == "correlation_break" and cols_ok.size < 2:
                continue
            for _ in range(copies):
                out.append(_one(rng, block, x, kind, lead, cols_ok, spread, partner, unit))
    return out


def _one(
    rng: np.random.Generator,
    block: np.ndarray,
    x: np.ndarray,
    kind: str,
    lead: int,
    cols_ok: np.ndarray,
    spread: np.ndarray,
    partner: dict[int, int],
    unit: str,
) -> Injected:
    n = x.shape[0]
    lo, hi = SEGMENT_LENGTHS[kind]
    length = int(rng.integers(lo, hi + 1))
    s = int(rng.integers(max(lead, MARGIN), n - MARGIN - length + 1))
    e = s + length
    if kind == "correlation_break":
        follower = int(rng.choice(cols_ok))
        cols = [partner[follower], follower]
    else:
        n_cols = 2 if kind in ("level_shift", "noise_burst") and rng.random() < 0.5 else 1
        cols = sorted(rng.choice(cols_ok, size=min(n_cols, cols_ok.size), replace=False).tolist())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        local = (x[s - MARGIN : s, cols].std(axis=0) + x[e : e + MARGIN, cols].std(axis=0)) / 2
        local = np.nan_to_num(local)
        # a break's stand-in signal is as smooth as the feature it replaces
        y = x[:, cols[-1]]
        phi = float(np.clip(np.nan_to_num(np.corrcoef(y[:-1], y[1:])[0, 1]), 0.0, 0.99))
    size = spread[cols] if unit == "global" else np.maximum(local, MIN_UNIT * spread[cols])
    out = x.copy()
    inject_segment(rng, x, out, kind, s, e, cols, size, np.full(len(cols), -np.inf), phi)
    changed = cols[1:] if kind == "correlation_break" else cols
    rows = block.astype(np.float32)  # missing readings stay missing, except where injected
    rows[s:e, changed] = out[s:e, changed]
    label = np.zeros(n, np.int8)
    label[s:e] = 1
    return Injected(kind, rows, label)


def _filled(x: np.ndarray) -> np.ndarray:
    """``x`` with each column's NaN carried forward (then backward; all-NaN columns 0)."""
    out = x.copy()
    for j in range(out.shape[1]):
        col = out[:, j]
        ok = np.flatnonzero(~np.isnan(col))
        if ok.size == 0:
            col[:] = 0.0
            continue
        last = np.maximum.accumulate(np.where(np.isnan(col), 0, np.arange(col.size)))
        col[:] = col[np.where(np.isnan(col[last]), ok[0], last)]
    return out


def _partners(train_rows: np.ndarray, cols: np.ndarray) -> dict[int, int]:
    """Each feature's most correlated other feature (absolute correlation) in ``train_rows``."""
    x = train_rows[:, cols].astype(np.float64)
    x = x[~np.isnan(x).any(axis=1)]
    if cols.size < 2:
        return {}
    corr = np.abs(np.nan_to_num(np.corrcoef(x, rowvar=False))) if x.shape[0] > 2 else None
    out = {}
    for i, c in enumerate(cols.tolist()):
        if corr is None:
            out[c] = int(cols[(i + 1) % cols.size])
            continue
        row = corr[i].copy()
        row[i] = -1.0
        out[c] = int(cols[int(row.argmax())])
    return out
