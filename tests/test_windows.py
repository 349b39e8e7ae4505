from __future__ import annotations

import numpy as np
import pytest

from anomae.spec import WindowSpec
from anomae.windows import RingBuffer, sliding_windows, window_ends


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
