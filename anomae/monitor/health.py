"""Is the model still fit? Model health metrics, read against what the model card says.

A model trained once goes stale: sensors are replaced, loads change with the seasons. The
monitor measures, per micro-batch and in a few vectorised operations:

* **input drift per feature**: the readings (the newest row of every scored window, so each
  reading once at stride 1), standardised with the training scaler, averaged over about the
  last :data:`HORIZON` readings (an exponentially weighted mean, updated once per batch):
  ``anomae_feature_mean_shift`` is their mean (0 on training-like data, in training standard
  deviations), ``anomae_feature_std_ratio`` their standard deviation (1 on training-like
  data) and ``anomae_feature_out_of_range_ratio`` the share outside the range seen in
  training (cards written before training recorded it: NaN);
* **score drift**: quantiles of the normalised scores of the last :data:`SCORES` windows of
  the fleet (``anomae_score_quantile``) beside the same quantiles on the calibration data
  (``anomae_calibration_score_quantile``, from the card);
* **alarm rate per series**: ``anomae_series_events_total``, the events each series closed,
  to compare with ``anomae_expected_false_events_per_day``;
* **model age and training data**: ``anomae_model_trained_timestamp_seconds`` and
  ``anomae_model_training_data_{start,end}_timestamp_seconds``.

The alert rules in ``deploy/prometheus/rules/anomae-alerts.yml`` read these directly.

    >>> from prometheus_client import CollectorRegistry
    >>> from anomae.spec import ModelCard, Scaler, WindowSpec
    >>> card = ModelCard(("a",), WindowSpec(1), Scaler((10.0,), (2.0,)),
    ...                  training={"feature_range": {"min": [4.0], "max": [16.0]}})
    >>> reg = CollectorRegistry()
    >>> health = ModelHealth(reg, card)
    >>> health.observe(np.full((HORIZON, 1), 14.0), np.zeros(HORIZON))
    >>> reg.get_sample_value("anomae_feature_mean_shift", {"feature": "a"})  # (14 - 10) / 2
    2.0
    >>> reg.get_sample_value("anomae_feature_std_ratio", {"feature": "a"})
    0.0
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

HORIZON = 10_000  # readings the feature statistics average over (exponential weights)
SCORES = 8192  # latest normalised scores the score quantiles are taken over
QUANTILES = ("0.5", "0.9", "0.99")


def _timestamp(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text).timestamp() if text else math.nan
    except ValueError:
        return math.nan


class ModelHealth:
    """Health statistics of the model in use, collected into ``registry`` at scrape time."""

    def __init__(self, registry: CollectorRegistry, card: Any) -> None:
        self._lock = threading.Lock()
        self.events: dict[str, int] = {}  # per series, events closed
        self.set_model(card)
        registry.register(self)  # type: ignore[arg-type]

    def set_model(self, card: Any) -> None:
        """Read the training statistics of ``card`` and start the statistics afresh."""
        features = tuple(card.features)
        extent = card.training or {}
        rng = extent.get("feature_range") or {}
        lo, hi = rng.get("min"), rng.get("max")
        span = extent.get("data_span") or [math.nan, math.nan]
        th = card.threshold
        with self._lock:
            self.features = features
            self._center32 = np.asarray(card.scaler.center, np.float32)
            self._inv_scale32 = (1.0 / np.asarray(card.scaler.scale, np.float64)).astype(
                np.float32
            )
            known = lo is not None and hi is not None and len(lo) == len(features)
            self._lo = _values(lo).astype(np.float32) if known else None
            self._hi = _values(hi).astype(np.float32) if known else None
            n = len(features)
            self._mean, self._sq, self._out = np.zeros(n), np.zeros(n), np.zeros(n)
            self._weight = np.zeros(n)  # total weight so far, to correct the start-up bias
            self._scores = np.full(SCORES, np.nan)
            self._pos = 0
            self.created = _timestamp(card.created_at)
            self.span = (float(span[0]), float(span[1]))
            cal = th.score_quantiles if th is not None else {}
            self.calibration = {q: float(cal.get(q, math.nan)) for q in QUANTILES}

    def observe(self, rows: np.ndarray, norm: np.ndarray) -> None:
        """One micro-batch: ``rows`` ``[n, F]`` the newest reading of each window (NaN:
        missing), ``norm`` ``[n]`` their windows' normalised scores."""
        with self._lock:
            if rows.shape[0]:
                self._features(rows)
            s = norm[np.isfinite(norm)]
            if s.size:
                s = s[-SCORES:]
                idx = (self._pos + np.arange(s.size)) % SCORES
                self._scores[idx] = s
                self._pos = int((self._pos + s.size) % SCORES)

    def _features(self, rows: np.ndarray) -> None:
        # float32 and column sums as matrix products: a strided numpy reduction over a few
        # features costs more than all the rest together
        z = (rows - self._center32) * self._inv_scale32
        seen = z == z
        zs = np.where(seen, z, np.float32(0))
        one = np.ones(z.shape[0], np.float32)
        k = (one @ seen.astype(np.float32)).astype(np.float64)
        has = k > 0
        if not has.any():
            return
        k_safe = np.maximum(k, 1.0)
        # the batch as k readings of exponential weights: its mean enters with 1 - (1-a)^k
        w = np.where(has, 1.0 - (1.0 - 1.0 / HORIZON) ** k, 0.0)
        self._mean = (1 - w) * self._mean + w * (one @ zs) / k_safe
        self._sq = (1 - w) * self._sq + w * (one @ (zs * zs)) / k_safe
        if self._lo is not None and self._hi is not None:
            out = ((rows < self._lo) | (rows > self._hi)).astype(np.float32)  # NaN: False
            self._out = (1 - w) * self._out + w * (one @ out) / k_safe
        self._weight = (1 - w) * self._weight + w

    def event(self, series: str) -> None:
        with self._lock:
            self.events[series] = self.events.get(series, 0) + 1

    def forget(self, series: str) -> None:
        with self._lock:
            self.events.pop(series, None)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            seen = self._weight > 0
            wt = np.where(seen, self._weight, 1.0)
            mean = np.where(seen, self._mean / wt, np.nan)
            var = np.where(seen, self._sq / wt - mean**2, np.nan)
            std = np.sqrt(np.maximum(var, 0.0))
            out = np.where(seen, self._out / wt, np.nan) if self._lo is not None else None
            scores = self._scores[np.isfinite(self._scores)]
            events = dict(self.events)
            feats = self.features
        yield _per_feature(
            "anomae_feature_mean_shift",
            "Recent mean of a feature's readings minus its training mean, in training "
            "standard deviations (about the last 10,000 readings).",
            feats,
            mean,
        )
        yield _per_feature(
            "anomae_feature_std_ratio",
            "Recent standard deviation of a feature's readings over its training one.",
            feats,
            std,
        )
        yield _per_feature(
            "anomae_feature_out_of_range_ratio",
            "Share of a feature's recent readings outside the range seen in training "
            "(NaN: the model card does not record it).",
            feats,
            np.full(len(feats), np.nan) if out is None else out,
        )
        recent = GaugeMetricFamily(
            "anomae_score_quantile",
            "Quantile of the normalised scores of the latest windows (all series).",
            labels=["q"],
        )
        cal = GaugeMetricFamily(
            "anomae_calibration_score_quantile",
            "The same quantile of the normalised scores on the calibration data (model card).",
            labels=["q"],
        )
        for q in QUANTILES:
            v = float(np.quantile(scores, float(q))) if scores.size else math.nan
            recent.add_metric([q], v)
            cal.add_metric([q], self.calibration[q])
        yield recent
        yield cal
        ev = CounterMetricFamily(
            "anomae_series_events",
            "Anomaly events each series closed (compare with the expected false events).",
            labels=["series"],
        )
        for name, n in events.items():
            ev.add_metric([name.encode("utf-8", "backslashreplace").decode()], float(n))
        yield ev
        yield GaugeMetricFamily(
            "anomae_model_trained_timestamp_seconds",
            "When the model in use was trained (Unix seconds; NaN: unknown).",
            value=self.created,
        )
        yield GaugeMetricFamily(
            "anomae_model_training_data_start_timestamp_seconds",
            "Timestamp of the first training row (Unix seconds; NaN: unknown).",
            value=self.span[0],
        )
        yield GaugeMetricFamily(
            "anomae_model_training_data_end_timestamp_seconds",
            "Timestamp of the last training row (Unix seconds; NaN: unknown).",
            value=self.span[1],
        )


def _values(v: Any) -> np.ndarray:
    return np.array([np.nan if x is None else float(x) for x in v], np.float64)


def _per_feature(name: str, doc: str, features: tuple[str, ...], values: Any) -> Metric:
    fam = GaugeMetricFamily(name, doc, labels=["feature"])
    for f, v in zip(features, np.asarray(values, float).tolist(), strict=True):
        fam.add_metric([f], v)
    return fam
