"""Post-rules per series in the stream: normalised scores → 0/1 alarm state and event records.

Each series has an :class:`anomae.events.EventTracker` (the same post-rules as
``anomae score``: ``min_windows``, hysteresis ``off``, ``max_gap`` merging, ``cooldown``).
:class:`SeriesAlarms` feeds it one window at a time and, next to it, keeps O(1) aggregates
of the event in progress (start, end, peak, summed per-feature error) so a finalised event
comes out as a record like a row of ``anomae score --events``: start, end and peak
timestamps, peak normalised score, duration, number of windows and top features, without
keeping the event's windows in memory however long it lasts.

    >>> import numpy as np
    >>> from anomae.events import PostRule
    >>> al = SeriesAlarms(PostRule(min_windows=2), features=("a", "b"), top_k=1)
    >>> fe = np.array([0.1, 0.3])
    >>> norm = np.array([0.5, 1.2, 1.5, 0.9])
    >>> active, events = al.step_many(np.zeros(4, int), ["m1"] * 4, np.arange(4.0), norm,
    ...                               np.tile(fe, (4, 1)))
    >>> active.tolist(), events, al.opened
    ([False, False, True, False], [], 1)
    >>> al.finish(0, "m1")[0]["start"]
    1.0
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from anomae.events import EventTracker, PostRule, Span
from anomae.verdict import ANOMALOUS_ABOVE, is_anomalous


class _Agg:
    """Aggregate of consecutive windows ``first..last`` of one series."""

    __slots__ = ("first", "last", "first_ts", "last_ts", "peak", "peak_ts", "fe", "n")

    def __init__(self, t: int, ts: float, v: float, fe: np.ndarray) -> None:
        self.first = self.last = t
        self.first_ts = self.last_ts = ts
        self.peak, self.peak_ts = (v, ts) if v == v else (-np.inf, ts)
        self.fe = fe.astype(np.float64)
        self.n = 1

    def add(self, t: int, ts: float, v: float, fe: np.ndarray) -> None:
        self.last, self.last_ts = t, ts
        if v > self.peak:  # first occurrence wins, as in the batch event table
            self.peak, self.peak_ts = v, ts
        self.fe += fe
        self.n += 1

    def extend(self, other: _Agg) -> None:
        self.last, self.last_ts = other.last, other.last_ts
        if other.peak > self.peak:
            self.peak, self.peak_ts = other.peak, other.peak_ts
        self.fe += other.fe
        self.n += other.n


class _Series:
    __slots__ = ("tracker", "run", "cur", "closed")

    def __init__(self, rule: PostRule) -> None:
        self.tracker = EventTracker(rule)
        self.run: deque[tuple[int, float, float, np.ndarray]] = deque(maxlen=rule.min_windows)
        self.cur: _Agg | None = None  # the active event
        self.closed: list[list[_Agg | None]] = []  # [event, windows after it], may merge


class SeriesAlarms:
    """Post-rule state of every series slot; ``opened`` counts events opened (not merges,
    nor events suppressed by the cool-down)."""

    def __init__(self, rule: PostRule, features: Sequence[str], top_k: int = 3) -> None:
        self.rule = rule
        self.features = tuple(features)
        self.top_k = top_k
        self.opened = 0
        self.last_active = False  # the post-rule state after the last step
        self._series: dict[int, _Series] = {}
        # per slot: whether a window <= 1 could change its state (else it only counts), and
        # the quiet windows counted in bulk but not yet added to its tracker's window index
        self._busy = np.zeros(64, bool)
        self._lag = np.zeros(64, np.int64)

    def _ensure(self, n: int) -> None:
        cap = self._busy.shape[0]
        if n > cap:
            new = max(n, 2 * cap)
            self._busy = np.concatenate([self._busy, np.zeros(new - cap, bool)])
            self._lag = np.concatenate([self._lag, np.zeros(new - cap, np.int64)])

    def _state(self, slot: int) -> _Series:
        st = self._series.get(slot)
        if st is None:
            st = self._series[slot] = _Series(self.rule)
        self._ensure(slot + 1)
        lag = int(self._lag[slot])
        if lag:
            st.tracker.skip(lag)  # the quiet windows counted in bulk
            self._lag[slot] = 0
        return st

    def active(self, slot: int) -> bool:
        st = self._series.get(slot)
        return st is not None and st.tracker.active

    def step(self, slot: int, name: str, ts: float, v: float, fe: np.ndarray) -> list[dict]:
        """Next window of ``slot``: normalised score ``v``, per-feature errors ``fe``."""
        st = self._state(slot)
        tr = st.tracker
        if not v > ANOMALOUS_ABOVE and not st.closed and not st.run and tr.idle:
            tr.skip(1)  # all step() would do here
            self.last_active = False
            return []
        events = self._step(st, name, ts, v, fe)
        self._busy[slot] = bool(st.closed or st.run or not tr.idle)
        return events

    def _step(self, st: _Series, name: str, ts: float, v: float, fe: np.ndarray) -> list[dict]:
        tr = st.tracker
        was = tr.active
        done = tr.step(v)
        now = self.last_active = tr.active
        if not (was or now or st.closed or st.run or v > ANOMALOUS_ABOVE):
            return []  # quiet: nothing to remember
        t = tr.t
        if v > ANOMALOUS_ABOVE:
            st.run.append((t, ts, v, fe))
        else:
            st.run.clear()
        if was and now:
            assert st.cur is not None
            st.cur.add(t, ts, v, fe)
        elif was:  # closed at t - 1; window t is the first after it
            st.closed.append([st.cur, _Agg(t, ts, v, fe)])
            st.cur = None
        elif now:
            start = t - self.rule.min_windows + 1
            last = st.closed[-1] if st.closed else None
            if last is not None and start - last[0].last - 1 <= self.rule.max_gap:  # type: ignore[union-attr]
                st.closed.pop()
                cur, gap = last
                assert cur is not None and gap is not None
                cur.extend(gap)
                cur.add(t, ts, v, fe)
                st.cur = cur
            else:
                self.opened += 1
                first = st.run[0]
                st.cur = _Agg(*first)
                for rec in list(st.run)[1:]:
                    st.cur.add(*rec)
        elif st.closed:
            gap = st.closed[-1][1]
            if gap is None:
                st.closed[-1][1] = _Agg(t, ts, v, fe)
            else:
                gap.add(t, ts, v, fe)
        return self._report(st, name, done)

    def step_many(
        self,
        slots: np.ndarray,
        names: Sequence[str],
        ts: np.ndarray,
        norm: np.ndarray,
        fe: np.ndarray,
    ) -> tuple[np.ndarray, list[dict]]:
        """:meth:`step` over a batch of windows in order: (post-rule state after each
        window, events finalised).

        Most windows are quiet (score <= 1, series idle): they only advance their series'
        window count, so they are counted with one ``bincount`` and only the others go
        through the trackers one by one. A window after a non-quiet one of the same series
        in the batch is never counted in bulk: the order within each series is kept."""
        n = slots.shape[0]
        active = np.zeros(n, bool)
        if n == 0:
            return active, []
        self._ensure(int(slots.max()) + 1)
        need = is_anomalous(norm) | self._busy[slots]
        if need.any():
            order = np.argsort(slots, kind="stable")
            s_sorted, n_sorted = slots[order], need[order].astype(np.int64)
            first = np.flatnonzero(np.append(True, s_sorted[1:] != s_sorted[:-1]))
            csum = np.cumsum(n_sorted)
            before = np.repeat(csum[first] - n_sorted[first], np.diff(np.append(first, n)))
            need[order] = csum - before > 0  # a non-quiet window so far in its series
        quiet = slots[~need]
        if quiet.size:
            self._lag += np.bincount(quiet, minlength=self._lag.shape[0])
        events: list[dict] = []
        for i in np.flatnonzero(need).tolist():
            ev = self.step(int(slots[i]), names[i], float(ts[i]), float(norm[i]), fe[i])
            if ev:
                events.extend(ev)
            active[i] = self.last_active
        return active, events

    def _report(self, st: _Series, name: str, spans: list[Span]) -> list[dict]:
        out = []
        for span in spans:
            for i, (ev, _) in enumerate(st.closed):
                assert ev is not None
                if ev.first == span.first and ev.last == span.last:
                    del st.closed[i]
                    out.append(self._record(name, ev))
                    break
        return out

    def _record(self, name: str, ev: _Agg) -> dict[str, Any]:
        order = np.argsort(-ev.fe, kind="stable")[: self.top_k]
        return {
            "type": "event",
            "series": name,
            "start": ev.first_ts,
            "end": ev.last_ts,
            "peak": ev.peak_ts,
            "peak_score_normalised": float(ev.peak),
            "duration_s": ev.last_ts - ev.first_ts,
            "n_windows": ev.last - ev.first + 1,
            "top_features": [self.features[j] for j in order],
        }

    def finish(self, slot: int, name: str) -> list[dict]:
        """End of this series' stream (shutdown, end of input, eviction): close and report
        what is open or pending, and forget the slot."""
        if slot not in self._series:
            if slot < self._lag.shape[0]:
                self._lag[slot] = 0
            return []
        st = self._state(slot)
        del self._series[slot]
        self._busy[slot] = False
        if st.cur is not None:
            st.closed.append([st.cur, None])
            st.cur = None
        return self._report(st, name, st.tracker.flush())

    def slots(self) -> list[int]:
        return list(self._series)
