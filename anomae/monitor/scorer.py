"""Scoring of window micro-batches: the model in use, post-rules, metrics and sink.

:class:`Scorer` runs on the daemon's scorer thread. Each :class:`WindowBatch` (windows of
many series, in arrival order) goes through the detector in one onnxruntime call; the
normalised scores (``score / threshold``, with the series' own threshold where the card
has one per series, :meth:`~anomae.spec.Threshold.for_series` as in batch scoring; or with
a :class:`LikelihoodBank` the anomaly likelihood of each series' scores; > 1 anomalous)
feed the post-rules, the per-series metrics and the sink. A reloaded model is
:meth:`Scorer.offer`-ed from another thread and swapped in between two batches, so no batch
is scored half with one model and half with the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomae.errors import AnomaeError
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.health import ModelHealth
from anomae.monitor.likelihood import LikelihoodBank
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.sink import JsonlSink, event_line, window_lines
from anomae.verdict import (
    Thresholds,
    feature_ratios,
    is_anomalous,
    resolve_thresholds,
    top_features,
)


class MonitorError(AnomaeError, ValueError):
    """The monitor cannot run as configured; the message says why."""


@dataclass
class WindowBatch:
    """Completed windows ``[n, length, F]`` with the series slot, series name, timestamp
    (of the last reading) and receipt time (monotonic) of each."""

    slots: np.ndarray
    names: list[str]
    ts: np.ndarray
    received: np.ndarray
    windows: np.ndarray

    @classmethod
    def merge(cls, batches: list[WindowBatch]) -> WindowBatch:
        if len(batches) == 1:
            return batches[0]
        return cls(
            np.concatenate([b.slots for b in batches]),
            [n for b in batches for n in b.names],
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.received for b in batches]),
            np.concatenate([b.windows for b in batches]),
        )


class Scorer:
    """Scores batches with ``detector`` (``threshold`` overrides its card's)."""

    def __init__(
        self,
        detector: Any,
        metrics: MonitorMetrics,
        alarms: SeriesAlarms,
        threshold: float | None = None,
        top_k: int = 3,
        sink: JsonlSink | None = None,
        clock: Callable[[], float] = lambda: 0.0,
        observer: Callable[[np.ndarray], None] | None = None,
        likelihood: LikelihoodBank | None = None,
        health: ModelHealth | None = None,
    ) -> None:
        self.health = health  # model health statistics (None: not measured)
        self.likelihood = likelihood  # set: normalised scores are its, not score / threshold
        self.metrics, self.alarms, self.sink, self.clock, self.observer = (
            metrics,
            alarms,
            sink,
            clock,
            observer,
        )
        self.override, self.top_k = threshold, top_k
        self.features = tuple(detector.card.features)
        self.slot_names: dict[int, str] = {}  # series of each slot that was scored
        metrics.series_names = self.slot_names
        self._next: Any = None
        self.shadow: Any = None  # a monitor.shadow.Shadow scored beside, never alerted on
        self.watch: Any = None  # a monitor.rollback.Watch of a promoted model
        self._use(detector)

    def thresholds_of(self, det: Any) -> Thresholds:
        """The thresholds ``det`` is judged by (:func:`anomae.verdict.resolve_thresholds`:
        the same rule as batch scoring); :class:`MonitorError` if it has none."""
        from anomae.detector import DetectorError

        try:
            return resolve_thresholds(
                det.card.threshold, det.path, self.override, self.likelihood is not None
            )
        except DetectorError as exc:
            raise MonitorError(str(exc)) from exc

    def _use(self, det: Any) -> None:
        from anomae import __version__

        self._thresholds = ths = self.thresholds_of(det)
        self.detector, self.threshold = det, ths.value
        card = det.card
        self._slot_threshold = np.zeros(0, np.float32)  # per slot, filled as slots appear
        self._ratio_den = ths.feature_scale(self.features)
        if self.health is not None:
            self.health.set_model(card)
        self.metrics.set_model(
            {
                "version": __version__,
                "model_sha256": det.sha256,
                "window": str(card.window.length),
                "stride": str(card.window.stride),
                "features": str(len(self.features)),
                "threshold_method": card.threshold.method if card.threshold else "",
            },
            ths.value,
            card.threshold.expected_false_events_per_day if card.threshold else None,
        )

    def warm_up(self, det: Any, batch_size: int) -> None:
        """One call on a full batch of zeros: onnxruntime sizes its buffers on the first
        calls, which would otherwise delay the first real batches by tens of ms."""
        w = det.card.window
        det.run(np.zeros((batch_size, w.length, len(self.features)), np.float32))

    def offer(self, det: Any) -> None:
        """A compatible reloaded model, used from the next batch (or :meth:`swap`) on."""
        self.thresholds_of(det)
        self._next = det

    def swap(self) -> None:
        if self._next is not None:
            det, self._next = self._next, None
            self._use(det)
            if self.shadow is not None and det is self.shadow.detector:
                self.shadow = None  # promoted

    def score(self, batch: WindowBatch) -> None:
        self.swap()
        clock = self.clock
        t0 = clock()
        score, fe, cov = self.detector.run(batch.windows)
        t1 = clock()
        score, fe, cov = score[:, 0], fe[:, 0], cov[:, 0]
        if self.likelihood is not None:
            norm = self.likelihood.step(batch.slots, score).astype(np.float32)
        elif self._thresholds.per_series:
            norm = score / self._series_thresholds(batch)
        else:
            norm = score / np.float32(self.threshold)
        ratio = feature_ratios(fe, self._ratio_den)
        active, events = self.alarms.step_many(batch.slots, batch.names, batch.ts, norm, ratio)
        self.slot_names.update(zip(batch.slots.tolist(), batch.names, strict=True))
        self.metrics.update_series(batch.slots, norm, ratio, active)
        if self.shadow is not None:
            self.shadow.observe(batch, norm, active, events)
        if self.watch is not None:
            self.watch.observe(self.detector, batch.ts, norm, events)
        if self.health is not None:
            self.health.observe(batch.windows[:, -1, :], norm)
            for e in events:
                self.health.event(e["series"])
        if self.sink is not None:
            top = top_features(ratio, self.top_k)
            lines = window_lines(
                batch.names, batch.ts, score, norm, active.tolist(), cov, top, self.features
            )
            lines.extend(event_line(e) for e in events)
            self.sink.write(lines)
        st = self.metrics.stats
        st.windows_scored += int(norm.size)
        st.anomalous_windows += int(np.count_nonzero(is_anomalous(norm)))
        st.anomalies = self.alarms.opened
        latency = clock() - batch.received
        self.metrics.observe_scoring(t1 - t0, int(norm.size), latency)
        if self.observer is not None:
            self.observer(latency)

    def _series_thresholds(self, batch: WindowBatch) -> np.ndarray:
        """Each window's series threshold, looked up once per slot (a slot keeps its series
        until it is evicted, and eviction goes through :meth:`finish`)."""
        table = self._slot_threshold
        top = int(batch.slots.max()) + 1 if batch.slots.size else 0
        if top > table.size:
            table = np.concatenate([table, np.zeros(top - table.size, np.float32)])
            self._slot_threshold = table
        new = np.flatnonzero(table[batch.slots] == 0)
        for i in new.tolist():
            table[batch.slots[i]] = self._thresholds.for_series(batch.names[i])
        return table[batch.slots]

    def finish(self, slots: list[int] | None, forget: bool) -> None:
        """Close the post-rules of ``slots`` (None: every series) and write their events:
        evicted series (``forget``: their metrics go too), or all at the end (their last
        scores stay exported)."""
        lines: list[str] = []
        for slot in list(self.slot_names) if slots is None else slots:
            name = self.slot_names.pop(slot, None) if forget else self.slot_names.get(slot)
            if name is not None:
                closed = self.alarms.finish(slot, name)
                lines.extend(event_line(e) for e in closed)
                if self.shadow is not None:
                    self.shadow.finish(slot, name, forget, closed)
                if self.watch is not None:
                    self.watch.closed(self.detector, closed)
                if self.health is not None:
                    for _ in closed:
                        self.health.event(name)
                    if forget:
                        self.health.forget(name)
            if forget:
                if slot < self._slot_threshold.size:
                    self._slot_threshold[slot] = 0
                self.metrics.remove_series(slot)
                if self.likelihood is not None:
                    self.likelihood.forget(slot)
            else:
                self.metrics.clear_alarm(slot)
        if self.sink is not None:
            self.sink.write(lines)
