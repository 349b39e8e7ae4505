"""Rollback of a promotion: the model in use before it comes back, asked for or by rule.

Before a promotion (:mod:`anomae.monitor.promotion`) writes the candidate over the model
file ``MODEL``, it keeps the outgoing model's bytes in ``MODEL.previous`` beside it
(written atomically, :mod:`anomae.atomic`; a failure there fails the promotion, which then
changes nothing). A rollback is the promotion in reverse, through the same steps
(:meth:`~anomae.monitor.promotion.Promotion.switch`): the previous model is loaded and
checked (it must be able to replace the current one in place, as a shadow must), its bytes
are written back over ``MODEL`` atomically, and the scorer swaps it in between two batches
with every series' ring buffer, post-rule and likelihood state kept. ``MODEL.previous`` is
then removed: a second rollback is refused, as is one with no ``MODEL.previous`` at all
(nothing changes, the refusal is logged and counted). A failed write keeps the current
model, in memory and on disk, and is logged and counted.

It happens

* **on request** (SIGUSR2, :meth:`Rollback.request`), at the next housekeeping tick, and
* **by rule** (``--rollback-within``, default one day of the readings' time, 0: off): the
  promoted model's events are counted per series from its first scored window on; when a
  series closes more events within that period than the promoted card's budget allows for
  the whole period (:func:`~anomae.monitor.shadow.budget`, the bound the promotion rule
  judges the shadow by: the upper end of the 95 % interval of the expected false events
  per day, times the period in days), the model is rolled back at once, since the rate
  over the period can no longer end within the bound. Cards calibrated on a false-alarm
  rate per window are judged at the end of the period on their anomalous-window rate.
  A period that ends within the bound keeps the promotion (logged). A rule rollback whose
  write fails is not retried (send SIGUSR2); the watch lives in this process only (a
  restart ends it, ``MODEL.previous`` stays for SIGUSR2).

After a rollback the rolled-back candidate is not scored again: the shadow stays empty (the
promotion had emptied it) until the ``--shadow`` file changes (the next ``anomae retrain``
run), so the rule cannot promote it again in a loop; SIGUSR1 is refused meanwhile. A
restart with the same ``--shadow`` file scores it again as a fresh shadow.

==============================================  =========  ================================
name                                            type       labels
==============================================  =========  ================================
``anomae_model_rollbacks_total``                counter    reason (signal, rule),
                                                           result (ok, refused, error)
==============================================  =========  ================================

Same ``result`` values as ``anomae_model_promotions_total``, so one alert shape reads both;
``reason`` tells an operator's rollback from the rule's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, Metric

from anomae.atomic import OutputError, atomic_write_bytes
from anomae.monitor.logs import log
from anomae.monitor.models import incompatible, read_model
from anomae.monitor.scorer import MonitorError
from anomae.monitor.shadow import DAY, budget
from anomae.verdict import is_anomalous

LOG = logging.getLogger("anomae.monitor")
REASONS = ("signal", "rule")
RESULTS = ("ok", "refused", "error")


def previous_path(model_path: str) -> str:
    """Where a promotion keeps the outgoing model: ``MODEL.previous`` beside ``MODEL``.

    >>> previous_path("/var/lib/anomae/model.onnx")
    '/var/lib/anomae/model.onnx.previous'
    """
    return f"{model_path}.previous"


class Watch:
    """The promoted ``detector``'s events and windows during ``within_s`` seconds of the
    readings' time from its first scored window; the scorer thread writes, the rule reads."""

    def __init__(self, detector: Any, limit: tuple[str, float], within_s: float) -> None:
        self.detector, self.within_s = detector, within_s
        self.kind, self.limit = limit
        self.lock = threading.Lock()
        self.start: float | None = None
        self.newest = -math.inf
        self.events: dict[str, int] = {}
        self.windows = self.anomalous = 0

    def observe(self, det: Any, ts: np.ndarray, norm: np.ndarray, events: list[dict]) -> None:
        """A batch ``det`` scored (ignored unless ``det`` is the promoted model)."""
        if det is not self.detector or ts.size == 0:
            return
        with self.lock:
            if self.start is None:
                self.start = float(np.min(ts))
            end = self.start + self.within_s
            self.newest = max(self.newest, float(np.max(ts)))
            inside = ts <= end
            self.windows += int(np.count_nonzero(inside))
            self.anomalous += int(np.count_nonzero(is_anomalous(norm[inside])))
            self._count(events, end)

    def closed(self, det: Any, events: list[dict]) -> None:
        """Events ``det`` closed at the end of a series (eviction, shutdown)."""
        if det is self.detector and self.start is not None:
            with self.lock:
                self._count(events, self.start + self.within_s)

    def _count(self, events: list[dict], end: float) -> None:
        for e in events:
            if float(e["start"]) <= end:
                self.events[e["series"]] = self.events.get(e["series"], 0) + 1

    def verdict(self) -> tuple[bool | None, str]:
        """True: roll back (why); False: the period ended within the bound; None: watching."""
        with self.lock:
            if self.start is None:
                return None, "nothing scored yet"
            over = self.newest - self.start >= self.within_s
            period = f"{self.within_s / 3600:.4g} h"
            if self.kind == "events":
                allowed = self.limit * self.within_s / DAY
                name, n = max(self.events.items(), key=lambda kv: kv[1], default=("", 0))
                if n > allowed:
                    return True, (
                        f"series {name!r} closed {n} events within {period} of readings "
                        f"after the promotion, over the {allowed:.3g} its card allows "
                        f"({self.limit:.3g} per day)"
                    )
                how = f"every series within {allowed:.3g} events"
            else:
                rate = self.anomalous / max(self.windows, 1)
                if over and rate > self.limit:
                    return True, (
                        f"anomalous-window rate {rate:.3g} in {period} of readings after the "
                        f"promotion, over the {self.limit:.3g} its card expects"
                    )
                how = f"anomalous-window rate {rate:.3g} within {self.limit:.3g}"
            if over:
                return False, f"{how} in {period} of readings after the promotion"
            return None, ""


class Rollback:
    """Restores ``MODEL.previous`` (``model_path`` + ".previous") in the ``scorer``, by
    ``switch(detector, data)`` (the promotion's, :meth:`Promotion.switch`), loading it with
    ``load``; watches each promotion for ``within_s`` seconds of readings (0: no rule)."""

    def __init__(
        self,
        model_path: str,
        load: Callable[[str], Any],
        scorer: Any,
        switch: Callable[[Any, bytes], bool],
        within_s: float,
        batch_size: int = 1024,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.path, self.previous = model_path, previous_path(model_path)
        self.load, self.scorer, self.switch = load, scorer, switch
        self.within_s, self.batch_size = within_s, batch_size
        self.results = {(r, s): 0 for r in REASONS for s in RESULTS}
        self.watching: Watch | None = None
        self._asked = False
        if registry is not None:
            registry.register(self)  # type: ignore[arg-type]

    def keep(self) -> None:
        """Keep the model in use in ``MODEL.previous`` (before a promotion overwrites
        ``MODEL``); an :class:`OutputError` when it cannot, and then nothing changed."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise OutputError(
                f"{self.path}: cannot read the model in use to keep it for a rollback "
                f"({exc.strerror or exc}); promoted nothing"
            ) from exc
        if hashlib.sha256(data).hexdigest() != self.scorer.detector.sha256:
            raise OutputError(
                f"{self.path}: the file is not the model in use (it changed on disk since it "
                f"was loaded); promoted nothing: reload it (SIGHUP) or restart, then promote"
            )
        atomic_write_bytes(self.previous, data)

    def promoted(self, det: Any) -> None:
        """``det`` was just promoted: watch it by the rule (when on and its card can say)."""
        self.watching = None
        if self.within_s > 0:
            limit = budget(det.card)
            if limit is None:
                log(LOG, logging.WARNING, "rollback rule off for this model: its card has no "
                    "expected false-alarm figure", model_sha256=det.sha256)  # fmt: skip
            else:
                self.watching = Watch(det, limit, self.within_s)
        self.scorer.watch = self.watching

    def request(self) -> None:
        """Roll back at the next tick (the SIGUSR2 handler)."""
        self._asked = True

    def tick(self) -> None:
        if self._asked:
            self._roll("signal", "asked (SIGUSR2)")
        w = self.watching
        if w is None:
            return
        bad, why = w.verdict()
        if bad:
            self._roll("rule", why)
        elif bad is False:
            self._unwatch()
            log(LOG, logging.INFO, "promotion kept: the rollback rule held", reason=why)

    def _unwatch(self) -> None:
        self.watching = self.scorer.watch = None

    def _refuse(self, reason: str, why: str) -> None:
        self._asked = False
        if reason == "rule":
            self._unwatch()  # judged once: not refused again at every tick
        self.results[reason, "refused"] += 1
        log(LOG, logging.WARNING, "rollback refused; keeping the current model",
            reason=reason, detail=why)  # fmt: skip

    def _roll(self, reason: str, why: str) -> None:
        if not os.path.lexists(self.previous):
            self._refuse(reason, f"no previous model ({self.previous} does not exist: no "
                         f"promotion kept one, or it was rolled back already)")  # fmt: skip
            return
        current = self.scorer.detector
        try:
            det, data = read_model(self.previous, self.load)
            differs = incompatible(current.card, det.card)
            if differs is not None:
                raise MonitorError(f"{self.previous}: cannot replace the current model: {differs}")
            self.scorer.thresholds_of(det)
            self.scorer.warm_up(det, self.batch_size)
        except Exception as exc:  # unreadable, not a model, incompatible: nothing changes
            self._refuse(reason, f"{type(exc).__name__}: {exc}")
            return
        try:
            if not self.switch(det, data):
                return  # a reload holds the model file: next tick
        except (OSError, OutputError) as exc:
            self._asked = False
            self.results[reason, "error"] += 1
            self._unwatch()  # a failed rule rollback is not retried in a loop: SIGUSR2 is
            log(LOG, logging.ERROR, "rollback failed; keeping the current model",
                error=f"{type(exc).__name__}: {exc}", reason=reason, detail=why)  # fmt: skip
            return
        self._asked = False
        det.path = self.path  # its bytes are MODEL's now
        self._unwatch()
        try:
            os.unlink(self.previous)
        except OSError as exc:
            log(LOG, logging.WARNING, "could not remove the previous model after the rollback",
                path=self.previous, error=str(exc))  # fmt: skip
        self.results[reason, "ok"] += 1
        log(LOG, logging.WARNING, "model rolled back", reason=reason, detail=why,
            model_sha256=det.sha256, rolled_back_sha256=current.sha256)  # fmt: skip

    # -- metrics -------------------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        fam = CounterMetricFamily(
            "anomae_model_rollbacks",
            "Rollbacks to the model in use before a promotion.",
            labels=["reason", "result"],
        )
        for (reason, result), n in self.results.items():
            fam.add_metric([reason, result], float(n))
        yield fam
