from __future__ import annotations

import numpy as np
import pytest

from anomae.monitor.series import SeriesTable
from anomae.spec import WindowSpec
from anomae.windows import (
    RingBuffer,
    gap_segments,
    is_gap,
    segment_window_ends,
    sliding_windows,
    window_ends,
)


@pytest.mark.parametrize(
    ("n_rows", "length", "stride"),
    [(100, 8, 1), (100, 8, 3), (64, 64, 1), (63, 64, 1), (50, 1, 1), (97, 10, 10), (30, 7, 4)],
)
def test_ring_buffer_yields_exactly_the_batch_windows(
    n_rows: int, length: int, stride: int
) -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(n_rows, 3)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.05] = np.nan  # missing readings travel unchanged
    spec = WindowSpec(length, stride)
    batch = sliding_windows(rows, spec)
    buf = RingBuffer(spec, 3)
    streamed, at = [], []
    for i, r in enumerate(rows):
        w = buf.push(r)
        if w is not None:
            streamed.append(w)
            at.append(i)
    assert batch.shape == (spec.count(n_rows), length, 3)
    assert len(streamed) == batch.shape[0]
    assert at == window_ends(n_rows, spec).tolist()
    for a, b in zip(streamed, batch, strict=True):
        np.testing.assert_array_equal(a, b)  # NaN-aware, sample by sample


def test_windows_never_cross_series() -> None:
    spec = WindowSpec(4, 1)
    a = np.zeros((10, 2), np.float32)
    b = np.ones((10, 2), np.float32)
    wins = np.concatenate([sliding_windows(a, spec), sliding_windows(b, spec)])
    assert wins.shape[0] == 2 * spec.count(10)
    assert all(np.unique(w).size == 1 for w in wins)


def test_ring_buffer_reset_starts_over() -> None:
    spec = WindowSpec(3, 1)
    buf = RingBuffer(spec, 1)
    for v in range(5):
        buf.push(np.array([v], np.float32))
    buf.reset()
    assert buf.push(np.array([9.0], np.float32)) is None
    assert buf.push(np.array([9.0], np.float32)) is None
    w = buf.push(np.array([9.0], np.float32))
    assert w is not None and w.ravel().tolist() == [9.0, 9.0, 9.0]


def test_emitted_window_is_a_copy() -> None:
    buf = RingBuffer(WindowSpec(2, 1), 1)
    buf.push(np.array([1.0], np.float32))
    w = buf.push(np.array([2.0], np.float32))
    buf.push(np.array([3.0], np.float32))
    assert w is not None and w.ravel().tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("length", "stride"), [(0, 1), (4, 0)])
def test_window_spec_validates(length: int, stride: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        WindowSpec(length, stride)


S = 10**9  # ns per second


@pytest.mark.parametrize(
    ("seconds", "max_gap_s", "bounds"),
    [
        ([0, 60, 120, 180], 600.0, [0, 4]),  # regular: one segment
        ([0, 60, 660, 720], 600.0, [0, 4]),  # exactly the limit is no gap
        ([0, 60, 661, 721], 600.0, [0, 2, 4]),  # just over it is
        ([0, 60, 1200, 1260, 2400], 600.0, [0, 2, 4, 5]),  # a gap before the last row
        ([0, 5000, 10000], 600.0, [0, 1, 2, 3]),  # every row its own segment
        ([0, 60, 100000], 0.0, [0, 3]),  # 0: no rule (cards written before it)
        ([0], 600.0, [0, 1]),
        ([], 600.0, [0, 0]),
    ],
)
def test_gap_segments_cut_where_the_interval_exceeds_the_limit(
    seconds: list[int], max_gap_s: float, bounds: list[int]
) -> None:
    ts = np.asarray(seconds, np.int64) * S
    assert gap_segments(ts, max_gap_s).tolist() == bounds


@pytest.mark.parametrize(("length", "stride"), [(8, 1), (8, 3), (2, 1), (5, 5)])
def test_segment_windows_equal_the_monitors_after_its_gap_resets(length: int, stride: int) -> None:
    """Batch segments vs the monitor's admission (SeriesTable) + ring buffer, row for row."""
    rng = np.random.default_rng(length * 10 + stride)
    n = 3000
    dt = rng.choice([55, 60, 65], size=n - 1).astype(np.int64)
    gaps = rng.choice(n - 1, size=12, replace=False)
    dt[gaps] = rng.integers(8 * 60, 40 * 60, size=12)  # some under the 600 s limit, most over
    ts = np.concatenate([[1_700_000_000], 1_700_000_000 + np.cumsum(dt)]) * S
    max_gap_s = 600.0
    spec = WindowSpec(length, stride)
    table = SeriesTable(max_series=1, max_gap_seconds=max_gap_s)
    adm = table.admit(["m1"] * n, (ts / 1e9).tolist(), [None] * n, now=0.0)
    assert adm.index.tolist() == list(range(n))
    buf = RingBuffer(spec, 1)
    streamed = []
    for i, (r, reset) in enumerate(zip(np.arange(n, dtype=np.float32), adm.reset, strict=True)):
        if reset:
            buf.reset()
        if buf.push(np.array([r], np.float32)) is not None:
            streamed.append(i)
    bounds = gap_segments(ts, max_gap_s)
    assert table.gap_resets == bounds.size - 2 > 0
    assert streamed == segment_window_ends(bounds, spec).tolist()
    assert len(streamed) < spec.count(n)  # windows that would span a gap are gone


def test_is_gap_is_one_comparison_for_numbers_and_arrays() -> None:
    assert is_gap(601.0, 600.0) and not is_gap(600.0, 600.0) and not is_gap(1e9, 0.0)
    assert is_gap(np.array([599.0, 600.0, 601.0]), 600.0).tolist() == [False, False, True]
