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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomae.errors import AnomaeError
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.likelihood import LikelihoodBank
from anomae.monitor.metrics import MonitorMetrics
from anomae.monitor.sink import JsonlSink, event_line, window_lines
from anomae.score import top_features


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
    ) -> None:
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
        self._use(detector)

    def threshold_of(self, det: Any) -> float:
        th = self.override if self.override is not None else det.threshold
        if th is None and self.likelihood is not None:
            return math.nan  # the likelihood needs no threshold
        if th is None or not th > 0:
            raise MonitorError(
                f"{det.path}: the model has no (positive) threshold; run `anomae calibrate` "
                "on normal data or pass --threshold"
            )
        return float(th)

    def _use(self, det: Any) -> None:
        from anomae import __version__

        th = self.threshold_of(det)
        self.detector, self.threshold = det, th
        card = det.card
        # the card's per-series thresholds, unless --threshold or the likelihood decides
        per_series = self.override is None and self.likelihood is None and card.threshold
        self._per_series = card.threshold if per_series and card.threshold.per_series else None
        per = card.threshold.per_feature if card.threshold else {}
        den = 1.0 if math.isnan(th) else th  # no threshold: the ratios are the raw errors
        self._ratio_den = np.array([per.get(f, den) for f in self.features], np.float32)
        self.metrics.set_model(
            {
                "version": __version__,
                "model_sha256": det.sha256,
                "window": str(card.window.length),
                "stride": str(card.window.stride),
                "features": str(len(self.features)),
                "threshold_method": card.threshold.method if card.threshold else "",
            },
            th,
            card.threshold.expected_false_events_per_day if card.threshold else None,
        )

    def warm_up(self, det: Any, batch_size: int) -> None:
        """One call on a full batch of zeros: onnxruntime sizes its buffers on the first
        calls, which would otherwise delay the first real batches by tens of ms."""
        w = det.card.window
        det.run(np.zeros((batch_size, w.length, len(self.features)), np.float32))

    def offer(self, det: Any) -> None:
        """A compatible reloaded model, used from the next batch (or :meth:`swap`) on."""
        self.threshold_of(det)
        self._next = det

    def swap(self) -> None:
        if self._next is not None:
            det, self._next = self._next, None
            self._use(det)

    def score(self, batch: WindowBatch) -> None:
        self.swap()
        clock = self.clock
        t0 = clock()
        score, fe, cov = self.detector.run(batch.windows)
        t1 = clock()
        score, fe, cov = score[:, 0], fe[:, 0], cov[:, 0]
        if self.likelihood is not None:
            norm = self.likelihood.step(batch.slots, score).astype(np.float32)
        elif self._per_series is not None:
            for_series = self._per_series.for_series
            norm = score / np.array([for_series(n) for n in batch.names], np.float32)
        else:
            norm = score / np.float32(self.threshold)
        active, events = self.alarms.step_many(batch.slots, batch.names, batch.ts, norm, fe)
        self.slot_names.update(zip(batch.slots.tolist(), batch.names, strict=True))
        self.metrics.update_series(batch.slots, norm, fe / self._ratio_den, active)
        if self.sink is not None:
            top = top_features(fe, self.top_k)
            lines = window_lines(
                batch.names, batch.ts, score, norm, active.tolist(), cov, top, self.features
            )
            lines.extend(event_line(e) for e in events)
            self.sink.write(lines)
        st = self.metrics.stats
        st.windows_scored += int(norm.size)
        st.anomalous_windows += int(np.count_nonzero(norm > 1.0))
        st.anomalies = self.alarms.opened
        latency = clock() - batch.received
        self.metrics.observe_scoring(t1 - t0, int(norm.size), latency)
        if self.observer is not None:
            self.observer(latency)

    def finish(self, slots: list[int] | None, forget: bool) -> None:
        """Close the post-rules of ``slots`` (None: every series) and write their events:
        evicted series (``forget``: their metrics go too), or all at the end (their last
        scores stay exported)."""
        lines: list[str] = []
        for slot in list(self.slot_names) if slots is None else slots:
            name = self.slot_names.pop(slot, None) if forget else self.slot_names.get(slot)
            if name is not None:
                lines.extend(event_line(e) for e in self.alarms.finish(slot, name))
            if forget:
                self.metrics.remove_series(slot)
                if self.likelihood is not None:
                    self.likelihood.forget(slot)
            else:
                self.metrics.clear_alarm(slot)
        if self.sink is not None:
            self.sink.write(lines)
