"""Which readings enter a series' window: the per-series admission policy.

:class:`SeriesTable` gives each series a slot (at most ``max_series``; what is over the cap
is dropped and counted as ``series_limit``, never silently) and applies, per series:

* **out of order / duplicate**: a reading not newer than the newest one accepted for its
  series is dropped (``out_of_order`` if older, ``duplicate`` if the same timestamp). The
  stream is never re-sorted, so latency stays bounded; a late reading cannot change windows
  already scored.
* **gaps**: a reading more than ``max_gap_seconds`` after the previous one starts a fresh
  window (the rows before the gap are forgotten; the reset is counted), by the same rule
  (:func:`anomae.windows.is_gap`) batch scoring applies; the daemon takes the limit from the
  model card unless told otherwise. ``0`` means *auto*: ``gap_factor`` (10) times the
  series' typical interval, an average of its recent intervals that a single gap cannot
  inflate by more than the factor.
* **sequence numbers**: when readings carry ``seq``, a jump other than +1 between accepted
  readings counts as a gap (``seq_gaps``) and the skipped numbers as ``seq_missing``.
* **shards**: with ``shard=(i, n)`` the table takes only the series whose stable hash
  (:func:`shard_of`: CRC-32 of the name, the same on every machine) is ``i`` modulo ``n``,
  so ``n`` replicas reading the same stream split a fleet without splitting any series'
  window; the others' readings are counted as ``other_shard``, not as drops.
* **idle series**: :meth:`SeriesTable.evict_idle` frees the slots of series silent for a
  while, so a fleet that changes over time does not fill the cap for good.

    >>> t = SeriesTable(max_series=1, max_gap_seconds=100)
    >>> adm = t.admit(["a", "a", "a", "b", "a"], [0.0, 60.0, 60.0, 5.0, 300.0],
    ...               [None] * 5, now=0.0)
    >>> adm.index.tolist(), adm.slots.tolist(), adm.reset.tolist()
    ([0, 1, 4], [0, 0, 0], [True, False, True])
    >>> {k: v for k, v in t.dropped.items() if v}, t.gap_resets
    ({'duplicate': 1, 'series_limit': 1}, 1)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anomae.windows import GAP_FACTOR, is_gap

DROP_REASONS = (
    "out_of_order",
    "duplicate",
    "series_limit",
    "queue_full",
    "shutdown",
    "scoring_error",
)


def shard_of(name: str, n: int) -> int:
    """The shard (``0 .. n - 1``) series ``name`` belongs to, stable across processes.

    >>> [shard_of(s, 3) for s in ("m1", "m2", "m3", "pump-17")]
    [0, 0, 1, 1]
    """
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % n


@dataclass
class Admitted:
    """The accepted readings: their indices in the batch, series slots, and reset flags."""

    index: np.ndarray
    slots: np.ndarray
    reset: np.ndarray


class SeriesTable:
    """Series name → slot, with the newest timestamp, sequence number and interval of each."""

    def __init__(
        self,
        max_series: int,
        max_gap_seconds: float = 0.0,
        gap_factor: float = GAP_FACTOR,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if max_series < 1:
            raise ValueError(f"max_series must be >= 1, got {max_series}")
        if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError(f"shard must be I/N with 0 <= I < N, got {shard[0]}/{shard[1]}")
        self.shard = shard
        self.other_shard = 0  # readings of series other replicas take
        self.max_series = max_series
        self.max_gap_seconds = max_gap_seconds
        self.gap_factor = gap_factor
        self.slot_of: dict[str, int] = {}
        self.names: list[str | None] = []
        self._last_ts: list[float] = []
        self._last_seq: list[int | None] = []
        self._interval: list[float] = []
        self._touched = np.zeros(0)
        self._free: list[int] = []
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._drop_sample: dict[str, tuple[str, float, float]] = {}  # the latest of a reason
        self.gap_resets = 0
        self.seq_gaps = 0
        self.seq_missing = 0
        self.newest_ts = -math.inf

    def __len__(self) -> int:
        return len(self.slot_of)

    def _allocate(self, name: str) -> int:
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self.names)
            self.names.append(None)
            self._last_ts.append(-math.inf)
            self._last_seq.append(None)
            self._interval.append(0.0)
        self.slot_of[name] = slot
        self.names[slot] = name
        return slot

    def admit(
        self,
        series: Sequence[str],
        ts: Sequence[float],
        seq: Sequence[int | None],
        now: float,
    ) -> Admitted:
        """Apply the policy to a batch in arrival order; ``now`` (monotonic) marks activity."""
        slot_of, last_ts, last_seq, interval = (
            self.slot_of,
            self._last_ts,
            self._last_seq,
            self._interval,
        )
        dropped = self.dropped
        fixed, factor = self.max_gap_seconds, self.gap_factor
        index: list[int] = []
        slots: list[int] = []
        reset: list[bool] = []
        mine, shards = self.shard
        for i, (name, t, q) in enumerate(zip(series, ts, seq, strict=True)):
            slot = slot_of.get(name)
            if slot is None:
                if shards > 1 and shard_of(name, shards) != mine:
                    self.other_shard += 1
                    continue
                if len(slot_of) >= self.max_series:
                    dropped["series_limit"] += 1
                    self._drop_sample["series_limit"] = (name, t, 0.0)
                    continue
                slot = self._allocate(name)
                last_ts[slot], last_seq[slot], interval[slot] = t, q, 0.0
                index.append(i)
                slots.append(slot)
                reset.append(True)
                continue
            prev = last_ts[slot]
            if t <= prev:
                reason = "duplicate" if t == prev else "out_of_order"
                dropped[reason] += 1
                self._drop_sample[reason] = (name, t, prev)
                continue
            dt = t - prev
            est = interval[slot]
            if fixed > 0:
                gap = is_gap(dt, fixed)
            else:
                limit = factor * est
                gap = is_gap(dt, limit)  # est 0 (a series' first interval): no gap yet
                interval[slot] = dt if est == 0 else est + 0.1 * ((limit if gap else dt) - est)
            if gap:
                self.gap_resets += 1
            last_ts[slot] = t
            if q is not None:
                p = last_seq[slot]
                if p is not None and q != p + 1:
                    self.seq_gaps += 1
                    if q > p + 1:
                        self.seq_missing += q - p - 1
                last_seq[slot] = q
            index.append(i)
            slots.append(slot)
            reset.append(gap)
        slot_arr = np.asarray(slots, np.int64)
        if slots:
            if self._touched.shape[0] < len(self.names):
                grown = np.zeros(max(len(self.names), 2 * self._touched.shape[0]))
                grown[: self._touched.shape[0]] = self._touched
                self._touched = grown
            self._touched[slot_arr] = now
            newest = float(np.max(np.asarray(ts)[index]))
            if newest > self.newest_ts:
                self.newest_ts = newest
        return Admitted(np.asarray(index, np.int64), slot_arr, np.asarray(reset, bool))

    @property
    def samples(self) -> dict[str, str]:
        """The latest drop of each reason, as text (for the log)."""
        out = {}
        for reason, (name, t, prev) in list(self._drop_sample.items()):
            if reason == "series_limit":
                out[reason] = f"series={name!r}: {self.max_series} series tracked (--max-series)"
            else:
                out[reason] = f"series={name!r} ts={t!r}, newest accepted ts={prev!r}"
        return out

    def evict_idle(self, now: float, ttl: float) -> list[tuple[int, str]]:
        """Free the slots of series with no reading for ``ttl`` seconds; returns them."""
        if ttl <= 0 or not self.slot_of:
            return []
        live = np.fromiter(self.slot_of.values(), np.int64, len(self.slot_of))
        idle = live[self._touched[live] < now - ttl]
        out: list[tuple[int, str]] = []
        for slot in idle.tolist():
            name = self.names[slot]
            assert name is not None
            del self.slot_of[name]
            self.names[slot] = None
            self._last_ts[slot], self._last_seq[slot], self._interval[slot] = -math.inf, None, 0.0
            self._free.append(slot)
            out.append((slot, name))
        return out
