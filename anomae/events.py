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
    return np.greater(
        normalised, 1.0, where=~np.isnan(normalised), out=np.zeros(normalised.shape, bool)
    )


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def event_bounds(
    normalised: np.ndarray, rule: PostRule = PostRule()
) -> tuple[np.ndarray, np.ndarray]:
    """First and last window index (inclusive) of each event, as two int arrays."""
    starts, ends = _runs(is_anomalous(normalised))
    keep = (ends - starts + 1) >= rule.min_windows
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return starts, ends
    opens = np.concatenate([[True], starts[1:] - ends[:-1] - 1 > rule.max_gap])
    closes = np.concatenate([opens[1:], [True]])
    return starts[opens], ends[closes]


def find_events(normalised: np.ndarray, rule: PostRule = PostRule()) -> list[Span]:
    first, last = event_bounds(normalised, rule)
    return [Span(a, b) for a, b in zip(first.tolist(), last.tolist(), strict=True)]


def event_mask(n: int, spans: list[Span] | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Boolean ``[n]``: windows inside an event."""
    if isinstance(spans, tuple):
        first, last = spans
    else:
        first = np.array([sp.first for sp in spans], dtype=np.int64)
        last = np.array([sp.last for sp in spans], dtype=np.int64)
    d = np.zeros(n + 1, dtype=np.int32)
    np.add.at(d, first, 1)
    np.add.at(d, last + 1, -1)
    return np.cumsum(d[:n]) > 0
