"""Post-rules over one series' windows arriving in chunks: the ``in_event`` column and the
event table of :func:`anomae.events.event_bounds`, in bounded memory.

An :class:`~anomae.events.EventTracker` takes the windows (quiet stretches skipped in
bulk; the tracker sees the same above-1 and above-``off`` decisions, made on the float32
scores, as the batch rule); windows whose membership in an event can still change
(:meth:`~anomae.events.EventTracker.settled`: a run above 1 too short to open an event
yet, or the windows after a closed event that a merge may still join, at most about
``max_gap + min_windows``) are held back until it cannot. Events are then the runs of
windows in an event (two events are never adjacent), aggregated as they pass: start, end
and peak (the first window at the highest score), and the features ranked by their
ratios summed in float32 in window order, as the whole-series table sums them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from anomae.events import EventTracker, PostRule, runs
from anomae.verdict import is_anomalous


@dataclass
class Windows:
    """Consecutive windows of one series: end timestamps (int64 ns), raw and normalised
    scores, coverage, per-feature ratios ``[n, F]``, window labels (or None)."""

    ts: np.ndarray
    score: np.ndarray
    norm: np.ndarray
    coverage: np.ndarray
    ratio: np.ndarray
    label: np.ndarray | None

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def cut(self, lo: int, hi: int) -> Windows:
        return Windows(**{f.name: _part(getattr(self, f.name), lo, hi)  # type: ignore[arg-type]
                          for f in fields(self)})  # fmt: skip

    @staticmethod
    def join(a: Windows, b: Windows) -> Windows:
        return Windows(**{f.name: _cat(getattr(a, f.name), getattr(b, f.name))  # type: ignore[arg-type]
                          for f in fields(a)})  # fmt: skip


def _part(x: np.ndarray | None, lo: int, hi: int) -> np.ndarray | None:
    return None if x is None else x[lo:hi]


def _cat(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
    return None if x is None or y is None else np.concatenate([x, y])


_NONE = np.zeros(0, np.int64)  # no runs in a quiet chunk


class _Run:
    """The event whose windows have passed so far."""

    __slots__ = ("start", "end", "peak", "peak_ts", "contrib", "n")

    def __init__(self, w: Windows, lo: int, hi: int) -> None:
        vals = w.norm[lo:hi]
        self.start, self.end, self.n = int(w.ts[lo]), int(w.ts[hi - 1]), hi - lo
        self.peak = np.fmax.reduce(vals)
        self.peak_ts = int(w.ts[lo + int(np.argmax(vals == self.peak))])
        self.contrib = np.add.reduce(w.ratio[lo:hi], axis=0)

    def add(self, w: Windows, lo: int, hi: int) -> None:
        vals = w.norm[lo:hi]
        self.end, self.n = int(w.ts[hi - 1]), self.n + hi - lo
        peak = np.fmax.reduce(vals)
        if peak > self.peak:  # the first window at the peak, as the batch table's
            self.peak, self.peak_ts = peak, int(w.ts[lo + int(np.argmax(vals == peak))])
        self.contrib = np.add.reduce(np.concatenate([self.contrib[None], w.ratio[lo:hi]]), axis=0)


class EventStream:
    """``push`` a chunk of windows (normalised scores set), get back the windows now
    settled with their ``in_event`` mask, and the events that ended; ``finish`` at the end
    of the series."""

    def __init__(self, name: str, rule: PostRule, features: Sequence[str], top_k: int) -> None:
        self.name = name
        self.rule = rule
        self.features = np.asarray(features, dtype=object)
        self.top_k = top_k
        self.tracker = EventTracker(rule)
        self._held: Windows | None = None
        self._first = 0  # index of the first held window in the series
        self._run: _Run | None = None

    def push(self, w: Windows) -> tuple[Windows | None, np.ndarray, list[dict[str, Any]]]:
        tr = self.tracker
        on = is_anomalous(w.norm)
        n = len(w)
        kept: list[tuple[int, int]] = []
        busy = np.flatnonzero(on)
        code: np.ndarray | None = None  # made only if a window needs a step
        i = 0
        while i < n:
            if tr.idle:
                k = int(np.searchsorted(busy, i))
                j = int(busy[k]) if k < busy.size else n
                if j > i:
                    tr.skip(j - i)
                    i = j
                    continue
            if code is None:
                code = self._codes(w, on)
            kept.extend((s.first, s.last) for s in tr.step(float(code[i])))
            i += 1
        both = w if self._held is None else Windows.join(self._held, w)
        u, sure = tr.settled()
        return self._emit(both, u - self._first, kept + ([sure] if sure else []))

    def _codes(self, w: Windows, on: np.ndarray) -> np.ndarray:
        """What the tracker steps on: 2 above 1, between off and 1 the midpoint, else 0 (the
        tracker compares float64 values; these are the decisions made on float32)."""
        r = self.rule
        held = on if r.off >= 1.0 else np.greater(w.norm, r.off, where=~np.isnan(w.norm),
                                                  out=np.zeros(len(w), bool))  # fmt: skip
        return np.where(on, 2.0, np.where(held, (1.0 + r.off) / 2, 0.0))

    def finish(self) -> tuple[Windows | None, np.ndarray, list[dict[str, Any]]]:
        tr = self.tracker
        kept = [(s.first, s.last) for s in tr.flush()]
        events: list[dict[str, Any]] = []
        if self._held is None:
            out, mask = None, np.zeros(0, bool)
        else:
            out, mask, events = self._emit(self._held, len(self._held), kept)
        if self._run is not None:
            events.append(self._record(self._run))
            self._run = None
        return out, mask, events

    def _emit(
        self, both: Windows, settled: int, spans: list[tuple[int, int]]
    ) -> tuple[Windows | None, np.ndarray, list[dict[str, Any]]]:
        settled = max(0, min(settled, len(both)))
        mask = np.zeros(settled, bool)
        for a, b in spans:
            lo, hi = max(a - self._first, 0), min(b - self._first + 1, settled)
            if lo < hi:
                mask[lo:hi] = True
        self._held = both.cut(settled, len(both)) if settled < len(both) else None
        self._first += settled
        if settled == 0:
            return None, mask, []
        out = both.cut(0, settled) if self._held is not None else both
        return out, mask, self._events(out, mask)

    def _events(self, w: Windows, mask: np.ndarray) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        starts, ends = runs(mask) if mask.any() else (_NONE, _NONE)
        if self._run is not None and (starts.size == 0 or starts[0] > 0):
            events.append(self._record(self._run))
            self._run = None
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            if self._run is not None:  # a == 0: the event goes on
                self._run.add(w, a, b + 1)
            else:
                self._run = _Run(w, a, b + 1)
            if b + 1 < len(w):
                events.append(self._record(self._run))
                self._run = None
        return events

    def _record(self, run: _Run) -> dict[str, Any]:
        order = np.argsort(-run.contrib, kind="stable")[: self.top_k]
        return {
            "series": self.name,
            "start": run.start,
            "end": run.end,
            "peak": run.peak_ts,
            "peak_score_normalised": float(run.peak),
            "duration_s": (run.end - run.start) / 1e9,
            "n_windows": run.n,
            "top_features": ";".join(self.features[order]),
        }
