"""Promotion of a shadow model, and the shadow's metrics.

:class:`Promotion` runs on the daemon's housekeeping tick. It promotes the
:class:`~anomae.monitor.shadow.Shadow` when its rule holds (``--shadow-promote-after``:
:meth:`Shadow.verdict` over that much of the readings' time, so a replay of a week's data
decides as a week live would) or when asked (SIGUSR1). When the ``--shadow`` file changes
(the next ``anomae retrain`` run) the new candidate replaces the shadow, its figures
starting afresh; one that cannot stand in for the current model is refused and logged.
A promotion first writes the candidate's bytes over the model file atomically (so a
restart keeps it, and the model watcher takes the new file as its own, not as a change to
reload), then hands the detector to the scorer, which swaps it in between two batches:
ring buffers, post-rule and likelihood state carry over. If the write fails the current
model stays, in memory and on disk, and the failure is logged and counted; the shadow
keeps running. Before that write the outgoing model is kept in ``MODEL.previous`` for a
rollback (:mod:`anomae.monitor.rollback`: SIGUSR2, or ``--rollback-within``), which goes
through the same :meth:`Promotion.switch` in reverse.

==============================================  =========  ================================
name                                            type       labels
==============================================  =========  ================================
``anomae_shadow_anomaly_score``                 gauge      series (the shadow's normalised)
``anomae_model_events_total``                   counter    model (current, shadow), series
``anomae_model_anomalous_windows_total``        counter    model (current, shadow)
``anomae_shadow_missed_events_total``           counter    (current events it missed)
``anomae_shadow_scored_seconds``                gauge      (readings' time span scored)
``anomae_model_promotions_total``               counter    result (ok, refused, error)
==============================================  =========  ================================

The shadow's score has a family of its own rather than a ``model="shadow"`` label on
``anomae_anomaly_score``: every alert and dashboard written against that family (``> 1``)
would otherwise fire on the shadow unless each of them excluded it. Counts that compare
the two models carry the ``model`` label, so one query shows both side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from anomae.atomic import OutputError
from anomae.monitor.logs import log
from anomae.monitor.models import ModelWatcher
from anomae.monitor.rollback import Rollback
from anomae.monitor.scorer import MonitorError
from anomae.monitor.shadow import Shadow, open_shadow

LOG = logging.getLogger("anomae.monitor")
RESULTS = ("ok", "refused", "error")


class Promotion:
    """Promotes ``shadow`` by the rule (after ``after_s`` seconds of readings; 0: only
    when asked) or when :meth:`request`-ed. ``write(data, card)`` writes the model file
    (False: not now, a reload is running; ``OSError`` or ``OutputError``: it failed);
    ``adopt(detector)`` hands it to the scorer."""

    def __init__(
        self,
        shadow: Shadow,
        after_s: float,
        write: Callable[[bytes, Any], bool],
        adopt: Callable[[Any], None],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.shadow: Shadow | None = shadow
        self.after_s, self.write, self.adopt = after_s, write, adopt
        self.results = dict.fromkeys(RESULTS, 0)
        self._asked = False
        self._last_refusal = ""
        self._final: Shadow = shadow  # its counts stay exported after a promotion
        self.watcher: Any = None  # a ModelWatcher of the --shadow file
        self.rollback: Any = None  # a monitor.rollback.Rollback: keeps the outgoing model
        if registry is not None:
            registry.register(self)  # type: ignore[arg-type]

    def request(self) -> None:
        """Promote at the next tick whatever the rule says (the SIGUSR1 handler)."""
        self._asked = True

    def replace(self, shadow: Shadow) -> None:
        """A new candidate (the --shadow file changed): tried from scratch from now on."""
        self.shadow = self._final = shadow
        self._last_refusal = ""

    def switch(self, det: Any, data: bytes) -> bool:
        """Write ``data`` (the file of ``det``) over the model file, then hand ``det`` to the
        scorer: False when a reload holds the file (try at the next tick); ``OSError`` or
        ``OutputError`` when the write failed, and then nothing changed."""
        if not self.write(data, det.card):
            return False
        self.adopt(det)
        return True

    def tick(self) -> None:
        if self.watcher is not None:
            self.watcher.check()
        if self.rollback is not None:
            self.rollback.tick()
        sh = self.shadow
        if sh is None:
            if self._asked:
                self._asked = False
                self.results["refused"] += 1
                log(LOG, logging.WARNING, "promotion refused: no shadow model is running")
            return
        if self._asked:
            self._promote(sh, "signal")
            return
        if self.after_s <= 0:
            return
        ok, why = sh.verdict(self.after_s)
        if ok:
            self._promote(sh, f"rule: {why}")
        elif ok is False and why != self._last_refusal:
            self._last_refusal = why
            self.results["refused"] += 1
            log(LOG, logging.WARNING, "shadow not promoted: rule does not hold", reason=why)

    def _promote(self, sh: Shadow, reason: str) -> None:
        det = sh.detector
        try:
            if self.rollback is not None:
                self.rollback.keep()  # MODEL.previous, before MODEL is overwritten
            if not self.switch(det, sh.data):
                return  # a reload holds the model file: next tick
        except (OSError, OutputError) as exc:
            self._asked = False
            self.results["error"] += 1
            log(LOG, logging.ERROR, "promotion failed; keeping the current model",
                error=f"{type(exc).__name__}: {exc}", reason=reason)  # fmt: skip
            return
        self._asked = False
        self.shadow = None
        if self.rollback is not None:
            self.rollback.promoted(det)
        self.results["ok"] += 1
        log(LOG, logging.INFO, "shadow model promoted", model_sha256=det.sha256, reason=reason)

    # -- metrics -------------------------------------------------------------------------
    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        sh = self._final
        live = self.shadow is not None
        score = GaugeMetricFamily(
            "anomae_shadow_anomaly_score",
            "Latest normalised score of the shadow model (never alerted on).",
            labels=["series"],
        )
        events = CounterMetricFamily(
            "anomae_model_events_total",
            "Anomaly events closed per series by the current and the shadow model.",
            labels=["model", "series"],
        )
        windows = CounterMetricFamily(
            "anomae_model_anomalous_windows_total",
            "Windows the current and the shadow model score above 1.",
            labels=["model"],
        )
        with sh.lock:
            if live:
                for slot, name in sh.names.items():
                    if sh.has[slot]:
                        score.add_metric([name], float(sh.score[slot]))
            for model, counts in sh.events.items():
                for name, n in counts.items():
                    events.add_metric([model, name], float(n))
                windows.add_metric([model], float(sh.anomalous[model]))
            missed = sh.missed
        yield score
        yield events
        yield windows
        yield CounterMetricFamily(
            "anomae_shadow_missed_events",
            "Current-model events during which the shadow had no event open.",
            value=float(missed),
        )
        yield GaugeMetricFamily(
            "anomae_shadow_scored_seconds",
            "Time span of the readings the shadow scored (their timestamps).",
            value=sh.span_s(),
        )
        fam = CounterMetricFamily(
            "anomae_model_promotions", "Shadow model promotions.", labels=["result"]
        )
        for result, n in self.results.items():
            fam.add_metric([result], float(n))
        yield fam


def shadow_for(mon: Any, detector: Any, loader: Any, registry: CollectorRegistry) -> Promotion:
    """The ``--shadow`` model of the :class:`~anomae.monitor.daemon.Monitor` ``mon`` (whose
    current model is ``detector``), scored beside it by its scorer, and its promotion."""
    from anomae.atomic import atomic_write_bytes
    from anomae.detector import Detector

    o, path = mon.opts, detector.path
    det, data = open_shadow(str(o.shadow), loader or Detector.load, detector.card)
    mon.scorer.warm_up(det, o.batch_size)
    shadow = mon.scorer.shadow = Shadow(det, data, o.rule, mon.features, o.top_k)

    def write(data: bytes, card: Any) -> bool:
        if mon.watcher is not None:
            return bool(mon.watcher.replace_file(data, card))
        atomic_write_bytes(path, data)
        return True

    promotion = Promotion(shadow, o.shadow_promote_after_seconds, write, mon.adopt, registry)
    promotion.rollback = Rollback(path, loader or Detector.load, mon.scorer, promotion.switch,
                                  o.rollback_within_seconds, o.batch_size, registry)  # fmt: skip

    def reloaded(new: Any, outcome: str, detail: str) -> None:
        """The --shadow file changed (a new `anomae retrain` run): the new candidate."""
        if new is not None:
            try:
                new, data = open_shadow(str(o.shadow), lambda _: new, mon.scorer.detector.card)
                mon.scorer.warm_up(new, o.batch_size)
            except MonitorError as exc:
                new, outcome, detail = None, "refused", str(exc)
        if new is None:
            log(LOG, logging.WARNING, f"shadow reload {outcome}; keeping the old shadow",
                detail=detail)  # fmt: skip
            return
        sh = Shadow(new, data, o.rule, mon.features, o.top_k)
        promotion.replace(sh)
        mon.scorer.shadow = sh
        log(LOG, logging.INFO, "shadow model loaded", model_sha256=new.sha256, path=new.path)

    promotion.watcher = ModelWatcher(str(o.shadow), loader or Detector.load, det.card, reloaded)
    return promotion
