"""The monitor daemon: source → bounded queue → parse → per-series windows → micro-batches →
onnxruntime → post-rules → metrics (and sink).

Three threads share the work. The **source** thread reads and emits into the bounded
:class:`EventQueue`. The **ingest** thread (the caller of :meth:`Monitor.run`) parses,
admits and windows readings and collects completed windows into a micro-batch, handed on
when it holds ``batch_size`` windows or its oldest window has waited ``flush_ms``. The
**scorer** thread scores each batch in one onnxruntime call (which releases the GIL, so
parsing goes on meanwhile), runs the post-rules and updates metrics and sink. The hand-over
between them holds two batches at most: a slow scorer backs the queue up, a full queue
blocks a file source and makes a live source's readings count as dropped.

``stop`` (SIGTERM/SIGINT) ends intake; what is queued is scored (within ``drain_seconds``),
open events are closed and written, and :meth:`Monitor.run` returns 0. At the end of a
non-followed input the same happens without a signal.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from anomae.events import PostRule
from anomae.likelihood import Likelihood
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.health import ModelHealth
from anomae.monitor.intake import EventQueue
from anomae.monitor.likelihood import LikelihoodBank
from anomae.monitor.logs import log
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.models import ModelWatcher
from anomae.monitor.promotion import shadow_for
from anomae.monitor.readings import MAX_BYTES, ReadingParser
from anomae.monitor.refusals import RefusalLog
from anomae.monitor.ring import RingBank
from anomae.monitor.scorer import MonitorError, Scorer, WindowBatch
from anomae.monitor.series import SeriesTable
from anomae.monitor.sink import JsonlSink
from anomae.monitor.sources.base import Raw, RawBatch, Reading, Source

LOG = logging.getLogger("anomae.monitor")
_READING_BYTES = 256  # what a ready Reading is counted as in the queue's byte bound
INFO, WARN, ERROR = logging.INFO, logging.WARNING, logging.ERROR


@dataclass(frozen=True)
class MonitorOptions:
    rule: PostRule = PostRule(min_windows=3)
    top_k: int = 3
    threshold: float | None = None  # overrides the model card's
    likelihood: Likelihood | None = None  # alarm on the anomaly likelihood, not the threshold
    batch_size: int = 1024
    flush_ms: float = 20.0
    queue_size: int = 65536  # readings
    queue_bytes: int = 128 * 2**20  # payload bytes waiting in the queue
    max_series: int = 10_000
    # None: the model card's gap limit (as `anomae score`); 0: auto, 10x each series'
    # typical interval (also what a card without one gets)
    max_gap_seconds: float | None = None
    series_ttl_seconds: float = 0.0  # 0: never evict idle series
    max_line_bytes: int = MAX_BYTES
    max_future_seconds: float = 300.0  # readings dated later than now + this are refused; 0: off
    reload_check_seconds: float = 5.0  # 0: only on SIGHUP
    drain_seconds: float = 5.0
    stats_log_seconds: float = 60.0
    timestamp_unit: str | None = None  # of numeric "ts" (None: seconds)
    shard: tuple[int, int] = (0, 1)  # (i, n): only the series of shard i of n (a replica)
    health: bool = True  # model health metrics (input and score drift, alarm rate, age)
    shadow: str | None = None  # a candidate model scored beside, never alerted on
    shadow_promote_after_seconds: float = 0.0  # of readings' time; 0: promote on SIGUSR1 only
    rollback_within_seconds: float = 86400.0  # of readings' time after a promotion; 0: off


def _bank(spec: Likelihood | None, card: Any) -> LikelihoodBank | None:
    """The likelihood state; its season counts windows at the card's sampling interval."""
    if spec is None:
        return None
    try:
        return LikelihoodBank(spec, card.interval_s * card.window.stride or None)
    except ValueError as exc:
        raise MonitorError(str(exc)) from exc


class Monitor:
    """One daemon instance; :meth:`run` blocks until the input ends or ``stop`` is set."""

    def __init__(
        self,
        detector: Any,
        source: Source,
        registry: CollectorRegistry,
        options: MonitorOptions = MonitorOptions(),
        sink: JsonlSink | None = None,
        loader: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        observer: Callable[[np.ndarray], None] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        card = detector.card
        self.opts, self.source, self.sink, self.clock = options, source, sink, clock
        self.features = tuple(card.features)
        self.metrics = MonitorMetrics(registry, self.features, options.top_k)
        self.parser = ReadingParser(
            self.features,
            options.max_line_bytes,
            options.max_future_seconds if options.max_future_seconds > 0 else math.inf,
            wall_clock,
            options.timestamp_unit,
        )
        self.table = SeriesTable(
            options.max_series, self._gap_limit(card), shard=options.shard
        )
        self.ring = RingBank(card.window, len(self.features), options.max_series)
        self.alarms = SeriesAlarms(options.rule, self.features, options.top_k)
        self.scorer = Scorer(
            detector,
            self.metrics,
            self.alarms,
            options.threshold,
            options.top_k,
            sink,
            clock,
            observer,
            _bank(options.likelihood, card),
            ModelHealth(registry, card) if options.health else None,
        )
        self.queue = EventQueue(options.queue_size, options.queue_bytes)
        st = self.metrics.stats
        st.invalid, st.dropped = self.parser.invalid, self.table.dropped
        m = self.metrics
        m.series_limit, m.queue_capacity = options.max_series, options.queue_size
        m.source_up = lambda: bool(self.source.up)
        m.source_lag = self.source.lag
        m.queue_depth = lambda: self.queue.depth
        m.series_count = lambda: len(self.table)
        m.other_shard = lambda: self.table.other_shard
        self.watcher = ModelWatcher(detector.path, loader, card, self._reloaded) if loader else None
        self.promotion = shadow_for(self, detector, loader, registry) if options.shadow else None
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._intake_stop = threading.Event()
        self._source_done = threading.Event()
        self._source_failed = False
        self._reload_asked = False
        self._count_lock = threading.Lock()
        self._not_parsed = 0  # readings dropped before parsing (queue_full, shutdown)
        self._drop_samples: dict[str, str] = {}
        self.refusals = RefusalLog()

    def _gap_limit(self, card: Any) -> float:
        """--max-gap-seconds when given, else the card's gap rule (0 in old cards: auto)."""
        given = self.opts.max_gap_seconds
        return float(card.max_gap_s) if given is None else given

    def adopt(self, det: Any) -> None:
        """Use ``det`` (a promoted shadow) from the next batch on, the series' state kept."""
        self.scorer.offer(det)
        self.table.max_gap_seconds = self._gap_limit(det.card)
        try:
            self._jobs.put_nowait("swap")
        except queue.Full:
            pass  # busy: the next batch swaps it in

    def _reloaded(self, det: Any, outcome: str, detail: str) -> None:
        if det is not None:
            try:
                self.scorer.thresholds_of(det)
                self.scorer.warm_up(det, self.opts.batch_size)  # here, on the loader thread
                self.scorer.offer(det)
                self.table.max_gap_seconds = self._gap_limit(det.card)
            except MonitorError as exc:
                det, outcome, detail = None, "refused", str(exc)
        self.metrics.stats.reloads[outcome] += 1
        if det is None:
            level = WARN if outcome == "refused" else ERROR
            log(LOG, level, f"model reload {outcome}; keeping the old model", detail=detail)
        else:
            log(LOG, INFO, "model reloaded", model_sha256=det.sha256, path=det.path)
            try:
                self._jobs.put_nowait("swap")  # now, not at the next batch (it may be long)
            except queue.Full:
                pass  # busy: the next batch swaps it in

    def request_promotion(self, rollback: bool = False) -> None:
        """Promote the shadow (the SIGUSR1 handler) or, ``rollback``, roll the last promotion
        back (SIGUSR2), at the next housekeeping tick."""
        if self.promotion is None:
            what = "rollback" if rollback else "promotion"
            log(LOG, WARN, f"{what} asked for, but no --shadow model is running")
        else:
            (self.promotion.rollback if rollback else self.promotion).request()

    def request_reload(self) -> None:
        """Ask for a reload at the next housekeeping tick (the SIGHUP handler calls this)."""
        self._reload_asked = True

    def ready(self) -> bool:
        return self.scorer.detector is not None and bool(self.source.up)

    # -- intake --------------------------------------------------------------------------
    def emit(self, item: Raw | RawBatch | Reading, block: bool) -> bool:
        """The sources' ``emit``: False (and counted) when refused."""
        if isinstance(item, RawBatch):
            n, nbytes = len(item.payloads), sum(map(len, item.payloads))
        else:
            n, nbytes = 1, len(item.payload) if isinstance(item, Raw) else _READING_BYTES
        q = self.queue
        if not self._intake_stop.is_set() and q.put(item, n, block, self._intake_stop, nbytes):
            return True
        if self._intake_stop.is_set():
            self._drop_unparsed("shutdown", n, "stopping: intake closed")
        else:
            o = self.opts
            self._drop_unparsed(
                "queue_full",
                n,
                f"the intake queue holds {o.queue_size} readings (--queue-size) and "
                f"{o.queue_bytes} bytes (--queue-bytes); {q.depth} readings, {q.bytes} bytes wait",
            )
        return False

    def _drop_unparsed(self, reason: str, n: int, sample: str) -> None:
        """Count readings dropped before the parser saw them: in dropped and in received."""
        with self._count_lock:
            self.table.dropped[reason] += n
            self._not_parsed += n
            self.metrics.stats.received = self.parser.received + self._not_parsed
            self._drop_samples[reason] = f"{n} readings: {sample}"

    def _source_main(self) -> None:
        try:
            self.source.run(self.emit, self._intake_stop)
        except Exception as exc:
            self._source_failed = True
            log(LOG, ERROR, "source failed", source=self.source.kind, error=repr(exc))
        finally:
            self._source_done.set()

    def _ingest(self, items: list[Any]) -> WindowBatch | None:
        parsed = self.parser.parse(items)
        st, table = self.metrics.stats, self.table
        adm = table.admit(parsed.series, parsed.ts, parsed.seq, self.clock())
        with self._count_lock:
            st.received = self.parser.received + self._not_parsed
        st.accepted += adm.index.size
        st.window_resets, st.seq_gaps, st.seq_missing = (
            table.gap_resets,
            table.seq_gaps,
            table.seq_missing,
        )
        if adm.index.size == 0:
            return None
        st.last_event_ts = table.newest_ts
        origin, windows = self.ring.push(adm.slots, parsed.values[adm.index], adm.reset)
        if origin.size == 0:
            return None
        idx = adm.index[origin]
        series = parsed.series
        return WindowBatch(
            adm.slots[origin],
            [series[i] for i in idx.tolist()],
            np.asarray(parsed.ts)[idx],
            np.asarray(parsed.received)[idx],
            windows,
        )

    # -- scoring -------------------------------------------------------------------------
    def _scorer_main(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                if isinstance(job, WindowBatch):
                    self.scorer.score(job)
                elif job == "swap":
                    self.scorer.swap()
                elif job == "all":
                    self.scorer.finish(None, forget=False)
                else:
                    self.scorer.finish(job, forget=True)
            except Exception as exc:
                n = job.slots.size if isinstance(job, WindowBatch) else 0
                self.table.dropped["scoring_error"] += n
                log(LOG, ERROR, "batch failed (scoring or sink)", error=repr(exc), windows=n)

    # -- main loop -----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> int:
        o = self.opts
        self.scorer.warm_up(self.scorer.detector, o.batch_size)
        src = threading.Thread(target=self._source_main, name="anomae-source", daemon=True)
        scorer = threading.Thread(target=self._scorer_main, name="anomae-scorer", daemon=True)
        scorer.start()
        src.start()
        pending: list[WindowBatch] = []
        n_pending = 0
        deadline = drain_end = None
        flush_s = o.flush_ms / 1000.0
        next_tick = self.clock() + 1.0
        self._last_reload_check = self._last_stats = self.clock()
        while True:
            now = self.clock()
            if stop.is_set() and drain_end is None:
                self._intake_stop.set()
                drain_end = now + o.drain_seconds
                log(LOG, INFO, "stopping: draining the queue", queued=self.queue.depth)
            wait = 0.0 if n_pending >= o.batch_size else 0.1
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - now))
            items = self.queue.get_many(o.batch_size, wait)
            if items:
                job = self._ingest(items)
                if job is not None:
                    pending.append(job)
                    n_pending += job.slots.size
                    if deadline is None:
                        deadline = self.clock() + flush_s
            ended = (self._source_done.is_set() or drain_end is not None) and not self.queue.depth
            now = self.clock()
            if pending and (
                n_pending >= o.batch_size or ended or (deadline is not None and now >= deadline)
            ):
                self._jobs.put(WindowBatch.merge(pending))
                pending, n_pending, deadline = [], 0, None
            if ended and not pending:
                break
            if drain_end is not None and now > drain_end:
                left = self.queue.depth
                self._drop_unparsed("shutdown", left, "drain time over (--drain-seconds)")
                log(LOG, WARN, "drain time over; dropping what is queued", dropped=left)
                self.queue.get_many(left + 1, 0)
            if now >= next_tick:
                next_tick = now + 1.0
                self._housekeeping(now)
        self._jobs.put("all")
        self._jobs.put(None)
        scorer.join()
        if self.sink is not None:
            self.sink.close()
        self.source.close()
        self._report_refusals(self.clock(), final=True)
        log(LOG, INFO, "stopped", **self._totals(), anomalies=self.metrics.stats.anomalies)
        return 1 if self._source_failed else 0

    def _totals(self) -> dict[str, int]:
        """The running totals both the periodic and the final log line report."""
        st = self.metrics.stats
        return {
            "received": st.received,
            "scored": st.windows_scored,
            "invalid": sum(st.invalid.values()),
            "dropped": sum(st.dropped.values()),
        }

    def _report_refusals(self, now: float, final: bool = False) -> None:
        st = self.metrics.stats
        self.refusals.report("invalid", st.invalid, self.parser.samples, now, final)
        samples = {**self.table.samples, **self._drop_samples}
        self.refusals.report("dropped", st.dropped, samples, now, final)

    def _housekeeping(self, now: float) -> None:
        o = self.opts
        self._report_refusals(now)
        if self.promotion is not None:
            self.promotion.tick()
        if self.watcher is not None:
            due = o.reload_check_seconds and now - self._last_reload_check >= o.reload_check_seconds
            if self._reload_asked or due:
                self._last_reload_check = now
                if self.watcher.check(force=self._reload_asked):
                    self._reload_asked = False
        if o.series_ttl_seconds > 0:
            gone = self.table.evict_idle(now, o.series_ttl_seconds)
            if gone:
                for slot, _ in gone:
                    self.ring.clear(slot)
                self._jobs.put([slot for slot, _ in gone])
                log(LOG, INFO, "idle series evicted", count=len(gone))
        if o.stats_log_seconds and now - self._last_stats >= o.stats_log_seconds:
            self._last_stats = now
            log(
                LOG,
                INFO,
                "stats",
                **self._totals(),
                series=len(self.table),
                queued=self.queue.depth,
            )
