"""A shadow model: a candidate (``anomae retrain``) scored beside the current model.

:class:`Shadow` scores every micro-batch the :class:`~anomae.monitor.scorer.Scorer` scores,
on the same windows (one pass over the readings, a second onnxruntime call), normalises by
the shadow's own thresholds (:func:`anomae.verdict.resolve_thresholds`, the rule batch
scoring uses; ``--threshold`` and ``--likelihood`` apply to the current model only) and
runs its own post-rules (:class:`~anomae.monitor.alarms.SeriesAlarms`, the monitor's rule,
the one that applies once it is promoted). It never writes to the sink and never touches
``anomae_anomaly_score`` or ``anomae_anomaly``: its figures go to their own metric families
(:mod:`anomae.monitor.promotion`), so no alert on the current model's can fire on it.

It keeps what the promotion rule (:meth:`Shadow.verdict`) reads: events of both models per
series, anomalous windows of both, the readings' time span each series was seen over, and
the current model's events the shadow missed. A current event counts as missed when it
closes without the shadow having an open event at any of its windows.

A candidate is taken only when it could replace the current model in place
(:func:`~anomae.monitor.models.incompatible`: the same features in the same order and the
same window) and has a threshold.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from anomae.events import PostRule
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.models import incompatible, read_model
from anomae.monitor.scorer import MonitorError, WindowBatch
from anomae.spec import ModelCard
from anomae.verdict import feature_ratios, is_anomalous, resolve_thresholds

DAY = 86400.0


def open_shadow(
    path: str, load: Callable[[str], Any], current: ModelCard
) -> tuple[Any, bytes]:
    """The shadow detector at ``path`` and the file's bytes (what a promotion writes); a
    :class:`MonitorError` naming ``--shadow`` when it cannot stand in for ``current``."""
    from anomae.detector import DetectorError

    try:
        det, data = read_model(path, load)
        resolve_thresholds(det.card.threshold, path)
    except OSError as exc:
        raise MonitorError(f"--shadow {path}: cannot read it ({exc.strerror or exc})") from exc
    except (DetectorError, ValueError) as exc:
        raise MonitorError(f"--shadow {path}: {exc}") from exc
    why = incompatible(current, det.card)
    if why is not None:
        raise MonitorError(
            f"--shadow {path}: refused as a shadow of the current model: {why}; a shadow "
            f"must be able to replace it in place: retrain one from the current model "
            f"(`anomae retrain MODEL DATA -o {path}`)"
        )
    return det, data


def budget(card: ModelCard) -> tuple[str, float] | None:
    """What a model's alarms are judged against (the promotion rule reads the shadow's, the
    rollback rule the promoted model's): ("events", false events per series per day: the
    upper end of the card's 95 % interval, else its estimate) or ("windows", the
    false-alarm rate per window likewise); None: the card has neither."""
    th = card.threshold
    if th is None:
        return None
    if th.expected_false_events_per_day is not None:
        ci = th.expected_false_events_per_day_ci
        return "events", float(ci[1] if ci else th.expected_false_events_per_day)
    if th.expected_far is not None:
        ci2 = th.expected_far_ci
        return "windows", float(ci2[1] if ci2 else th.expected_far)
    return None


class Shadow:
    """The candidate ``detector`` (file bytes ``data``) scored beside the current model."""

    def __init__(
        self, detector: Any, data: bytes, rule: PostRule, features: Sequence[str], top_k: int = 3
    ) -> None:
        self.detector, self.data = detector, data
        self.thresholds = resolve_thresholds(detector.card.threshold, detector.path)
        self.alarms = SeriesAlarms(rule, features, top_k)
        self._den = self.thresholds.feature_scale(tuple(features))
        self._series_th: dict[str, float] = {}
        self.lock = threading.Lock()  # the scorer thread writes, scrapes and the rule read
        self.names: dict[int, str] = {}
        self.score = np.zeros(0)
        self.has = np.zeros(0, bool)
        self.first_ts = np.zeros(0)
        self.last_ts = np.zeros(0)
        self._open = np.zeros(0, bool)  # a current-model event in progress, per slot
        self._hit = np.zeros(0, bool)  # ... and the shadow had an event open during it
        self.events: dict[str, dict[str, int]] = {"current": {}, "shadow": {}}
        self.anomalous = {"current": 0, "shadow": 0}
        self.windows = 0
        self.missed = 0

    def _ensure(self, n: int) -> None:
        cap = self.score.size
        if n <= cap:
            return
        new = max(n, 2 * cap, 64)

        def grow(a: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(new, fill, a.dtype)
            out[:cap] = a
            return out

        self.score, self.has = grow(self.score, 0.0), grow(self.has, False)
        self.first_ts, self.last_ts = grow(self.first_ts, np.nan), grow(self.last_ts, np.nan)
        self._open, self._hit = grow(self._open, False), grow(self._hit, False)

    def _normalise(self, score: np.ndarray, names: list[str]) -> np.ndarray:
        if not self.thresholds.per_series:
            return score / np.float32(self.thresholds.value)
        cache = self._series_th
        th = [cache.get(n) or cache.setdefault(n, self.thresholds.for_series(n)) for n in names]
        return score / np.asarray(th, np.float32)

    def observe(
        self, batch: WindowBatch, norm: np.ndarray, active: np.ndarray, events: list[dict]
    ) -> None:
        """Score ``batch`` with the shadow; ``norm``, ``active`` and ``events`` are the
        current model's normalised scores, post-rule states and finalised events."""
        score, fe, _ = self.detector.run(batch.windows)
        sh_norm = self._normalise(score[:, 0], batch.names)
        ratio = feature_ratios(fe[:, 0], self._den)
        slots, ts = batch.slots, batch.ts.astype(np.float64)
        sh_active, sh_events = self.alarms.step_many(slots, batch.names, ts, sh_norm, ratio)
        with self.lock:
            self._ensure(int(slots.max()) + 1 if slots.size else 0)
            self.names.update(zip(slots.tolist(), batch.names, strict=True))
            self.score[slots] = sh_norm  # the last window of a slot is written last
            self.has[slots] = True
            new = np.isnan(self.first_ts[slots])
            self.first_ts[slots[new][::-1]] = ts[new][::-1]  # the earliest one wins
            self.last_ts[slots] = ts
            self.windows += int(norm.size)
            self.anomalous["current"] += int(np.count_nonzero(is_anomalous(norm)))
            self.anomalous["shadow"] += int(np.count_nonzero(is_anomalous(sh_norm)))
            self._count("current", events)
            self._count("shadow", sh_events)
            self._match(slots, active, sh_active)

    def _count(self, model: str, events: list[dict]) -> None:
        counts = self.events[model]
        for e in events:
            counts[e["series"]] = counts.get(e["series"], 0) + 1

    def _match(self, slots: np.ndarray, active: np.ndarray, sh_active: np.ndarray) -> None:
        """Follow each current-model event window by window: did the shadow have one open?"""
        if not active.any() and not self._open.any():
            return
        busy = np.flatnonzero(np.isin(slots, np.union1d(slots[active], np.flatnonzero(self._open))))
        op, hit = self._open, self._hit
        for i in busy.tolist():
            s = int(slots[i])
            if active[i]:
                if not op[s]:
                    op[s], hit[s] = True, False
                hit[s] |= bool(sh_active[i])
            elif op[s]:
                op[s] = False
                self.missed += 0 if hit[s] else 1

    def finish(self, slot: int, name: str, forget: bool, closed: list[dict]) -> None:
        """The series in ``slot`` ended (``forget``: evicted); ``closed`` are the current
        model's events it closed."""
        sh_closed = self.alarms.finish(slot, name)
        with self.lock:
            self._count("current", closed)
            self._count("shadow", sh_closed)
            if slot < self.has.size:
                self._open[slot] = False
                if forget:
                    self.has[slot] = False
                    self.first_ts[slot] = self.last_ts[slot] = np.nan
                    self.names.pop(slot, None)

    def span_s(self) -> float:
        """Seconds of readings (their timestamps) the shadow has scored, over all series."""
        with self.lock:
            seen = self.has[: self.first_ts.size]
            if not seen.any():
                return 0.0
            return float(np.nanmax(self.last_ts[seen]) - np.nanmin(self.first_ts[seen]))

    def budget(self) -> tuple[str, float] | None:
        """The shadow card's :func:`budget`: what the rule reads its alarms against."""
        return budget(self.detector.card)

    def verdict(self, after_s: float) -> tuple[bool | None, str]:
        """The promotion rule: None while the shadow has scored less than ``after_s``
        seconds of readings; else True when every series seen that long had shadow events
        per day within the card's budget (or the fleet's anomalous-window rate within its
        expected rate) and the shadow missed none of the current model's events."""
        span = self.span_s()
        if span < after_s:
            return None, f"{span:.0f} of {after_s:.0f} s of readings scored"
        budget = self.budget()
        if budget is None:
            return False, "the shadow's card has no expected false-alarm figure to judge by"
        with self.lock:
            if self.missed:
                return False, f"the shadow missed {self.missed} current-model events"
            kind, limit = budget
            if kind == "windows":
                rate = self.anomalous["shadow"] / max(self.windows, 1)
                ok = rate <= limit
                return ok, f"anomalous-window rate {rate:.3g} vs {limit:.3g} expected"
            worst, worst_name = 0.0, ""
            for slot, name in self.names.items():
                days = (self.last_ts[slot] - self.first_ts[slot]) / DAY
                if not days * DAY >= after_s:  # seen for less than the period: not judged
                    continue
                rate = self.events["shadow"].get(name, 0) / days
                if rate > worst:
                    worst, worst_name = rate, name
        if worst > limit or math.isnan(worst):
            return False, f"series {worst_name!r}: {worst:.3g} events/day over {limit:.3g}"
        return True, f"every series within {limit:.3g} events/day, no missed events"
