"""The gate an int8 model passes before it is written: the same alarms as its float32 model.

Both models score the same held-out normal windows; the int8 model passes when

* **(a) false alarms per window**: its exceedance fraction at the card's threshold (each
  series' own where the card has per-series thresholds) lies inside the float32 model's
  95 % moving-block bootstrap interval of that fraction on the same windows
  (:func:`anomae.bootstrap._far_ci`, as calibration computes ``expected_far_ci``);
* **(b) false events per day**, where the card was calibrated for a budget of false events
  (method ``events``): the events the card's post-rule opens, per series-day, lie inside
  the float32 model's block-bootstrap interval of its own rate on the same data (blocks of
  6 hours per series, as :mod:`anomae.calibrate_events` resamples);
* **(c) ranking**: Spearman's rank correlation of the two models' scores is at least
  ``min_spearman`` (0.999).

Where the float32 model raises no alarm (or no event) on the data, its interval is
``(0, 0)`` and the int8 model must raise none either. The figures, passed or not, are a
plain dict: the written model's card keeps them under ``quantization["gate"]``.

    >>> import numpy as np
    >>> from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
    >>> card = ModelCard(("a",), WindowSpec(4), Scaler((0.0,), (1.0,)),
    ...                  threshold=Threshold(3.0, "quantile"))
    >>> s = np.random.default_rng(0).exponential(1.0, 5000)
    >>> f = gate_figures([s], [s * 1.001], None, card, None)
    >>> f["passed"], f["far_ok"], round(f["spearman"], 6)
    (True, True, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomae.bootstrap import _far_ci
from anomae.calibrate_events import BLOCK_S, _bootstrap
from anomae.events import event_bounds, resolve_post_rule
from anomae.spec import ModelCard
from anomae.verdict import is_anomalous

MIN_SPEARMAN = 0.999


class GateRefused(ValueError):
    """The int8 model would change the alarms; nothing was written. ``figures`` says why."""

    def __init__(self, message: str, figures: dict[str, Any]) -> None:
        super().__init__(message)
        self.figures = figures


@dataclass(frozen=True)
class GateSettings:
    """``min_spearman``: the least rank correlation of the scores; ``block``: windows per
    bootstrap block of the false-alarm interval; ``block_s``: seconds per bootstrap block
    of the false-events interval."""

    min_spearman: float = MIN_SPEARMAN
    block: int = 64
    block_s: float = BLOCK_S

    def __post_init__(self) -> None:
        if not 0.0 < self.min_spearman <= 1.0:
            raise ValueError(f"min_spearman must be in (0, 1], got {self.min_spearman}")
        if self.block < 1:
            raise ValueError(f"the bootstrap block must be >= 1 windows, got {self.block}")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ordinal ranks: ties among float scores are rare).

    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
    0.5
    """
    if a.size < 2:
        return float("nan")
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


def _events(scores: list[np.ndarray], thresholds: list[float], card: ModelCard) -> list[np.ndarray]:
    """The first window of each event the card's post-rule opens, per series."""
    rule, _ = resolve_post_rule(card.alarm, {})
    return [
        event_bounds(s / np.float32(t), rule)[0] for s, t in zip(scores, thresholds, strict=True)
    ]


def _events_figures(
    fp32: list[np.ndarray],
    int8: list[np.ndarray],
    thresholds: list[float],
    card: ModelCard,
    interval_s: float | None,
    settings: GateSettings,
) -> dict[str, Any]:
    th = card.threshold
    assert th is not None
    interval = interval_s or th.params.get("interval_s") or card.interval_s
    if not interval:
        return {"events_ok": False, "events_why": "no sampling interval to count events per day"}
    window_s = float(interval) * card.window.stride
    days = sum(s.size for s in fp32) * window_s / 86400.0
    block_w = max(1, int(round(settings.block_s / window_s)))
    per_series = np.array([-(-s.size // block_w) for s in fp32])
    offsets = np.concatenate([[0], np.cumsum(per_series)[:-1]])
    starts32 = _events(fp32, thresholds, card)
    starts8 = _events(int8, thresholds, card)
    blocks = np.concatenate(
        [o + f // block_w for o, f in zip(offsets, starts32, strict=True)] + [np.empty(0, np.int64)]
    ).astype(np.int64)
    ci = _bootstrap(blocks, int(per_series.sum()), lambda idx: idx.size / days)
    rate32 = sum(f.size for f in starts32) / days
    rate8 = sum(f.size for f in starts8) / days
    return {
        "series_days": round(days, 6),
        "events_per_day_fp32": rate32,
        "events_per_day_fp32_ci": [ci[0], ci[1]],
        "events_per_day_int8": rate8,
        "card_expected_false_events_per_day": th.expected_false_events_per_day,
        "events_ok": bool(ci[0] <= rate8 <= ci[1]),
    }


def gate_figures(
    fp32: Sequence[np.ndarray],
    int8: Sequence[np.ndarray],
    series: Sequence[str] | None,
    card: ModelCard,
    interval_s: float | None,
    settings: GateSettings = GateSettings(),
) -> dict[str, Any]:
    """The gate's figures for the window scores of the same series by both models
    (``series``: their names, for per-series thresholds; None: the card's ``value`` for
    all). ``passed`` says whether all of (a), (b) where it applies, and (c) hold."""
    th = card.threshold
    if th is None:
        raise ValueError("the gate compares alarms at the card's threshold: the card has none")
    f32 = [np.asarray(s, np.float32).reshape(-1) for s in fp32]
    i8 = [np.asarray(s, np.float32).reshape(-1) for s in int8]
    names = list(series) if series is not None else [""] * len(f32)
    thresholds = [th.for_series(n) if series is not None else th.value for n in names]
    both = [np.isfinite(a) & np.isfinite(b) for a, b in zip(f32, i8, strict=True)]
    ex32 = np.concatenate(
        [is_anomalous(a[k] / np.float32(t)) for a, k, t in zip(f32, both, thresholds, strict=True)]
    )
    ex8 = np.concatenate(
        [is_anomalous(b[k] / np.float32(t)) for b, k, t in zip(i8, both, thresholds, strict=True)]
    )
    a = np.concatenate([s[k] for s, k in zip(f32, both, strict=True)]).astype(np.float64)
    b = np.concatenate([s[k] for s, k in zip(i8, both, strict=True)]).astype(np.float64)
    ci = _far_ci(ex32, settings.block) or (0.0, 0.0)
    far8 = float(ex8.mean()) if ex8.size else float("nan")
    rho = spearman(a, b)
    rel = np.abs(b - a) / np.maximum(np.abs(a), np.finfo(np.float32).tiny)
    figures: dict[str, Any] = {
        "n_series": len(f32),
        "n_windows": int(a.size),
        "per_series_thresholds": bool(series is not None and th.per_series),
        "far_fp32": float(ex32.mean()) if ex32.size else float("nan"),
        "far_fp32_ci": [ci[0], ci[1]],
        "far_int8": far8,
        "far_ok": bool(ci[0] <= far8 <= ci[1]),
        "spearman": rho,
        "min_spearman": settings.min_spearman,
        "spearman_ok": bool(rho >= settings.min_spearman),
        "max_rel_error": float(rel.max()) if rel.size else float("nan"),
        "median_rel_error": float(np.median(rel)) if rel.size else float("nan"),
        "unscored_differ": int(
            sum((~np.isfinite(x) != ~np.isfinite(y)).sum() for x, y in zip(f32, i8, strict=True))
        ),
    }
    if th.expected_false_events_per_day is not None:
        figures.update(_events_figures(f32, i8, thresholds, card, interval_s, settings))
    figures["passed"] = bool(
        figures["far_ok"]
        and figures["spearman_ok"]
        and figures.get("events_ok", True)
        and figures["unscored_differ"] == 0
    )
    return figures


def gate_text(f: dict[str, Any]) -> str:
    """The figures in one paragraph (``anomae quantize`` prints it, ``inspect`` shows it)."""
    ci = f["far_fp32_ci"]
    text = (
        f"false alarms per window int8 {f['far_int8']:.3g} vs float32 {f['far_fp32']:.3g} "
        f"(95% CI {ci[0]:.3g}-{ci[1]:.3g}) {'ok' if f['far_ok'] else 'OUTSIDE'}; "
        f"Spearman {f['spearman']:.5f} (>= {f['min_spearman']:g} "
        f"{'ok' if f['spearman_ok'] else 'FAILED'}); max relative score error "
        f"{f['max_rel_error']:.3g}, median {f['median_rel_error']:.3g}; "
        f"{f['n_windows']:,} windows of {f['n_series']} series"
    )
    if "events_per_day_int8" in f:
        ec = f["events_per_day_fp32_ci"]
        text += (
            f"; false events per day int8 {f['events_per_day_int8']:.3g} vs float32 "
            f"{f['events_per_day_fp32']:.3g} (95% CI {ec[0]:.3g}-{ec[1]:.3g}) over "
            f"{f['series_days']:.3g} series-days {'ok' if f['events_ok'] else 'OUTSIDE'}"
        )
    elif "events_why" in f:
        text += f"; false events per day not checked: {f['events_why']}"
    if f.get("unscored_differ"):
        text += f"; {f['unscored_differ']} windows scored by one model only"
    return text


def speed_text(speed: dict[str, Any]) -> str:
    """The timing of :func:`anomae.quantize.measure_speed` in one sentence (``quantize``
    prints it, ``inspect`` shows it).

        >>> speed_text({"speedup": 0.97, "int8_us": 180.0, "fp32_us": 175.0,
        ...             "windows_per_call": 1024, "worth": False})  # doctest: +ELLIPSIS
        "int8 0.97x float32's speed (180 vs 175 us per call of 1,024 windows); no speed-up..."
    """
    text = (
        f"int8 {speed['speedup']:.2f}x float32's speed ({speed['int8_us']:,.0f} vs "
        f"{speed['fp32_us']:,.0f} us per call of {speed['windows_per_call']:,} windows)"
    )
    if not speed["worth"]:
        text += (
            "; no speed-up for this model (its matrix products are too small a share of "
            "the call): score with the float32 model"
        )
    return text


def refuse_unless_passed(figures: dict[str, Any], also: str = "") -> None:
    """Raise :class:`GateRefused` unless ``figures["passed"]`` (``also``: what else was
    tried and failed, appended to the figures)."""
    if not figures["passed"]:
        raise GateRefused(
            "the int8 model would change the alarms, so it was not written: "
            + gate_text(figures)
            + also
            + ". Keep the float32 model, or give more held-out normal data if the interval "
            "is too narrow to judge",
            figures,
        )
