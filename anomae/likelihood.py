"""Anomaly likelihood: how improbable a series' recent scores are, given its own history.

A fixed threshold reads every score on one scale, but a series that drifts, or simply
reconstructs less well than the calibration data did, scores high for days and alarms again
and again. The anomaly likelihood (Ahmad, Lavin, Purdy & Agha, Neurocomputing 2017, the
alarm policy of Numenta's HTM detector) asks a relative question instead: is the
**short-term average** of the last ``short`` scores in the far upper tail of a normal
distribution fitted to the same averages over the previous ``long`` windows? Its tail
probability ``p`` becomes the normalised score ``log(p) / log(epsilon)``, above 1 exactly
when ``p < epsilon``, so the post-rules and the ``score / threshold > 1`` contract apply
unchanged. No labels are involved: ``epsilon`` is a design tail probability, like a
calibration quantile.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> raw = rng.gamma(4.0, 0.25, 3000)              # reconstruction errors of normal data
    >>> raw[2000:2010] += 30.0                        # a burst of badly reconstructed windows
    >>> norm = likelihood_scores(raw, Likelihood())
    >>> bool(np.isnan(norm[:100]).all())              # no verdict while history builds up
    True
    >>> int(np.argmax(norm > 1)), bool((norm[:2000] > 1).any())
    (2000, False)

Differences from Numenta's: the tail is one-sided (unusually *low* reconstruction errors
are not anomalies), and the fitted spread is at least ``min_spread`` times the fitted mean,
so a perfectly steady history does not turn the smallest wobble into an alarm.

Daily jobs (backups, batch loads) make a spike at the same time every day that a short
window model cannot know about, and a normal fit never learns that rare-but-regular is
normal. With ``season_s`` (the cycle, e.g. 86400 for a day) a window whose short-term
average is at most one fitted standard deviation above the highest one within
``tolerance_s`` of the same time in the last ``seasons`` cycles is capped at 1: it was seen
before, so it does not alarm. The caller gives the seconds between windows (``interval_s``),
since scores carry no clock.

Feed it scores of data the model was **not** trained on: in-sample errors are optimistic,
and against such a history the first new windows look anomalous (on NAB, starting the
history at the held-out rows instead of the training rows was worth 4 points).

:func:`likelihood_scores` does a whole series at once; :class:`LikelihoodChunks` does the
same for scores arriving in consecutive chunks (down to one score at a time), and
:class:`anomae.monitor.likelihood.LikelihoodBank` for many series of a stream (tests prove
all agree). Missing scores (NaN) give
NaN and are skipped: they enter neither the history nor the short-term average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_TINY = 1e-300  # the spread of a constant zero history: any increase is infinitely unlikely


@dataclass(frozen=True)
class Likelihood:
    """Settings: the last ``short`` scores are averaged and compared with a normal fit to
    the ``long`` averages before them (refitted every ``refit`` scores; no verdict before
    ``warmup`` scores); ``epsilon`` is the tail probability that alarms; the fitted standard
    deviation is at least ``min_spread`` times the fitted mean. ``season_s`` > 0 (seconds
    per cycle) caps at 1 what the last ``seasons`` cycles saw within ``tolerance_s``."""

    short: int = 5
    long: int = 8640
    warmup: int = 100
    refit: int = 100
    epsilon: float = 1e-5
    min_spread: float = 0.1
    season_s: float = 0.0
    seasons: int = 2
    tolerance_s: float = 1800.0

    def __post_init__(self) -> None:
        for name in ("short", "long", "refit"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"likelihood {name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 2:
            raise ValueError(f"likelihood warmup must be >= 2 scores, got {self.warmup}")
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"likelihood epsilon must be in (0, 1), got {self.epsilon}")
        if not self.min_spread >= 0.0:
            raise ValueError(f"likelihood min_spread must be >= 0, got {self.min_spread}")
        if not (self.season_s >= 0 and self.tolerance_s >= 0) or self.seasons < 1:
            raise ValueError("likelihood season_s and tolerance_s must be >= 0, seasons >= 1")
        if self.season_s and self.tolerance_s >= self.season_s:
            raise ValueError(
                f"likelihood tolerance_s ({self.tolerance_s:g}) must be below season_s "
                f"({self.season_s:g})"
            )

    def cycle(self, interval_s: float | None) -> tuple[int, int]:
        """``(season, tolerance)`` in windows at one window every ``interval_s`` seconds;
        ``(0, 0)`` without a season."""
        if not self.season_s:
            return 0, 0
        if interval_s is None or not interval_s > 0:
            raise ValueError(
                f"likelihood season_s needs the seconds between windows (interval_s > 0), "
                f"got {interval_s}"
            )
        season = round(self.season_s / interval_s)
        tol = min(round(self.tolerance_s / interval_s), season - 1)
        if season < 2:
            raise ValueError(
                f"likelihood season_s ({self.season_s:g}) spans {season} window(s) of "
                f"{interval_s:g} s: a cycle needs at least 2"
            )
        return season, tol

    def spread(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The fitted standard deviation, floored at ``min_spread`` times the mean."""
        return np.maximum(np.maximum(std, self.min_spread * np.abs(mean)), _TINY)

    def normalised(self, average: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """``log(p) / log(epsilon)`` for the upper-tail probability ``p`` of ``average``."""
        with np.errstate(over="ignore"):
            return log_upper_tail((average - mean) / spread) / math.log(self.epsilon)


# Numerical Recipes' erfc (Chebyshev fit, relative error < 1.2e-7 everywhere): its exponent is
# available directly, so log P(Z > z) never underflows, even 40 standard deviations out
_ERFC = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807,
         -1.13520398, 1.48851587, -0.82215223, 0.17087277)  # fmt: skip
_HUGE = 1e150  # beyond this z, x * x overflows: P(Z > z) is 0 (log -inf), P(Z > -z) is 1


def log_upper_tail(z: np.ndarray) -> np.ndarray:
    """``log P(Z > z)`` for a standard normal ``Z``, element-wise, finite for finite ``z``.

    >>> [round(float(v), 4) for v in np.exp(log_upper_tail(np.array([0.0, 1.0, -1.0])))]
    [0.5, 0.1587, 0.8413]
    """
    z = np.asarray(z, dtype=np.float64)
    x = np.minimum(np.abs(z), _HUGE) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = np.full_like(t, _ERFC[-1])
    for c in _ERFC[-2::-1]:
        poly = poly * t + c
    log_q = math.log(0.5) + np.log(t) - x * x + poly  # log P(Z > |z|)
    log_q = np.where(np.abs(z) >= _HUGE, -np.inf, log_q)
    return np.where(z >= 0, log_q, np.log1p(-np.exp(log_q)))


def likelihood_scores(
    scores: np.ndarray, spec: Likelihood = Likelihood(), interval_s: float | None = None
) -> np.ndarray:
    """Normalised likelihood score of every window of one series, in order (NaN before
    ``warmup`` finite scores and where the score is NaN); ``interval_s``, the seconds
    between windows, is needed with a ``season_s``."""
    season, tol = spec.cycle(interval_s)
    x = np.asarray(scores, dtype=np.float64).reshape(-1)
    out = np.full(x.size, np.nan)
    keep = np.flatnonzero(np.isfinite(x))
    v = x[keep]
    m = v.size
    if m <= spec.warmup:
        return out
    k = min(spec.short, m)
    avg = np.empty(m)
    # sums of k scores each, not differences of a running sum: no drift on long series
    avg[k - 1 :] = sliding_window_view(v, k).sum(axis=1) / k
    avg[: k - 1] = np.cumsum(v[: k - 1]) / np.arange(1, k)
    fits = np.arange(spec.warmup, m, spec.refit)
    mean = np.empty(fits.size)
    std = np.empty(fits.size)
    for j, f in enumerate(fits.tolist()):
        hist = avg[max(f - spec.long, 0) : f]  # the averages before this score, not itself
        mean[j], std[j] = hist.mean(), hist.std()
    which = np.searchsorted(fits, np.arange(spec.warmup, m), side="right") - 1
    spread = spec.spread(mean, std)[which]
    norm = spec.normalised(avg[spec.warmup :], mean[which], spread)
    if season:
        seen = _seasonal_max(avg, season, spec.seasons, tol)[spec.warmup :]
        norm = np.where(avg[spec.warmup :] <= seen + spread, np.minimum(norm, 1.0), norm)
    out[keep[spec.warmup :]] = norm
    return out


def _seasonal_max(avg: np.ndarray, p: int, seasons: int, tol: int) -> np.ndarray:
    """Per window ``t``: the highest average within ``tol`` windows of ``t - c * p`` for
    ``c`` in ``1..seasons`` (-inf where that lies before the series)."""
    m = avg.size
    back = p * seasons + tol
    padded = np.concatenate([np.full(back, -np.inf), avg])
    near = sliding_window_view(padded, 2 * tol + 1).max(axis=1)  # near[j]: padded[j..j+2tol]
    seen = np.full(m, -np.inf)
    for c in range(1, seasons + 1):
        # centred on t - c p, i.e. starting at padded index t - c p - tol + back
        seen = np.maximum(seen, near[np.arange(m) + back - c * p - tol])
    return seen


class LikelihoodChunks:
    """:func:`likelihood_scores` of one series whose scores arrive in consecutive chunks,
    for batch scoring in bounded memory: the same averages, fits and seasonal maxima over
    the same values, so the same numbers, keeping only the last ``short - 1`` scores and the
    last ``long`` (or seasonal span of) averages. (One difference: a series with more than
    ``warmup`` but fewer than ``short`` finite scores, which the whole-series form averages
    over all of them.)

        >>> spec = Likelihood(short=3, long=50, warmup=20, refit=7)
        >>> raw = np.random.default_rng(1).gamma(4.0, 0.25, 300)
        >>> lc = LikelihoodChunks(spec)
        >>> got = np.concatenate([lc.push(raw[i : i + 37]) for i in range(0, 300, 37)])
        >>> bool(np.array_equal(got, likelihood_scores(raw, spec), equal_nan=True))
        True
    """

    def __init__(self, spec: Likelihood = Likelihood(), interval_s: float | None = None) -> None:
        self.spec = spec
        self._season, self._tol = spec.cycle(interval_s)
        self._back = self._season * spec.seasons + self._tol if self._season else 0
        self._count = 0  # finite scores seen
        self._csum = 0.0  # running sum of the first short - 1 scores
        self._tail = np.empty(0)  # the last short - 1 finite scores
        self._hist = np.empty(0)  # the last max(long, back) averages
        self._fit = (math.nan, math.nan)  # mean and std of the last fit

    def push(self, scores: np.ndarray) -> np.ndarray:
        """Normalised likelihood scores of the next chunk of raw scores (float64)."""
        sp = self.spec
        x = np.asarray(scores, dtype=np.float64).reshape(-1)
        out = np.full(x.size, np.nan)
        keep = np.flatnonzero(np.isfinite(x))
        v = x[keep]
        m, c0, k = v.size, self._count, sp.short
        if m == 0:
            return out
        avg = np.empty(m)
        head = max(0, min(k - 1 - c0, m))  # scores before the first full short window
        if head:
            cs = np.cumsum(np.concatenate([[self._csum], v[:head]]))[1:]
            avg[:head] = cs / np.arange(c0 + 1, c0 + head + 1)
            self._csum = float(cs[-1])
        src = np.concatenate([self._tail, v])
        if m > head:
            lo = head + self._tail.size - k + 1
            win = sliding_window_view(src, k)[lo : lo + m - head]
            avg[head:] = win.sum(axis=1) / k
        self._tail = src[max(src.size - (k - 1), 0) :] if k > 1 else np.empty(0)
        allavg = np.concatenate([self._hist, avg])
        base = c0 - self._hist.size  # the series' index of allavg[0]
        start = max(c0, sp.warmup)
        if start < c0 + m:
            f0 = sp.warmup + -(-(start - sp.warmup) // sp.refit) * sp.refit
            fits = np.arange(f0, c0 + m, sp.refit)
            mean = np.empty(fits.size + 1)
            std = np.empty(fits.size + 1)
            mean[0], std[0] = self._fit
            for j, f in enumerate(fits.tolist(), start=1):
                hist = allavg[max(f - sp.long, 0) - base : f - base]
                mean[j], std[j] = hist.mean(), hist.std()
            if fits.size:
                self._fit = (float(mean[-1]), float(std[-1]))
            g = np.arange(start, c0 + m)
            which = np.searchsorted(fits, g, side="right")
            spread = sp.spread(mean, std)[which]
            a = avg[start - c0 :]
            norm = sp.normalised(a, mean[which], spread)
            if self._season:
                norm = self._cap(allavg, base, c0, m, start, a, norm, spread)
            out[keep[start - c0 :]] = norm
        self._count = c0 + m
        self._hist = allavg[max(allavg.size - max(sp.long, self._back), 0) :]
        return out

    def _cap(
        self,
        allavg: np.ndarray,
        base: int,
        c0: int,
        m: int,
        start: int,
        a: np.ndarray,
        norm: np.ndarray,
        spread: np.ndarray,
    ) -> np.ndarray:
        """The seasonal cap of :func:`likelihood_scores` for the averages ``c0..c0+m``."""
        p, tol, back = self._season, self._tol, self._back
        before = allavg[max(c0 - back, 0) - base : c0 - base]
        padded = np.concatenate([np.full(back - before.size, -np.inf), before,
                                 allavg[c0 - base :]])  # fmt: skip
        near = sliding_window_view(padded, 2 * tol + 1).max(axis=1)
        j = np.arange(start - c0, m) + back  # padded index of each judged average
        seen = np.full(j.size, -np.inf)
        for c in range(1, self.spec.seasons + 1):
            seen = np.maximum(seen, near[j - c * p - tol])
        return np.where(a <= seen + spread, np.minimum(norm, 1.0), norm)
