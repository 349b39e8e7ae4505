"""Batch scoring in bounded memory: rows of many series in, pieces of the scores table and
finished events out, the same numbers as scoring each whole series at once.

:class:`StreamScorer` takes a series' rows in consecutive pieces (``push``: any size, down
to one row, pieces of different series interleaved) and keeps per series only what the
next rows need:

* the rows of the current gap segment (:func:`anomae.windows.gap_segments`) not yet
  scored: windows are scored ``chunk_windows`` at a time, counted from the segment's first
  window, so every onnxruntime call gets exactly the rows the whole-series
  :meth:`~anomae.detector.Detector.score_series` gives it: scores are bitwise equal for
  any piece size; the rest of a segment is scored when a gap or the series' end closes it;
* the anomaly likelihood's state (:class:`anomae.likelihood.LikelihoodChunks`);
* the post-rules' state and the few windows whose event membership is not yet settled
  (:class:`anomae.stream_events.EventStream`).

``finish(name)`` ends a series (its last rows are known: :mod:`anomae.dataset` says after
which file). Rows of the scores table come out in the order they settle: per series in
time order, series interleaved as their rows arrive; sort by (series, timestamp) for the
whole-series order.

With a seasonal likelihood (``season_s``) the seconds between windows are the model
card's sampling interval times the stride, as ``anomae monitor`` takes them, not each
series' own median interval (which needs the whole series).

``overlap`` (a number of worker threads): onnxruntime's calls run in the workers, queued
up to :data:`IN_FLIGHT_WINDOWS` windows ahead, while the main thread goes on with the next
rows and finishes the calls that are done, oldest first (NaN check, ratios, likelihood,
post-rules: the host work that left onnxruntime idle). Several workers run calls side by
side: with a one-thread session each, a call slowed by the host's threads holds up no
other (onnxruntime's own pool waits for its slowest thread). A series' end (``finish``)
is queued after its last call too. The calls, their rows and the order of every output
stay as they were, so the numbers are the same. ``push`` and ``finish`` then return the
pieces of calls made earlier (of any series), :meth:`drain` those of every call made.

Memory: per series the rows of up to ``chunk_windows`` windows (``chunk_windows * stride +
length`` rows; on CPU 256-4,096 windows, 1,024 of the reference 64x8 windows: ~45 KB with
their timestamps) and the likelihood's ``long`` averages (69 KB by default).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from anomae.detector import Detector, DetectorError
from anomae.likelihood import LikelihoodChunks
from anomae.stream_events import EventStream, Windows
from anomae.verdict import feature_ratios, is_anomalous, resolve_thresholds, top_features
from anomae.windows import is_gap, window_ends

# windows of queued calls (``overlap``) before the main thread waits for the oldest: ~20 MB
# at 8 features, ~0.4 s of work on 2 cores, enough to span the bursts of calls (every
# series fills its chunk in the same batch); 4x as many measured no faster
IN_FLIGHT_WINDOWS = 1 << 18


class _Rows:
    """A series' rows not yet scored, in one buffer that grows (doubling) up to ``cap``
    rows and is then reused: rows pushed are copied in, a full chunk is scored from it in
    place, and the rows the next chunk needs move to its front. Compared with holding the
    pushed pieces and joining them, nothing is allocated per push and a series never holds
    more than ``cap`` rows (joining left the old pieces and the joined copy alive at once,
    and freed many small blocks at every chunk: the heap grew in steps)."""

    __slots__ = ("ts", "vals", "lab", "n", "cap")

    def __init__(self, cap: int, n_f: int, labels: bool, first: int) -> None:
        size = min(cap, max(first, 64))
        self.ts = np.empty(size, np.int64)
        self.vals = np.empty((size, n_f), np.float32)
        self.lab = np.empty(size, np.int8) if labels else None
        self.n, self.cap = 0, cap

    def _grow(self, need: int) -> None:
        size = min(self.cap, max(need, 2 * self.ts.shape[0]))
        ts, vals = np.empty(size, np.int64), np.empty((size, self.vals.shape[1]), np.float32)
        ts[: self.n], vals[: self.n] = self.ts[: self.n], self.vals[: self.n]
        self.ts, self.vals = ts, vals
        if self.lab is not None:
            lab = np.empty(size, np.int8)
            lab[: self.n] = self.lab[: self.n]
            self.lab = lab

    def add(self, ts: np.ndarray, vals: np.ndarray, lab: np.ndarray | None) -> int:
        """Copy in as many of these rows as fit (up to ``cap``); return how many."""
        k = min(ts.shape[0], self.cap - self.n)
        if self.n + k > self.ts.shape[0]:
            self._grow(self.n + k)
        a, b = self.n, self.n + k
        self.ts[a:b], self.vals[a:b] = ts[:k], vals[:k]
        if self.lab is not None and lab is not None:
            self.lab[a:b] = lab[:k]
        self.n = b
        return k

    def view(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.ts[:n], self.vals[:n], None if self.lab is None else self.lab[:n]

    def drop(self, k: int) -> None:
        """Forget the first ``k`` rows (the rest move to the front)."""
        left = self.n - k
        if left > 0:
            self.ts[:left], self.vals[:left] = self.ts[k : self.n], self.vals[k : self.n]
            if self.lab is not None:
                self.lab[:left] = self.lab[k : self.n]
        self.n = max(left, 0)


@dataclass
class _Series:
    name: str
    events: EventStream
    threshold: float | None
    lik: LikelihoodChunks | None
    rows: _Rows | None = None  # the segment's rows not yet scored
    last_ts: int | None = None
    n_windows: int = 0  # windows scored so far (for messages)


@dataclass(frozen=True)
class ScorePiece:
    """Settled windows of one series, not yet a table (:meth:`StreamScorer.table` makes
    one of many pieces: batch scoring does it in its Parquet writer's threads)."""

    name: str
    windows: Windows
    in_event: np.ndarray
    anomalous: np.ndarray

    def __len__(self) -> int:
        return len(self.windows)


@dataclass
class StreamTotals:
    n_series: int = 0
    n_rows: int = 0
    n_windows: int = 0
    n_anomalous: int = 0

    def add(self, other: StreamTotals) -> None:
        """Count ``other``'s series, rows and windows too (another scorer's)."""
        self.n_series += other.n_series
        self.n_rows += other.n_rows
        self.n_windows += other.n_windows
        self.n_anomalous += other.n_anomalous


class StreamScorer:
    """Scores series pushed in pieces; see the module docstring. ``labels``: the rows carry
    labels and the table gets a ``label`` column. ``later``: ``push`` and ``finish`` return
    :class:`ScorePiece`\\ s, not tables; :meth:`table` makes them one (in another thread)."""

    def __init__(
        self,
        det: Detector,
        opts: Any,  # anomae.score.ScoreOptions
        labels: bool = False,
        later: bool = False,
        overlap: int = 0,
    ) -> None:
        card = det.card
        self.det, self.opts, self.labels, self.later = det, opts, labels, later
        # calls made and not yet finished (``overlap``), oldest first: (series, the call, its
        # windows' end timestamps and labels), or (series, None, ...): the series' end
        self._calls: deque[tuple[_Series, Future[Any] | None, np.ndarray, np.ndarray | None]]
        self._calls = deque()
        self._in_flight = 0  # windows of the calls in ``_calls``
        self._worker = ThreadPoolExecutor(overlap, "anomae-score") if overlap else None
        self.ths = resolve_thresholds(card.threshold, det.path, opts.threshold,
                                      opts.likelihood is not None)  # fmt: skip
        self.scale = self.ths.feature_scale(card.features)
        self.spec = card.window
        self.max_gap_s = card.max_gap_s if opts.max_gap_s is None else opts.max_gap_s
        self.chunk = opts.chunk_windows or det.chunk_windows
        sp = self.spec
        self.cap = max((self.chunk - 1) * sp.stride + sp.length, self.chunk * sp.stride)
        self.interval_s = card.interval_s * card.window.stride or None
        self.names = pl.Series(list(card.features), dtype=pl.Enum(list(card.features)))
        self.totals = StreamTotals()
        self.events: list[dict[str, Any]] = []
        self._series: dict[str, _Series] = {}

    def _state(self, name: str) -> _Series:
        st = self._series.get(name)
        if st is None:
            o = self.opts
            lik = None if o.likelihood is None else LikelihoodChunks(o.likelihood, self.interval_s)
            th = None if o.likelihood is not None else self.ths.for_series(name)
            st = self._series[name] = _Series(
                name, EventStream(name, o.rule, self.det.card.features, o.top_k), th, lik
            )
            self.totals.n_series += 1
        return st

    def push(
        self, name: str, ts: np.ndarray, values: np.ndarray, labels: np.ndarray | None = None
    ) -> list[Any]:
        """The next rows of series ``name`` (after every row pushed before): the pieces of
        the scores table that settled (:class:`ScorePiece`\\ s with ``later``)."""
        st = self._state(name)
        n = ts.shape[0]
        self.totals.n_rows += n
        if n == 0:
            return []
        if labels is None and self.labels:
            labels = np.full(n, -1, np.int8)
        gaps: list[int] = []
        if self.max_gap_s > 0:
            prev = int(ts[0]) if st.last_ts is None else st.last_ts
            # seconds grow with nanoseconds: no gap at the widest step, none at all (the
            # usual case, found without a float array per push)
            widest = max(int(ts[0]) - prev, int(np.diff(ts).max()) if n > 1 else 0)
            if is_gap(widest / 1e9, self.max_gap_s):
                dt_s = np.diff(np.concatenate([[prev], ts])).astype(np.float64) / 1e9
                gaps = np.flatnonzero(is_gap(dt_s, self.max_gap_s)).tolist()
        st.last_ts = int(ts[-1])
        out: list[Windows] = []
        bounds = sorted({0, *gaps, n})
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if gaps and lo in gaps:  # a new segment: its windows start afresh
                out += self._close(st)
            while lo < hi:
                if st.rows is None:
                    st.rows = _Rows(self.cap, values.shape[1], labels is not None, hi - lo)
                lab = None if labels is None else labels[lo:hi]
                lo += st.rows.add(ts[lo:hi], values[lo:hi], lab)
                out += self._full(st)
        return self._settle(st, out) + self._finished()  # with overlap: calls run on

    def finish(self, name: str) -> list[Any]:
        """End of series ``name``: score the rest, settle every window and event (with
        ``overlap``: once its last call is finished, here or in a later call)."""
        st = self._series.pop(name, None)
        if st is None:
            return []
        tables = self._settle(st, self._close(st))
        if self._worker is None:
            return tables + self._end(st)
        self._calls.append((st, None, np.empty(0, np.int64), None))
        return tables + self._finished()

    def _end(self, st: _Series) -> list[Any]:
        """Settle series ``st``'s last windows and events (every call of it finished)."""
        tables = []
        w, mask, events = st.events.finish()
        self.events += events
        if w is not None:
            tables.append(self._piece(st.name, w, mask))
        return tables

    def finish_all(self) -> list[Any]:
        return [t for name in list(self._series) for t in self.finish(name)]

    def drain(self) -> list[Any]:
        """With ``overlap``: wait for every call made and return its pieces."""
        return self._finished(wait=True)

    def close(self) -> None:
        """Stop the worker thread (``overlap``); calls not finished are dropped."""
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._calls.clear()
            self._in_flight = 0

    def _finished(self, wait: bool = False) -> list[Any]:
        """Finish the oldest calls (and series' ends) that are done, waiting for them while
        more than :data:`IN_FLIGHT_WINDOWS` windows are queued, or for all with ``wait``:
        their pieces."""
        tables = []
        while self._calls:
            st, call, ends_ts, label = self._calls[0]
            if not (wait or call is None or call.done() or self._in_flight > IN_FLIGHT_WINDOWS):
                break
            self._calls.popleft()
            if call is None:
                tables += self._end(st)
                continue
            self._in_flight -= ends_ts.size
            tables += self._settle(st, [self._windows(st, call.result(), ends_ts, label)])
        return tables

    def _full(self, st: _Series) -> list[Windows]:
        """Score every full chunk of windows the segment's rows hold."""
        sp, rows = self.spec, st.rows
        need = (self.chunk - 1) * sp.stride + sp.length
        drop = self.chunk * sp.stride  # the next chunk's first row
        out = []
        while rows is not None and rows.n >= max(need, drop):
            out += self._score(st, *rows.view(need))
            rows.drop(drop)
        return out

    def _close(self, st: _Series) -> list[Windows]:
        """The segment ended: score the windows its remaining rows hold."""
        out = []
        if st.rows is not None and st.rows.n >= self.spec.length:
            out += self._score(st, *st.rows.view(st.rows.n))
        if st.rows is not None:
            st.rows.n = 0
        return out

    def _score(
        self, st: _Series, ts: np.ndarray, vals: np.ndarray, lab: np.ndarray | None
    ) -> list[Windows]:
        """Score a chunk's rows: its windows, or none yet with ``overlap`` (the call is
        queued; the rows are views of the series' buffer, so they are copied)."""
        sp = self.spec
        ends = window_ends(vals.shape[0], sp)
        label = None
        if lab is not None:  # a window is labelled when any of its rows is
            csum = np.concatenate([[0], np.cumsum(lab > 0, dtype=np.int64)])
            label = (csum[ends + 1] - csum[ends + 1 - sp.length] > 0).astype(np.int8)
        if self._worker is None:
            return [self._windows(st, self.det.score_series(vals, self.chunk), ts[ends], label)]
        call = self._worker.submit(self.det.score_series, vals.copy(), self.chunk)
        self._calls.append((st, call, ts[ends], label))
        self._in_flight += ends.size
        return []

    def _windows(
        self, st: _Series, sc: Any, ends_ts: np.ndarray, label: np.ndarray | None
    ) -> Windows:
        """The windows of one call's scores ``sc`` (:class:`~anomae.detector.Scores`)
        that end at ``ends_ts``, labelled ``label``."""
        nan = np.isnan(sc.score)  # NaN is fine where nothing was observed
        if nan.any() and (bad := nan & (sc.coverage > 0)).any():
            raise DetectorError(
                f"{self.det.path}: {int(bad.sum()):,} windows of series {st.name!r} with "
                f"observed values scored NaN (first: window "
                f"{st.n_windows + int(np.argmax(bad))}); the model is damaged: re-export it "
                f"(`anomae train` or `anomae run`)"
            )
        st.n_windows += ends_ts.size
        if st.lik is not None:
            norm = st.lik.push(sc.score).astype(np.float32)
        else:
            assert st.threshold is not None
            norm = sc.normalised(st.threshold)
        return Windows(ends_ts, sc.score, norm, sc.coverage,
                       feature_ratios(sc.feature_error, self.scale), label)  # fmt: skip

    def _settle(self, st: _Series, scored: Sequence[Windows]) -> list[Any]:
        tables = []
        for w in scored:
            done, mask, events = st.events.push(w)
            self.events += events
            if done is not None:
                tables.append(self._piece(st.name, done, mask))
        return tables

    def empty_table(self) -> pl.DataFrame:
        """The scores table with its columns and no rows."""
        f = len(self.det.card.features)
        e = np.empty(0, np.float32)
        w = Windows(np.empty(0, np.int64), e, e, e, np.empty((0, f), np.float32),
                    np.empty(0, np.int8) if self.labels else None)  # fmt: skip
        return self.table([ScorePiece("", w, np.zeros(0, bool), np.zeros(0, bool))])

    def _piece(self, name: str, w: Windows, in_event: np.ndarray) -> Any:
        anomalous = is_anomalous(w.norm)
        self.totals.n_windows += len(w)
        self.totals.n_anomalous += int(np.count_nonzero(anomalous))
        piece = ScorePiece(name, w, in_event, anomalous)
        return piece if self.later else self.table([piece])

    def table(self, pieces: Sequence[ScorePiece]) -> pl.DataFrame:
        """The scores table of ``pieces`` (one or more, in order)."""
        one = pieces[0] if len(pieces) == 1 else None

        def cat(get: Any) -> np.ndarray:
            return get(one) if one is not None else np.concatenate([get(p) for p in pieces])

        ratio = cat(lambda p: p.windows.ratio)
        top = top_features(ratio, self.opts.top_k)
        # eager Series constructors only: a lazy ``select`` (pl.repeat, Series.gather) per
        # piece waited on polars' thread pool while onnxruntime's threads held the cores
        names = [pl.Series("series", [p.name], pl.Utf8).new_from_index(0, len(p))
                 for p in pieces]  # fmt: skip
        cols = [
            names[0] if one is not None else pl.concat(names),
            pl.Series("timestamp", cat(lambda p: p.windows.ts), pl.Datetime("ns", "UTC")),
            pl.Series("score", cat(lambda p: p.windows.score)),
            pl.Series("score_normalised", cat(lambda p: p.windows.norm)),
            pl.Series("is_anomaly", cat(lambda p: p.anomalous)),
            pl.Series("in_event", cat(lambda p: p.in_event)),
            pl.Series("coverage", cat(lambda p: p.windows.coverage)),
        ]
        for j in range(top.shape[1]):
            cols.append(self.names[top[:, j]].alias(f"top_feature_{j + 1}"))
        if self.labels:
            cols.append(pl.Series("label", cat(lambda p: p.windows.label)))
        return pl.DataFrame(cols)
