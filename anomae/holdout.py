"""Held-out rows: which row blocks of each training series are fitted on and which are
kept back for calibration (blocks spread over each series' span, or its tail)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from anomae.io import SeriesData

if TYPE_CHECKING:
    from anomae.pipeline import Pipeline


HOLDOUT_BLOCKS = 10  # blocks per series when the held-out rows are spread over its span


def split_holdout(
    series: list[SeriesData], holdout: float, spread: bool = True, min_rows: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Row blocks to fit and to calibrate on (:func:`split_holdout_named`, without names)."""
    fit_rows, cal_rows, _ = split_holdout_named(series, holdout, spread, min_rows)
    return fit_rows, cal_rows


def holdout_blocks(
    pipe: Pipeline, series: list[SeriesData], min_rows: int | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """:func:`split_holdout_named` as ``pipe``'s [calibrate] and [window] say (``min_rows``
    defaults to the window length)."""
    c = pipe.calibrate
    rows = min_rows or pipe.window.length
    return split_holdout_named(series, c.holdout, c.holdout_spread, min_rows=rows)


def split_holdout_named(
    series: list[SeriesData], holdout: float, spread: bool = True, min_rows: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Row blocks to fit and to calibrate on, ``holdout`` of each series held out.

    ``spread`` (the default) cuts each series into :data:`HOLDOUT_BLOCKS` equal blocks and
    holds out every ``1 / holdout``-th of them, so the calibration set samples the whole
    training span: a tail can be a quiet (or a busy) stretch, and a threshold fitted on a
    quiet tail flagged 87 % of later rows on held-out data. ``spread=False`` holds out
    each series' last rows, which a stream's alarm history needs (it must start on rows
    the model never saw, in time order). Blocks are never joined: no window crosses a cut.
    Series too short for ``HOLDOUT_BLOCKS`` blocks of ``min_rows`` rows (the window
    length) fall back to the tail split.

        >>> from anomae.io import SeriesData
        >>> s = SeriesData("m", "x", np.arange(100), np.arange(100.0)[:, None], None, None)
        >>> fit, cal, names = split_holdout_named([s], 0.2)
        >>> [int(b[0, 0]) for b in cal], sum(len(b) for b in cal), names
        ([40, 90], 20, ['m', 'm'])
        >>> fit, cal = split_holdout([s], 0.2, spread=False)
        >>> [int(b[0, 0]) for b in cal]
        [80]

    The third list names the series of each calibration block.
    """
    fit_rows: list[np.ndarray] = []
    cal_rows: list[np.ndarray] = []
    cal_names: list[str] = []
    for s in series:
        for lo, hi, held in holdout_bounds(s.values.shape[0], holdout, spread, min_rows):
            (cal_rows if held else fit_rows).append(s.values[lo:hi])
            if held:
                cal_names.append(s.name)
    return fit_rows, cal_rows, cal_names


def holdout_bounds(
    n: int, holdout: float, spread: bool = True, min_rows: int = 1
) -> list[tuple[int, int, bool]]:
    """The blocks of a series of ``n`` rows as ``(first row, end row, held out)``, in order
    (:func:`split_holdout_named`; the sampler of :mod:`anomae.sample` cuts by them too).

        >>> holdout_bounds(100, 0.2)[3:5], holdout_bounds(100, 0.2, spread=False)
        ([(30, 40, False), (40, 50, True)], [(0, 80, False), (80, 100, True)])
    """
    if holdout <= 0:
        return [(0, n, False)]
    k = HOLDOUT_BLOCKS if spread and n >= HOLDOUT_BLOCKS * max(min_rows, 1) else 1
    if k == 1:
        cut = int(round(n * (1.0 - holdout)))
        return [(0, cut, False), (cut, n, True)]
    edges = np.linspace(0, n, k + 1).round().astype(int)
    # block i is held out when the running count of held-out blocks steps up there
    return [
        (int(edges[i]), int(edges[i + 1]),
         math.floor((i + 1) * holdout + 1e-9) > math.floor(i * holdout + 1e-9))
        for i in range(k)
    ]  # fmt: skip
