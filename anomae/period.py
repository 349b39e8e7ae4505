"""A window as long as the data's period: ``[window] period = true``.

A reconstruction window shorter than one cycle of a periodic signal (an ECG beat, a
machine's stroke) sees part of a shape and cannot tell a malformed cycle from a normal one
seen at another phase. With ``period`` set, training lengthens the window to the period of
the training rows when they have a clear one (never shortens it): TSB-AD's rule (Liu &
Paparrizos, NeurIPS 2024), the autocorrelation's highest local maximum at lags
``MIN_LAG``-``MAX_LAG`` of the first ``SAMPLE`` rows, kept only when it is clear: at least
``CLEAR`` above the lowest autocorrelation at a shorter lag (a cycle's worth of decline and
return; a slowly decaying series has tall but flat wiggles, noise none). Over many
series and features the period is the median of those found, and is used only when at
least half of the (series, feature) pairs that vary have one. The model card records the
window it trained (``anomae inspect``), as any other. ``[tune] period`` adds the period to
the tuning grid's windows instead (:mod:`anomae.tune`). Measured in docs/benchmarks.md ("A
window as long as the period"): off in both recipes.

    >>> import numpy as np
    >>> t = np.arange(3000)
    >>> noise = np.random.default_rng(0).normal(0, 0.1, (3000, 1))
    >>> rows = np.sin(2 * np.pi * t / 50)[:, None] + noise
    >>> series_period(rows[:, 0])
    50
    >>> series_period(np.random.default_rng(1).normal(size=3000)) is None  # noise: no period
    True
    >>> data_period([rows, rows[:1000]])
    50
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

MIN_LAG, MAX_LAG = 3, 300  # TSB-AD's range of periods
SAMPLE = 20_000  # rows the autocorrelation is taken over (TSB-AD's)
CLEAR = 0.5  # the peak's rise above the lowest autocorrelation at a shorter lag


def autocorrelation(x: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray | None:
    """Autocorrelation at lags ``0..max_lag`` of the finite values among the first
    ``SAMPLE`` (by FFT), or None when they are too few or constant."""
    x = np.asarray(x, np.float64)[:SAMPLE]
    x = x[np.isfinite(x)]
    if x.size < 2 * max_lag:
        return None
    x = x - x.mean()
    if not np.any(x):
        return None
    f = np.fft.rfft(x, 2 * x.size)
    acf = np.fft.irfft(f * np.conj(f))[: max_lag + 1]
    return acf / acf[0]


def series_period(x: np.ndarray) -> int | None:
    """The clear period of one feature's values (module docstring), or None."""
    acf = autocorrelation(x, MAX_LAG + 1)
    if acf is None:
        return None
    lags = np.arange(MIN_LAG, MAX_LAG + 1)
    peaks = lags[(acf[lags] > acf[lags - 1]) & (acf[lags] > acf[lags + 1])]
    if peaks.size == 0:
        return None
    best = int(peaks[np.argmax(acf[peaks])])
    if acf[best] - acf[MIN_LAG : best + 1].min() < CLEAR:
        return None
    return best


def data_period(rows: Sequence[np.ndarray]) -> int | None:
    """The period of ``rows`` (one [n, features] array per series): the median of the
    clear periods of the (series, feature) pairs that vary, when at least half have one."""
    found: list[int] = []
    varying = 0
    for r in rows:
        for j in range(r.shape[1]):
            col = r[:, j]
            if np.nanmax(col, initial=-np.inf) <= np.nanmin(col, initial=np.inf):
                continue  # constant (or empty): no shape to see
            varying += 1
            p = series_period(col)
            if p is not None:
                found.append(p)
    if not found or 2 * len(found) < varying:
        return None
    return int(round(float(np.median(found))))


def period_window(pipe: Any, rows: Sequence[np.ndarray]) -> tuple[Any, int | None]:
    """``pipe`` with its window lengthened to the period of ``rows`` when ``[window]
    period`` is set and the period is longer (module docstring), and the period found
    (None: none, or not looked for)."""
    w = pipe.window
    if not w.period:
        return pipe, None
    found = data_period(rows)
    if found is None or found <= w.length:
        return pipe, found
    return dataclasses.replace(pipe, window=dataclasses.replace(w, length=found)), found
