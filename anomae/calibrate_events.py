"""Event-level calibration: a threshold and post-rule for a budget of false events per day.

An operator budgets false *events* per machine per week, not a per-window quantile: windows
of stride 1 overlap, so a per-window rate says little about how often the post-rules open
an event. :func:`calibrate_events` chooses the threshold *together with* the post-rule
(:class:`~anomae.events.PostRule`) so that held-out normal data is expected to raise
``false_events_per_day`` events per series per day.

How. An event opens when ``min_windows`` consecutive windows exceed ``t``, that is when the
running minimum of the scores over ``min_windows`` windows exceeds ``t``; the post-rules
(hysteresis, merging within ``max_gap``, cool-down) then decluster those up-crossings into
events. At a base level ``u`` (the ``init_quantile`` quantile of the running minimum,
lowered in steps of 0.01 down to the median until at least :data:`MIN_PEAKS` events exist)
the events of the calibration data are found with the same code scoring uses, and each
event's *peak* is the highest running minimum inside it: the event survives any ``t``
below its peak. The rate of events above ``t`` is then

* **empirical** where the budget allows at least as many events as the data has at ``u``:
  the lowest ``t`` (scanned down from ``u``) whose event count stays within the budget;
* **extrapolated** otherwise (the usual case): a generalised Pareto tail fitted to the peak
  excesses over ``u`` (peaks over threshold on declustered clusters), so
  ``rate(t) = n_u / days * (1 + gamma (t - u) / sigma) ^ (-1 / gamma)``, solved for the
  budget.

Data requirement. The rate may be extrapolated at most :data:`EXTRAPOLATION` (10) times
below what the data resolves (one event in its span): the data must cover at least
``1 / (10 * false_events_per_day)`` series-days (0.7 days for the default budget of one
false event per series per week), and hold at least :data:`MIN_PEAKS` events at the base
level; otherwise it is refused, saying how many days are needed.

``expected_false_events_per_day`` is the rate at the chosen threshold (the budget itself
when extrapolated); its 95 % interval comes from a block bootstrap: the data is cut into
blocks of ``block_s`` seconds per series (6 hours), blocks are resampled with replacement
(events with the block they start in, 200 resamples, fixed seed) and the rate at ``t`` is
re-estimated, tail refit included.

With several ``min_windows`` candidates (e.g. ``(1, 2, 3, 5)``) each gets its threshold and
the rule with the lowest one is kept. The sampling interval (seconds between rows) comes
from the data's timestamps; data without them needs ``interval_s``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> days = [rng.gamma(2.0, 1.0, 1440 * 10) for _ in range(3)]   # 3 series x 10 days
    >>> th = calibrate_events(days, false_events_per_day=0.5, interval_s=60)
    >>> th.method, th.post_rule["min_windows"], th.expected_false_events_per_day
    ('events', 3, 0.5)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from anomae.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, _far_ci
from anomae.errors import CalibrationError
from anomae.events import PostRule, event_bounds
from anomae.gpd import MIN_PEAKS, fit_gpd
from anomae.spec import Threshold

DEFAULT_FALSE_EVENTS_PER_DAY = 1.0 / 7.0  # one false event per series per week
EXTRAPOLATION = 10.0
LOWEST_BASE_QUANTILE = 0.5  # the base level may drop to the median for enough events
BLOCK_S = 6 * 3600.0
_SCAN_LEVELS = 200


def running_min(s: np.ndarray, m: int) -> np.ndarray:
    """``r[i] = min(s[i : i + m])``: window ``i`` starts a run of ``m`` above ``t`` iff
    ``r[i] > t`` (NaN stays NaN: an unscored window breaks a run)."""
    if m == 1 or s.size < m:
        return s.copy() if m == 1 else np.empty(0)
    return sliding_window_view(s, m).min(axis=1)


@dataclasses.dataclass(frozen=True)
class _Peaks:
    """Events at level ``u``: their peaks, and which bootstrap block each starts in."""

    u: float
    quantile: float
    peaks: np.ndarray
    blocks: np.ndarray


def _events_at(
    series: list[np.ndarray], t: float, rule: PostRule, block_w: int, offsets: np.ndarray
) -> _Peaks:
    peaks, blocks = [], []
    for i, s in enumerate(series):
        first, last = event_bounds(s / t, rule)
        if first.size == 0:
            continue
        r = running_min(s, rule.min_windows)
        # the highest run-minimum starting inside the event: above it no run of min_windows
        # windows exceeds t, so the event would not open
        hi = np.maximum(last - rule.min_windows + 2, first + 1)
        bounds = np.stack([first, np.minimum(hi, r.size)], axis=1).ravel()
        filled = np.where(np.isnan(r), -np.inf, r)
        pk = np.maximum.reduceat(np.append(filled, -np.inf), bounds)[::2]
        peaks.append(pk)
        blocks.append(offsets[i] + first // block_w)
    if not peaks:
        return _Peaks(t, 1.0, np.empty(0), np.empty(0, np.int64))
    return _Peaks(t, 1.0, np.concatenate(peaks), np.concatenate(blocks))


def _gpd_level(y: np.ndarray, ratio: float) -> tuple[float, float, float]:
    """(excess over u at tail probability ``ratio``, gamma, sigma) of the GPD fit to ``y``."""
    gamma, sigma = fit_gpd(y)
    if abs(gamma) < 1e-9:
        return -sigma * math.log(ratio), gamma, sigma
    return sigma / gamma * (ratio**-gamma - 1.0), gamma, sigma


def _gpd_rate(y: np.ndarray, n: int, days: float, excess: float) -> float:
    """Events per day above ``u + excess`` from peak excesses ``y`` (GPD refit)."""
    if n < 3 or not (y > 0).any():
        return float(n) / days if excess <= 0 else 0.0
    gamma, sigma = fit_gpd(y[y > 0])
    if abs(gamma) < 1e-9:
        tail = math.exp(-excess / sigma)
    else:
        base = 1.0 + gamma * excess / sigma
        tail = 0.0 if base <= 0 else base ** (-1.0 / gamma)
    return n / days * tail


def _bootstrap(
    blocks: np.ndarray, n_blocks: int, stat: Callable[[np.ndarray], float]
) -> tuple[float, float]:
    """95 % interval of ``stat(indices of the units in the resampled blocks)``."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    order = np.argsort(blocks, kind="stable")
    starts = np.searchsorted(blocks[order], np.arange(n_blocks + 1))
    out = np.empty(BOOTSTRAP_RESAMPLES)
    for r in range(BOOTSTRAP_RESAMPLES):
        pick = rng.integers(0, n_blocks, n_blocks)
        idx = [order[starts[b] : starts[b + 1]] for b in pick]
        out[r] = stat(np.concatenate(idx) if idx else np.empty(0, np.int64))
    lo, hi = np.quantile(out, [0.025, 0.975])
    return float(lo), float(hi)


def _base(
    series: list[np.ndarray],
    rule: PostRule,
    init_quantile: float,
    block_w: int,
    offsets: np.ndarray,
    days: float,
) -> _Peaks:
    r_all = np.concatenate([running_min(s, rule.min_windows) for s in series])
    r_all = r_all[np.isfinite(r_all)]
    if r_all.size == 0:
        raise CalibrationError("no finite calibration scores (is the calibration data empty?)")
    found = 0
    steps = np.arange(init_quantile, LOWEST_BASE_QUANTILE - 1e-9, -0.01)
    for q in steps.round(6).tolist():
        u = float(np.quantile(r_all, q))
        if u <= 0:
            continue
        p = _events_at(series, u, rule, block_w, offsets)
        found = max(found, p.peaks.size)
        if p.peaks.size >= MIN_PEAKS:
            return dataclasses.replace(p, quantile=q)
    need = days * MIN_PEAKS / max(found, 1)
    raise CalibrationError(
        f"method 'events' found {found} separate excursions (events at the base level) in "
        f"{days:.2f} series-days of calibration data with min_windows={rule.min_windows}; "
        f"fitting the tail needs at least {MIN_PEAKS}: give about {need:.1f} series-days of "
        f"held-out normal data, or use method 'quantile'"
    )


def _choose(
    series: list[np.ndarray],
    rule: PostRule,
    budget: float,
    days: float,
    init_quantile: float,
    block_w: int,
    offsets: np.ndarray,
) -> tuple[float, dict[str, Any], float, Callable[[np.ndarray], float], _Peaks]:
    """(threshold, fit params, expected rate, bootstrap statistic, units) for one rule."""
    base = _base(series, rule, init_quantile, block_w, offsets, days)
    allowed = budget * days
    n_u = base.peaks.size
    if allowed < n_u:
        y = base.peaks - base.u
        excess, gamma, sigma = _gpd_level(y[y > 0], allowed / n_u)
        t = base.u + excess
        params = {
            "fit": "gpd",
            "u": base.u,
            "u_quantile": base.quantile,
            "gamma": gamma,
            "sigma": sigma,
            "n_peaks": n_u,
        }

        def stat(idx: np.ndarray) -> float:
            return _gpd_rate(y[idx], idx.size, days, excess)

        return t, params, budget, stat, base
    # the budget allows more events than the base level shows: scan down from u
    r_all = np.concatenate([running_min(s, rule.min_windows) for s in series])
    levels = np.quantile(r_all[np.isfinite(r_all)], np.linspace(base.quantile, 0.5, _SCAN_LEVELS))
    best = base
    for lv in levels[1:]:
        if lv <= 0 or lv >= best.u:
            continue
        p = _events_at(series, float(lv), rule, block_w, offsets)
        if p.peaks.size > allowed:
            break
        best = p
    t = best.u
    peaks = best.peaks
    params = {"fit": "empirical", "n_events": int(peaks.size)}
    return t, params, peaks.size / days, lambda idx: idx.size / days, best


def resolvable(n: int, n_blocks: int, window_s: float, false_events_per_day: float) -> float:
    """The series-days that ``n`` windows of ``window_s`` seconds (in ``n_blocks`` held-out
    blocks) hold; a :class:`CalibrationError` that says how much more data (or which
    budget, or which other method) would do, when they cannot resolve the budget.
    :func:`anomae.train.step.train_step` asks before training, :func:`calibrate_events`
    again on the scores."""
    days = n * window_s / 86400.0
    need = 1.0 / (EXTRAPOLATION * false_events_per_day)
    if days < need:
        raise CalibrationError(
            f"a budget of {false_events_per_day:.3g} false events per series per day needs at "
            f"least {need:.2f} series-days of held-out normal data (1 / (10 x budget): the "
            f"rate is extrapolated at most 10 times beyond what the data resolves); got "
            f"{days:.2f} ({n_blocks} series or blocks, {n:,} windows of {window_s:g} s): give "
            f"{need - days:.2f} more series-days, raise false_events_per_day to at least "
            f"{1.0 / (EXTRAPOLATION * max(days, 1e-300)):.3g}, or calibrate per window "
            f'instead (--method quantile --q 0.99; pipelines: [calibrate] method = "quantile"; '
            f'anomae.fit: calibration={{"method": "quantile", "q": 0.99}})'
        )
    return days


def calibrate_events(
    series_scores: Sequence[np.ndarray] | np.ndarray,
    false_events_per_day: float = DEFAULT_FALSE_EVENTS_PER_DAY,
    interval_s: float | None = None,
    stride: int = 1,
    rule: PostRule | None = None,
    min_windows: Sequence[int] = (),
    init_quantile: float = 0.98,
    *,
    block: int = 64,
    block_s: float = BLOCK_S,
) -> Threshold:
    """Threshold and post-rule for ``false_events_per_day`` false events per series per day
    on normal ``series_scores`` (one array of window scores per series, in time order; a
    single array is one series), one row every ``interval_s`` seconds and one window every
    ``stride`` rows. ``rule`` gives ``max_gap``, ``off``, ``cooldown`` and the default
    ``min_windows`` (3); ``min_windows`` lists candidates to choose from. ``block`` is the
    per-window bootstrap block of ``expected_far`` (see :mod:`anomae.calibrate`)."""
    if not (math.isfinite(false_events_per_day) and false_events_per_day > 0):
        raise CalibrationError(f"false_events_per_day must be > 0, got {false_events_per_day}")
    if interval_s is None or not interval_s > 0:
        raise CalibrationError(
            f"method 'events' needs the sampling interval (seconds between rows) to count "
            f"events per day; the calibration data has no usable timestamps: set interval_s "
            f"(got {interval_s})"
        )
    if not 0.0 < init_quantile < 1.0:
        raise CalibrationError(f"events init_quantile must be in (0, 1), got {init_quantile}")
    rule = rule or PostRule(min_windows=3)
    candidates = sorted({int(m) for m in min_windows}) or [rule.min_windows]
    if candidates[0] < 1:
        raise CalibrationError(f"min_windows candidates must be >= 1, got {list(min_windows)}")
    if isinstance(series_scores, np.ndarray):
        series_scores = [series_scores]
    series = [np.asarray(s, dtype=np.float64).reshape(-1) for s in series_scores]
    series = [s for s in series if s.size]
    n = sum(s.size for s in series)
    if n == 0:
        raise CalibrationError("no calibration windows (is the calibration data empty?)")
    window_s = float(interval_s) * int(stride)
    days = resolvable(n, len(series), window_s, false_events_per_day)
    block_w = max(1, int(round(block_s / window_s)))
    per_series = np.array([-(-s.size // block_w) for s in series])
    offsets = np.concatenate([[0], np.cumsum(per_series)[:-1]])
    tried: dict[str, float] = {}
    best: tuple[float, PostRule, dict[str, Any], float, Any, _Peaks] | None = None
    for m in candidates:
        r = dataclasses.replace(rule, min_windows=m)
        t, params, rate, stat, units = _choose(
            series, r, false_events_per_day, days, init_quantile, block_w, offsets
        )
        tried[str(m)] = float(f"{t:.6g}")
        if best is None or t < best[0]:
            best = (t, r, params, rate, stat, units)
    assert best is not None
    t, chosen, params, rate, stat, units = best
    ci = _bootstrap(units.blocks, int(per_series.sum()), stat)
    all_s = np.concatenate(series)
    finite = all_s[np.isfinite(all_s)]
    if t <= 0:
        t = float(np.nextafter(0.0, 1.0))
    exceed = finite > t
    params = {
        **params,
        "interval_s": float(interval_s),
        "stride": int(stride),
        "series_days": round(days, 6),
    }
    if len(candidates) > 1:
        params["threshold_by_min_windows"] = tried
    return Threshold(
        value=float(t),
        method="events",
        params=params,
        n_calibration=int(finite.size),
        expected_far=float(exceed.mean()),
        expected_far_ci=_far_ci(exceed, block),
        false_events_per_day=float(false_events_per_day),
        post_rule=dataclasses.asdict(chosen),
        expected_false_events_per_day=float(rate),
        expected_false_events_per_day_ci=ci,
    )
