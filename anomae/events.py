"""Post-rules: normalised scores of one series → anomaly flags → events.

An event opens when at least ``min_windows`` consecutive windows score above 1 and is
merged with the next one when fewer than ``max_gap`` + 1 windows separate them.

    >>> import numpy as np
    >>> norm = np.array([0.5, 1.2, 1.5, 0.9, 2.0, 0.1, 1.1, 1.3, 1.4])
    >>> [(e.first, e.last) for e in find_events(norm, PostRule(min_windows=2))]
    [(1, 2), (6, 8)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PostRule:
    min_windows: int = 1
    max_gap: int = 0

    def __post_init__(self) -> None:
        if self.min_windows < 1 or self.max_gap < 0:
            raise ValueError("min_windows must be >= 1 and max_gap >= 0")


@dataclass(frozen=True)
class Span:
    """Windows ``first..last`` (inclusive indices) form one event."""

    first: int
    last: int


def is_anomalous(normalised: np.ndarray) -> np.ndarray:
    """The one place a label is decided: normalised score above 1 (NaN is not anomalous)."""
    return np.greater(normalised, 1.0, where=~np.isnan(normalised), out=np.zeros(normalised.shape, bool))


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def find_events(normalised: np.ndarray, rule: PostRule = PostRule()) -> list[Span]:
    starts, ends = _runs(is_anomalous(normalised))
    keep = (ends - starts + 1) >= rule.min_windows
    starts, ends = starts[keep], ends[keep]
    spans: list[Span] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if spans and s - spans[-1].last - 1 <= rule.max_gap:
            spans[-1] = Span(spans[-1].first, e)
        else:
            spans.append(Span(s, e))
    return spans


def event_mask(n: int, spans: list[Span]) -> np.ndarray:
    """Boolean ``[n]``: windows inside an event."""
    mask = np.zeros(n, dtype=bool)
    for sp in spans:
        mask[sp.first : sp.last + 1] = True
    return mask
