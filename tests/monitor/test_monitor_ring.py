"""The per-series ring buffers (anomae/monitor/ring.py) emit exactly the batch windows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anomae.monitor.ring import RingBank
from anomae.spec import WindowSpec
from anomae.windows import RingBuffer, sliding_windows


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 5),
    stride=st.integers(1, 3),
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=30), max_size=6
    ),
)
def test_ringbank_emits_exactly_the_ringbuffer_windows(
    length: int, stride: int, batches: list[list[tuple[int, bool]]]
) -> None:
    spec = WindowSpec(length, stride)
    bank = RingBank(spec, n_features=2, max_slots=4, initial_slots=1)
    refs = [RingBuffer(spec, 2) for _ in range(4)]
    rng = np.random.default_rng(0)
    for batch in batches:
        slots = np.array([s for s, _ in batch], np.int64)
        reset = np.array([r for _, r in batch], bool) & (rng.random(len(batch)) < 0.2)
        rows = rng.normal(size=(len(batch), 2)).astype(np.float32)
        expected = []
        for i, (s, r) in enumerate(zip(slots, reset, strict=True)):
            if r:
                refs[s].reset()
            w = refs[s].push(rows[i])
            if w is not None:
                expected.append((i, w))
        origin, windows = bank.push(slots, rows, reset)
        assert windows.shape == (len(expected), length, 2)
        assert sorted(origin.tolist()) == [i for i, _ in expected]
        for s in set(slots.tolist()):  # each series' windows in order
            mine = origin[slots[origin] == s].tolist()
            assert mine == sorted(mine)
        by_origin = dict(zip(origin.tolist(), windows, strict=True))
        for i, want in expected:
            np.testing.assert_array_equal(by_origin[i], want)


def test_ringbank_many_readings_of_one_series_match_batch_windows() -> None:
    spec = WindowSpec(4, 2)
    rows = np.arange(60, dtype=np.float32).reshape(30, 2)
    bank = RingBank(spec, 2, max_slots=1)
    got = [
        bank.push(np.zeros(n, np.int64), rows[a : a + n], np.zeros(n, bool))[1]
        for a, n in ((0, 3), (3, 20), (23, 7))
    ]  # 20 readings: the general path
    np.testing.assert_array_equal(np.concatenate(got), sliding_windows(rows, spec))
