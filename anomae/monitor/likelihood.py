"""The anomaly likelihood of many series at once, one micro-batch at a time.

:class:`LikelihoodBank` is :func:`anomae.likelihood.likelihood_scores` for the monitor: the
state of every series lives in arrays indexed by its slot, and a micro-batch of windows of
many series is processed with a few numpy operations per *round* (round ``r`` holds the
``r``-th window of each series in the batch, so several windows of one series are taken in
order). A test replays scores in random micro-batches and compares with the batch form.

State per slot: a ring of the last ``short`` scores (the short-term average) and, instead
of the last ``long`` averages themselves, their **blocks**: the fit at count ``c`` uses the
averages ``[c - long, c)``, and since fits happen at ``c = warmup + j * refit`` both ends of
that range fall on one of two residues modulo ``refit``. Averages are summed into blocks
cut at those indices (count, mean and squared deviations, Welford's update), and a fit
combines the blocks in its range (Chan's formula): the same mean and standard deviation as
the batch form's to rounding, in about ``2 * long / refit`` blocks per series (178 by
default, 5.7 KiB) rather than ``long`` averages (8640, 69 KiB).

    >>> import numpy as np
    >>> from anomae.likelihood import Likelihood, likelihood_scores
    >>> spec = Likelihood(short=3, long=50, warmup=20, refit=7)
    >>> raw = np.random.default_rng(0).gamma(4.0, 0.25, (2, 200))
    >>> bank = LikelihoodBank(spec)
    >>> slots = np.tile([0, 1], 200)                  # the two series interleaved
    >>> got = np.concatenate([bank.step(slots[i:i + 64], raw.T.reshape(-1)[i:i + 64])
    ...                       for i in range(0, 400, 64)])
    >>> want = likelihood_scores(raw[1], spec)
    >>> bool(np.allclose(got[1::2], want, rtol=1e-12, equal_nan=True))
    True

With ``season_s`` the bank needs the seconds between windows (``interval_s``: the monitor
takes the model card's sampling interval times the window stride, where batch scoring
measures each series' own) and keeps per series a ring of the last
``season * seasons + tolerance`` averages for the seasonal cap: 8 bytes per window of that
span (4.6 KiB for a day at one window every 5 minutes, two seasons), so it refuses a span
over :data:`MAX_SEASON_WINDOWS` windows.
"""

from __future__ import annotations

import math

import numpy as np

from anomae.likelihood import Likelihood

MAX_SEASON_WINDOWS = 100_000  # per series: 800 KB of averages for the seasonal cap


def occurrence(slots: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements have the same slot (0 for the first).

    >>> occurrence(np.array([3, 1, 3, 3, 1])).tolist()
    [0, 0, 1, 2, 1]
    """
    n = slots.shape[0]
    order = np.argsort(slots, kind="stable")
    s = slots[order]
    starts = np.flatnonzero(np.append(True, s[1:] != s[:-1]))
    first = np.repeat(starts, np.diff(np.append(starts, n)))
    out = np.empty(n, np.int64)
    out[order] = np.arange(n) - first
    return out


class LikelihoodBank:
    """Likelihood state of every series slot; :meth:`step` turns raw window scores into
    normalised likelihood scores (NaN while a series warms up and for NaN scores)."""

    # per slot (arrays grown by doubling in _alloc)
    _recent: np.ndarray  # [cap, short] the last scores, a ring (0 where not yet filled)
    _filled: np.ndarray  # scores in the ring
    _pos: np.ndarray  # where the next score goes
    _count: np.ndarray  # finite scores seen
    _mean: np.ndarray  # the last fit
    _std: np.ndarray
    _bn: np.ndarray  # the open block: count, first index, mean, sum of squared deviations
    _bstart: np.ndarray
    _bmean: np.ndarray
    _bm2: np.ndarray
    _head: np.ndarray  # where the next closed block goes in the ring
    _rn: np.ndarray  # [cap, blocks] closed blocks: count, first index, mean, M2
    _rstart: np.ndarray
    _rmean: np.ndarray
    _rm2: np.ndarray
    _past: np.ndarray  # [cap, span] averages for the seasonal cap, a ring by count

    def __init__(self, spec: Likelihood, interval_s: float | None = None) -> None:
        if spec.season_s and not (interval_s is not None and interval_s > 0):
            raise ValueError(
                f"the anomaly likelihood's season (season_s {spec.season_s:g}, from the model "
                f"card's alarm policy or the options) needs the seconds between windows, and "
                f"this model's card does not say how often its data was sampled (trained "
                f"before anomae recorded it): retrain it, or pass --likelihood-season-s 0 to "
                f"alarm without the season"
            )
        self._season, self._tol = spec.cycle(interval_s)
        span = self._season * spec.seasons + self._tol
        if span > MAX_SEASON_WINDOWS:
            raise ValueError(
                f"the anomaly likelihood's season spans {span} windows of {interval_s:g} s "
                f"(season_s {spec.season_s:g} x {spec.seasons} seasons): over "
                f"{MAX_SEASON_WINDOWS} per series; use a longer window stride, fewer seasons "
                f"or --likelihood-season-s 0"
            )
        self._span = span
        # offsets d (windows ago) the cap looks at: within tol of each season back
        self._back = (
            np.concatenate(
                [
                    np.arange(c * self._season - self._tol, c * self._season + self._tol + 1)
                    for c in range(1, spec.seasons + 1)
                ]
            ).astype(np.int64)
            if span
            else np.zeros(0, np.int64)
        )
        self.spec = spec
        r = spec.refit
        self._cuts = (spec.warmup % r, (spec.warmup - spec.long) % r)
        self._nb = 2 * (spec.long // r + 2)  # blocks a fit's range can span, with room
        self._log_eps = math.log(spec.epsilon)
        self._cap = 0
        self._alloc(64)

    def _alloc(self, cap: int) -> None:
        old, k, nb = self._cap, self.spec.short, self._nb

        def grow(name: str, shape: tuple[int, ...], dtype: type) -> None:
            new: np.ndarray = np.zeros((cap, *shape), dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)

        grow("_recent", (k,), np.float64)
        for name in ("_filled", "_pos", "_count", "_bn", "_bstart", "_head"):
            grow(name, (), np.int64)
        for name in ("_mean", "_std", "_bmean", "_bm2"):
            grow(name, (), np.float64)
        grow("_rn", (nb,), np.int64)
        grow("_rstart", (nb,), np.int64)
        grow("_rmean", (nb,), np.float64)
        grow("_rm2", (nb,), np.float64)
        grow("_past", (self._span,), np.float64)  # the averages for the seasonal cap, a ring
        self._cap = cap

    def step(self, slots: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Normalised likelihood scores (float64) of a batch of windows in arrival order."""
        out = np.full(scores.shape[0], np.nan)
        idx = np.flatnonzero(np.isfinite(scores))
        if idx.size == 0:
            return out
        s = slots[idx].astype(np.int64)
        x = scores[idx].astype(np.float64)
        top = int(s.max()) + 1
        if top > self._cap:
            self._alloc(max(top, 2 * self._cap))
        rank = occurrence(s)
        if not rank.any():  # one window per series: a single round
            out[idx] = self._round(s, x)
            return out
        order = np.argsort(rank, kind="stable")
        bounds = np.flatnonzero(np.diff(rank[order])) + 1
        for part in np.split(order, bounds):
            out[idx[part]] = self._round(s[part], x[part])
        return out

    def _round(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        """One finite score for each of the distinct slots ``s``."""
        sp = self.spec
        r, k = sp.refit, sp.short
        pos = self._pos[s]
        self._recent[s, pos] = x
        self._pos[s] = (pos + 1) % k
        filled = np.minimum(self._filled[s] + 1, k)
        self._filled[s] = filled
        avg = self._recent[s].sum(axis=1) / filled
        c = self._count[s]
        cut = (c > 0) & (((c - self._cuts[0]) % r == 0) | ((c - self._cuts[1]) % r == 0))
        if cut.any():
            self._close(s[cut], c[cut])
        out = np.full(s.shape[0], np.nan)
        judge = c >= sp.warmup
        if judge.any():
            fit = judge & ((c - sp.warmup) % r == 0)
            if fit.any():
                self._fit(s[fit], c[fit])
            sj = s[judge]
            mean = self._mean[sj]
            spread = sp.spread(mean, self._std[sj])
            norm = sp.normalised(avg[judge], mean, spread)
            if self._span:  # seen within tol of the same time of a past season: capped at 1
                seen = avg[judge] <= self._seen(sj, c[judge]) + spread
                norm = np.where(seen, np.minimum(norm, 1.0), norm)
            out[judge] = norm
        if self._span:
            self._past[s, c % self._span] = avg
        # Welford: the average joins the open block
        bn = self._bn[s] + 1
        bmean = self._bmean[s]
        d = avg - bmean
        bmean = bmean + d / bn
        self._bm2[s] += d * (avg - bmean)
        self._bmean[s], self._bn[s], self._count[s] = bmean, bn, c + 1
        return out

    def _seen(self, s: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The highest average of each slot ``d`` windows ago, over the cap's offsets ``d``
        (-inf where the series is younger); ``c`` averages were stored before."""
        d = self._back[None, :]
        vals = self._past[s[:, None], (c[:, None] - d) % self._span]
        return np.where(d <= c[:, None], vals, -np.inf).max(axis=1)

    def _close(self, s: np.ndarray, c: np.ndarray) -> None:
        """The open blocks of ``s`` end before count ``c``: into the ring, a new one opens."""
        h = self._head[s]
        self._rn[s, h] = self._bn[s]
        self._rstart[s, h] = self._bstart[s]
        self._rmean[s, h] = self._bmean[s]
        self._rm2[s, h] = self._bm2[s]
        self._head[s] = (h + 1) % self._nb
        self._bn[s], self._bmean[s], self._bm2[s], self._bstart[s] = 0, 0.0, 0.0, c

    def _fit(self, s: np.ndarray, c: np.ndarray) -> None:
        """Mean and standard deviation of the averages ``[c - long, c)`` of each slot."""
        n = self._rn[s]
        use = (n > 0) & (self._rstart[s] >= (c - self.spec.long)[:, None])
        w = np.where(use, n, 0).astype(np.float64)
        total = w.sum(axis=1)
        means = self._rmean[s]
        mean = (w * means).sum(axis=1) / total
        m2 = (np.where(use, self._rm2[s], 0.0) + w * (means - mean[:, None]) ** 2).sum(axis=1)
        self._mean[s] = mean
        self._std[s] = np.sqrt(m2 / total)

    def forget(self, slot: int) -> None:
        """The series of ``slot`` is gone (evicted): its slot starts afresh."""
        if slot >= self._cap:
            return
        for name in (
            "_recent", "_filled", "_pos", "_count", "_bn", "_bstart", "_head",
            "_mean", "_std", "_bmean", "_bm2", "_rn", "_rstart", "_rmean", "_rm2", "_past",
        ):  # fmt: skip
            getattr(self, name)[slot] = 0
