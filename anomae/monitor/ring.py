"""Ring buffers of many series in one array, pushed a batch of readings at a time.

:class:`RingBank` keeps, per series slot, the last ``length`` rows and how many rows
arrived since the series started (or was reset). :meth:`RingBank.push` takes a batch of
readings of any series in arrival order and returns every window they completed (each
series' in order): exactly the windows :class:`anomae.windows.RingBuffer` would emit row by
row (a test checks this on random batches, series and resets). The work is a few numpy
calls per batch instead of several per reading: the daemon's per-event cost stays flat.

How: each slot is a ring of ``2 * length`` rows where every row is written twice (at ``i``
and ``i + length``, as :class:`~anomae.windows.RingBuffer` does), so a slot's current window
is always one contiguous block, and a batch of windows is gathered in one indexing call.
When each series has at most a few readings in the batch (the usual case: many series
interleaved), the r-th readings of all series are pushed together: two row writes and one
block copy per reading. Otherwise (one series flooding) readings are grouped by series and
each group's rows laid after the ``length - 1`` rows its series had, so every window is a
slice of that extended block. A ``reset`` flag on a reading (new series, long gap) starts a
fresh history at that reading.

    >>> import numpy as np
    >>> from anomae.spec import WindowSpec

MAX_ROUNDS = 8  # beyond this many readings of one series in a batch, the general path
    >>> bank = RingBank(WindowSpec(length=3, stride=1), n_features=1, max_slots=4)
    >>> slots = np.array([0, 1, 0, 0, 1, 1])
    >>> rows = np.arange(6, dtype=np.float32)[:, None]
    >>> origin, windows = bank.push(slots, rows, np.zeros(6, bool))
    >>> origin.tolist(), windows[:, :, 0].tolist()
    ([3, 5], [[0.0, 2.0, 3.0], [1.0, 4.0, 5.0]])
"""

from __future__ import annotations

import numpy as np

from anomae.spec import WindowSpec

MAX_ROUNDS = 8  # beyond this many readings of one series in a batch, the general path


class RingBank:
    """The recent rows of up to ``max_slots`` series; storage grows by doubling."""

    def __init__(
        self, spec: WindowSpec, n_features: int, max_slots: int, initial_slots: int = 64
    ) -> None:
        self.spec = spec
        self.n_features = n_features
        self.max_slots = max_slots
        cap = max(1, min(initial_slots, max_slots))
        self._buf = np.full((cap, 2 * spec.length, n_features), np.nan, np.float32)
        self._head = np.zeros(cap, np.int64)  # next write position, in [0, length)
        self._seen = np.zeros(cap, np.int64)

    @property
    def nbytes(self) -> int:
        return self._buf.nbytes + self._head.nbytes + self._seen.nbytes

    def seen(self, slot: int) -> int:
        """Rows since the slot's series started or was reset."""
        return int(self._seen[slot]) if slot < self._seen.shape[0] else 0

    def _blocks(self, rows: int) -> np.ndarray:
        """Read-only view ``[slot, start, rows, F]``: the ``rows`` rows from ``start``."""
        b = self._buf
        n = b.shape[1] - rows + 1
        return np.lib.stride_tricks.as_strided(
            b,
            (b.shape[0], n, rows, b.shape[2]),
            (b.strides[0], b.strides[1], *b.strides[1:]),
            writeable=False,
        )

    def _grow(self, top: int) -> None:
        cap = self._seen.shape[0]
        if top < cap:
            return
        if top >= self.max_slots:
            raise IndexError(f"slot {top} beyond max_slots {self.max_slots}")
        new = min(self.max_slots, max(2 * cap, top + 1))
        buf = np.full((new, *self._buf.shape[1:]), np.nan, np.float32)
        buf[:cap] = self._buf
        head, seen = np.zeros(new, np.int64), np.zeros(new, np.int64)
        head[:cap], seen[:cap] = self._head, self._seen
        self._buf, self._head, self._seen = buf, head, seen

    def push(
        self, slots: np.ndarray, rows: np.ndarray, reset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Add ``rows`` ``[n, F]`` of series ``slots`` ``[n]`` (``reset[i]``: history starts
        afresh at reading ``i``). Returns ``(origin, windows)``: for each completed window,
        the index of the reading that completed it, and the windows ``[k, length, F]``.
        Each series' windows come in order; across series, not necessarily in arrival order
        (when a series has several readings in the batch)."""
        n = slots.shape[0]
        if n == 0:
            return np.empty(0, np.int64), np.empty(
                (0, self.spec.length, self.n_features), np.float32
            )
        self._grow(int(slots.max()))
        order = np.argsort(slots, kind="stable")
        s_sorted = slots[order]
        first = np.empty(n, bool)
        first[0] = True
        np.not_equal(s_sorted[1:], s_sorted[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        rank_sorted = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
        rounds = int(rank_sorted.max()) + 1
        if rounds > MAX_ROUNDS:
            return self._push_general(order, s_sorted, rows, reset)
        if rounds == 1:
            return self._push_once(np.arange(n), slots, rows, reset)
        # the r-th reading of every series goes in round r: each round has each series once
        rank = np.empty(n, np.int64)
        rank[order] = rank_sorted
        parts = [
            self._push_once(idx, slots[idx], rows[idx], reset[idx])
            for idx in (np.flatnonzero(rank == r) for r in range(rounds))
        ]
        # round after round: each series' windows stay in order (re-sorting all of them
        # by arrival would copy every window once more)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _push_once(
        self, idx: np.ndarray, slots: np.ndarray, rows: np.ndarray, reset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Readings of distinct series: two row writes each, one block copy per window."""
        length = self.spec.length
        if reset.any():
            fresh = slots[reset]
            self._buf[fresh] = np.nan
            self._head[fresh] = 0
            self._seen[fresh] = 0
        head = self._head[slots]
        self._buf[slots, head] = rows
        self._buf[slots, head + length] = rows
        head += 1
        head[head == length] = 0
        self._head[slots] = head
        seen = self._seen[slots] + 1
        self._seen[slots] = seen
        done = (seen >= length) & ((seen - length) % self.spec.stride == 0)
        if done.all():
            return idx, self._blocks(length)[slots, head]
        return idx[done], self._blocks(length)[slots[done], head[done]]

    def _push_general(
        self, order: np.ndarray, s_sorted: np.ndarray, rows: np.ndarray, reset: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Any batch (many readings of one series): extended blocks per segment."""
        n = order.shape[0]
        spec, n_f = self.spec, self.n_features
        keep = spec.length - 1
        r_sorted = reset[order]
        # segments: runs of one series within the batch, split where a reading resets
        starts_seg = np.empty(n, bool)
        starts_seg[0] = True
        np.logical_or(s_sorted[1:] != s_sorted[:-1], r_sorted[1:], out=starts_seg[1:])
        seg_first = np.flatnonzero(starts_seg)
        seg_len = np.diff(np.append(seg_first, n))
        seg_slot = s_sorted[seg_first]
        fresh = r_sorted[seg_first]
        n0 = np.where(fresh, 0, self._seen[seg_slot])
        # extended block of each segment: `keep` earlier rows, then its new rows
        ext_len = keep + seg_len
        ext_off = np.concatenate([[0], np.cumsum(ext_len)[:-1]])
        ext = np.empty((int(ext_len.sum()), n_f), np.float32)
        if keep:
            old = self._blocks(keep)[seg_slot, self._head[seg_slot] + 1]  # the last keep rows
            old[fresh] = np.nan
            ext[(ext_off[:, None] + np.arange(keep)).ravel()] = old.reshape(-1, n_f)
        seg_of = np.repeat(np.arange(seg_first.size), seg_len)
        rank = np.arange(n) - seg_first[seg_of]
        ext[ext_off[seg_of] + keep + rank] = rows[order]
        pos = n0[seg_of] + rank  # row number within the series' history
        done = (pos >= keep) & ((pos - keep) % spec.stride == 0)
        start = ext_off[seg_of][done] + rank[done]
        origin = order[done]
        by_arrival = np.argsort(origin, kind="stable")
        origin, start = origin[by_arrival], start[by_arrival]
        windows = ext[start[:, None] + np.arange(spec.length)]
        # the last segment of each series becomes its ring: its last `keep` rows at
        # positions 1..keep (and their doubles), the next write at 0
        last = np.append(seg_slot[1:] != seg_slot[:-1], True)
        ls, lo, ll = seg_slot[last], ext_off[last], seg_len[last]
        if keep:
            tail = ext[(lo + ll)[:, None] + np.arange(keep)]
            self._buf[ls, 1 : 1 + keep] = tail
            self._buf[ls, spec.length + 1 :] = tail
        self._head[ls] = 0
        self._seen[ls] = n0[last] + ll
        return origin.astype(np.int64), windows

    def clear(self, slot: int) -> None:
        """Forget a slot's rows (its series was evicted)."""
        if slot < self._seen.shape[0]:
            self._buf[slot] = np.nan
            self._head[slot] = 0
            self._seen[slot] = 0
