"""The monitor's Prometheus metrics, registered into an injected ``CollectorRegistry``.

Per-series values live in numpy arrays indexed by series slot and are turned into samples
only when Prometheus scrapes: updating them costs a few vectorised assignments per batch,
not a ``labels(...).set(...)`` call per window, and a series or feature that leaves the
set disappears from the output by construction (no stale label sets). The counters are
plain integers in :class:`MonitorStats`, owned by the daemon thread that changes them.

==============================================  =========  ================================
name                                            type       labels
==============================================  =========  ================================
``anomae_anomaly_score``                        gauge      series (normalised: > 1 anomalous)
``anomae_anomaly``                              gauge      series (0/1 after post-rules)
``anomae_feature_error_ratio``                  gauge      series, feature (top-k only)
``anomae_threshold``                            gauge
``anomae_expected_false_events_per_day``        gauge      (per series, model card; NaN: n/a)
``anomae_events_received_total``                counter    (every reading offered)
``anomae_events_accepted_total``                counter    (admitted into a series' window)
``anomae_events_invalid_total``                 counter    reason
``anomae_events_dropped_total``                 counter    reason
``anomae_events_other_shard_total``             counter    (series of other replicas)
``anomae_window_resets_total``                  counter    (gaps over the limit)
``anomae_sequence_gaps_total``                  counter
``anomae_sequence_missing_total``               counter
``anomae_windows_scored_total``                 counter
``anomae_anomalous_windows_total``              counter    (normalised score > 1)
``anomae_anomalies_total``                      counter    (events opened by post-rules)
``anomae_model_reloads_total``                  counter    result (ok, refused, error)
``anomae_scoring_duration_seconds``             histogram  (one onnxruntime call)
``anomae_batch_windows``                        histogram  (windows per call)
``anomae_event_to_score_seconds``               histogram  (receipt → score of its window)
``anomae_queue_depth``, ``_capacity``           gauge      (events waiting / the bound)
``anomae_series``, ``anomae_series_limit``      gauge      (series tracked / the cap)
``anomae_source_up``                            gauge
``anomae_source_lag_messages``                  gauge      (only sources with a lag: Kafka)
``anomae_last_event_timestamp_seconds``         gauge      (newest accepted reading's ts)
``anomae_build_info``                           gauge      version, model_sha256, window, ...
==============================================  =========  ================================

The reading counters add up: ``received = accepted + Σ invalid + Σ dropped + other_shard``
over every reason but ``scoring_error``, which counts windows of accepted readings lost
afterwards.
A scrape never fails on a value: counters beyond float range read ``+Inf`` and a series
name UTF-8 cannot encode (the parser refuses those) is written with backslash escapes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram, Info
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from anomae.monitor.readings import INVALID_REASONS
from anomae.monitor.series import DROP_REASONS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
RELOAD_RESULTS = ("ok", "refused", "error")


@dataclass
class MonitorStats:
    """Counters of the daemon (cumulative). Each one has a single writer thread."""

    received: int = 0
    accepted: int = 0
    invalid: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INVALID_REASONS, 0))
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    window_resets: int = 0
    seq_gaps: int = 0
    seq_missing: int = 0
    windows_scored: int = 0
    anomalous_windows: int = 0
    anomalies: int = 0
    reloads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RELOAD_RESULTS, 0))
    last_event_ts: float = math.nan


class _BulkHistogram:
    """A histogram observed an array at a time (one ``searchsorted`` per batch)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = np.asarray(buckets, np.float64)
        self.counts = np.zeros(len(buckets) + 1, np.int64)
        self.sum = 0.0

    def observe(self, values: np.ndarray) -> None:
        if values.size:
            idx = np.searchsorted(self.bounds, values, side="left")  # le: value <= bound
            self.counts += np.bincount(idx, minlength=self.counts.size)
            self.sum += float(values.sum())

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cum = np.cumsum(self.counts)
        buckets = [(_le(b), float(c)) for b, c in zip(self.bounds, cum[:-1], strict=True)]
        buckets.append(("+Inf", float(cum[-1])))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.sum)


def _le(b: float) -> str:
    return repr(float(b))


class MonitorMetrics:
    """All metrics of one daemon in ``registry``. ``features`` name the model's features;
    ``top_k`` features per series are exported as ``anomae_feature_error_ratio``."""

    def __init__(
        self, registry: CollectorRegistry, features: Sequence[str], top_k: int = 3
    ) -> None:
        self.features = tuple(features)
        self.top_k = max(0, min(top_k, len(self.features)))
        self.stats = MonitorStats()
        self.threshold = math.nan
        self.false_events_per_day = math.nan
        self.series_limit = 0
        self.series_count: Callable[[], int] = lambda: 0
        self.series_names: dict[int, str] = {}  # slot -> series, kept by the daemon
        self.source_up: Callable[[], bool] = lambda: False
        self.source_lag: Callable[[], float | None] = lambda: None
        self.queue_depth: Callable[[], int] = lambda: 0
        self.queue_capacity = 0
        self.other_shard: Callable[[], int] = lambda: 0
        self._lock = threading.Lock()
        self._score = np.zeros(0)
        self._alarm = np.zeros(0, np.int8)
        self._has = np.zeros(0, bool)
        self._top = np.zeros((0, self.top_k), np.int64)
        self._ratio = np.zeros((0, self.top_k))
        self.latency = _BulkHistogram(LATENCY_BUCKETS)
        self.scoring = Histogram(
            "anomae_scoring_duration_seconds",
            "Seconds per onnxruntime call scoring one micro-batch of windows.",
            buckets=SCORING_BUCKETS,
            registry=registry,
        )
        self.batch = Histogram(
            "anomae_batch_windows",
            "Windows scored per onnxruntime call (micro-batch size).",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.build = Info("anomae_build", "anomae version and the loaded model.", registry=registry)
        registry.register(self)  # type: ignore[arg-type]

    def set_model(
        self, labels: dict[str, str], threshold: float, false_events_per_day: float | None = None
    ) -> None:
        self.build.info(labels)
        self.threshold = float(threshold)
        fe = false_events_per_day
        self.false_events_per_day = math.nan if fe is None else float(fe)

    def _ensure(self, n: int) -> None:
        cap = self._score.shape[0]
        if n <= cap:
            return
        new = max(n, 2 * cap, 64)

        def grow(a: np.ndarray, fill: Any = 0) -> np.ndarray:
            out = np.full((new, *a.shape[1:]), fill, a.dtype)
            out[:cap] = a
            return out

        self._score, self._alarm, self._has = grow(self._score), grow(self._alarm), grow(self._has)
        self._top, self._ratio = grow(self._top), grow(self._ratio)

    def update_series(
        self,
        slots: np.ndarray,
        norm: np.ndarray,
        ratio: np.ndarray,
        active: np.ndarray,
    ) -> None:
        """Latest normalised score, per-feature error ratios ``[n, F]`` and post-rule state
        of the series of ``n`` windows in window order (the last window of a slot wins).
        Series names come from ``series_names``, updated by the caller first."""
        if slots.size == 0:
            return
        uniq, first = np.unique(slots[::-1], return_index=True)
        last = slots.size - 1 - first
        r = ratio[last]
        top = np.argsort(-r, axis=1, kind="stable")[:, : self.top_k]
        with self._lock:
            self._ensure(int(uniq.max()) + 1)
            self._score[uniq] = norm[last]
            self._alarm[uniq] = active[last]
            self._has[uniq] = True
            self._top[uniq] = top
            self._ratio[uniq] = np.take_along_axis(r, top, axis=1)

    def clear_alarm(self, slot: int) -> None:
        with self._lock:
            if slot < self._alarm.shape[0]:
                self._alarm[slot] = 0

    def remove_series(self, slot: int) -> None:
        with self._lock:
            if slot < self._has.shape[0]:
                self._has[slot] = False
                self._alarm[slot] = 0

    def observe_scoring(self, seconds: float, n_windows: int, latencies: np.ndarray) -> None:
        self.scoring.observe(seconds)
        self.batch.observe(n_windows)
        with self._lock:
            self.latency.observe(latencies)

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: the registry needs no names up front

    def collect(self) -> Iterator[Metric]:
        st = self.stats
        yield from self._series_families()
        yield _gauge("anomae_threshold", "Score threshold of the model in use.", self.threshold)
        yield _gauge(
            "anomae_expected_false_events_per_day",
            "False events per series per day the model's calibration expects on normal data.",
            self.false_events_per_day,
        )
        yield _counter("anomae_events_received", "Readings received from the source.", st.received)
        yield _counter(
            "anomae_events_accepted", "Readings admitted into a series' window.", st.accepted
        )
        yield _by("anomae_events_invalid", "Readings rejected as invalid.", "reason", st.invalid)
        yield _by("anomae_events_dropped", "Valid readings not scored.", "reason", st.dropped)
        yield _counter(
            "anomae_events_other_shard",
            "Readings of series another replica takes (--shard).",
            self.other_shard(),
        )
        yield _counter("anomae_window_resets", "Windows restarted after a gap.", st.window_resets)
        yield _counter("anomae_sequence_gaps", "Jumps in a series' seq numbers.", st.seq_gaps)
        yield _counter(
            "anomae_sequence_missing", "Readings missing by seq numbers.", st.seq_missing
        )
        yield _counter("anomae_windows_scored", "Windows scored.", st.windows_scored)
        yield _counter(
            "anomae_anomalous_windows",
            "Windows with a normalised score above 1.",
            st.anomalous_windows,
        )
        yield _counter("anomae_anomalies", "Anomaly events opened by the post-rules.", st.anomalies)
        yield _by("anomae_model_reloads", "Model reload attempts.", "result", st.reloads)
        with self._lock:
            yield self.latency.family(
                "anomae_event_to_score_seconds",
                "Seconds from receiving a reading to the score of the window it completed.",
            )
        yield _gauge("anomae_queue_depth", "Readings waiting to be scored.", self.queue_depth())
        yield _gauge("anomae_queue_capacity", "Bound of the reading queue.", self.queue_capacity)
        yield _gauge("anomae_series", "Series tracked.", self.series_count())
        yield _gauge(
            "anomae_series_limit", "Most series tracked (--max-series).", self.series_limit
        )
        yield _gauge("anomae_source_up", "1 when the source is connected.", float(self.source_up()))
        lag = self.source_lag()
        if lag is not None:
            yield _gauge(
                "anomae_source_lag_messages",
                "Messages waiting at the source, not yet queued (Kafka consumer lag).",
                lag,
            )
        yield _gauge(
            "anomae_last_event_timestamp_seconds",
            "Timestamp of the newest accepted reading (Unix seconds).",
            st.last_event_ts,
        )

    def _series_families(self) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "anomae_anomaly_score",
            "Latest normalised anomaly score (score / threshold; above 1 is anomalous).",
            labels=["series"],
        )
        alarm = GaugeMetricFamily(
            "anomae_anomaly",
            "1 while an anomaly event is open (after post-rules).",
            labels=["series"],
        )
        ratio = GaugeMetricFamily(
            "anomae_feature_error_ratio",
            "Error of the top features of the latest window over their threshold (per-feature "
            "threshold if the model has them, else the model threshold).",
            labels=["series", "feature"],
        )
        feats = self.features
        with self._lock:
            slots = np.flatnonzero(self._has).tolist()
            names = [self.series_names.get(s) for s in slots]
            sc, al = self._score[slots].tolist(), self._alarm[slots].tolist()
            top, rat = self._top[slots].tolist(), self._ratio[slots].tolist()
        for i, name in enumerate(names):
            if name is None:
                continue
            if not name.isascii():
                name = name.encode("utf-8", "backslashreplace").decode()
            score.add_metric([name], sc[i])
            alarm.add_metric([name], al[i])
            for j, v in zip(top[i], rat[i], strict=True):
                ratio.add_metric([name, feats[j]], v)
        yield score
        yield alarm
        yield ratio


def _num(value: float) -> float:
    """``value`` as a float; an integer beyond float range is +Inf, not an OverflowError
    on every scrape."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=_num(value))


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=_num(value))


def _by(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, doc, labels=[label])
    for key, v in list(values.items()):
        fam.add_metric([key], _num(v))
    return fam
