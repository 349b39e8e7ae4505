"""Sliding windows over one series, in batch and as a stream, producing identical windows.

Batch code views a ``[rows, features]`` array as ``[windows, length, features]`` without
copying; :class:`RingBuffer` receives rows one at a time and emits the same windows at the
same rows. Windows never cross series: callers hold one array or one buffer per series.

    >>> import numpy as np
    >>> rows = np.arange(10, dtype=np.float32).reshape(5, 2)
    >>> spec = WindowSpec(length=3, stride=2)
    >>> sliding_windows(rows, spec)[:, :, 0].tolist()
    [[0.0, 2.0, 4.0], [4.0, 6.0, 8.0]]
    >>> window_ends(5, spec).tolist()
    [2, 4]
    >>> buf = RingBuffer(spec, n_features=2)
    >>> [i for i, r in enumerate(rows) if buf.push(r) is not None]
    [2, 4]

**The gap rule**, one for batch and stream: a reading more than ``max_gap_s`` seconds after
the previous one of its series starts a new segment, and no window spans two segments
(:func:`is_gap`; ``max_gap_s`` 0: no rule). Training records ``GAP_FACTOR`` times the median
training interval in the model card; batch scoring windows each segment on its own
(:func:`gap_segments`, :func:`segment_window_ends`) and the monitor restarts a series'
ring buffer at the same readings (:mod:`anomae.monitor.series`). A segment shorter than the
window yields no window; the post-rules still run over all windows of the series.

    >>> ts = np.array([0, 60, 120, 1200, 1260, 1320, 1380], dtype=np.int64) * 10**9
    >>> bounds = gap_segments(ts, max_gap_s=600.0)
    >>> bounds.tolist()
    [0, 3, 7]
    >>> segment_window_ends(bounds, spec).tolist()
    [2, 5]
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from anomae.spec import WindowSpec

GAP_FACTOR = 10.0  # a gap is longer than this many typical sampling intervals


def sliding_windows(rows: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """A read-only ``[n_windows, length, features]`` view of ``rows`` (``[rows, features]``)."""
    if rows.ndim != 2:
        raise ValueError(f"rows must be 2-D [rows, features], got shape {rows.shape}")
    if rows.shape[0] < spec.length:
        return np.empty((0, spec.length, rows.shape[1]), dtype=rows.dtype)
    view = sliding_window_view(rows, spec.length, axis=0)  # [n, F, L]
    return view[:: spec.stride].transpose(0, 2, 1)


def window_ends(n_rows: int, spec: WindowSpec) -> np.ndarray:
    """Row index of the last row of each window (where its score is reported)."""
    return np.arange(spec.count(n_rows), dtype=np.int64) * spec.stride + (spec.length - 1)


@overload
def is_gap(dt_s: float, max_gap_s: float) -> bool: ...
@overload
def is_gap(dt_s: np.ndarray, max_gap_s: float) -> np.ndarray: ...
def is_gap(dt_s: Any, max_gap_s: float) -> Any:
    """Whether ``dt_s`` seconds between two readings of a series (a number, or an array of
    them) break its windows: the one comparison batch and stream both make."""
    return max_gap_s > 0 and dt_s > max_gap_s


def gap_segments(timestamps: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Row bounds ``[0, ..., n]`` of the segments of one series (``timestamps`` int64 ns,
    increasing): segment ``i`` is rows ``bounds[i]:bounds[i + 1]``, cut where
    :func:`is_gap` holds between consecutive rows."""
    n = timestamps.shape[0]
    if max_gap_s <= 0 or n < 2:
        return np.array([0, n], dtype=np.int64)
    dt_s = np.diff(timestamps).astype(np.float64) / 1e9
    cuts = np.flatnonzero(is_gap(dt_s, max_gap_s)) + 1
    return np.concatenate([[0], cuts, [n]]).astype(np.int64)


def segment_window_ends(bounds: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Row index of each window's last row when every segment is windowed on its own."""
    b = bounds.tolist()
    parts = [lo + window_ends(hi - lo, spec) for lo, hi in zip(b[:-1], b[1:], strict=True)]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


class RingBuffer:
    """Keeps the last ``length`` rows of one stream and yields a window every ``stride`` rows.

    The first window completes at row ``length - 1`` and then every ``stride`` rows, exactly
    as :func:`window_ends`. ``reset()`` forgets history (after a long gap, say).
    """

    def __init__(self, spec: WindowSpec, n_features: int) -> None:
        self.spec = spec
        self.n_features = n_features
        # Twice the length so a window is always one contiguous slice: each row is written
        # at i and i + length, and the window is buf[head : head + length].
        self._buf = np.full((2 * spec.length, n_features), np.nan, dtype=np.float32)
        self._head = 0
        self.seen = 0

    def reset(self) -> None:
        self._buf.fill(np.nan)
        self._head = 0
        self.seen = 0

    def push(self, row: np.ndarray) -> np.ndarray | None:
        """Add one row; return a copy of the completed window, or ``None``."""
        length = self.spec.length
        i = self._head
        self._buf[i] = row
        self._buf[i + length] = row
        self._head = (i + 1) % length
        self.seen += 1
        if self.seen < length or (self.seen - length) % self.spec.stride:
            return None
        start = self._head
        return self._buf[start : start + length].copy()
