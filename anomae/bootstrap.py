"""Moving-block bootstrap interval of a false-alarm rate (see :mod:`anomae.calibrate`).

Windows of stride 1 overlap, so exceedances come in runs: whole blocks of consecutive
windows are resampled (200 resamples, fixed seed), not single windows.

    >>> import numpy as np
    >>> lo, hi = _far_ci(np.arange(1000) % 100 < 5, block=64)
    >>> lo < 0.05 < hi
    True
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_SEED = 0


def _far_ci(exceed: np.ndarray, block: int) -> tuple[float, float] | None:
    """95 % moving-block bootstrap interval of ``exceed.mean()`` (``exceed``: bool, in order)."""
    n = exceed.size
    if block <= 0 or n == 0:
        return None
    b = max(1, min(block, n // 4))  # keep at least 4 blocks so resamples can differ
    k = -(-n // b)
    run = np.concatenate([[0], np.cumsum(exceed, dtype=np.int64)])
    block_sums = run[b:] - run[:-b]  # exceedances in the block starting at each window
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    frac = np.empty(BOOTSTRAP_RESAMPLES)
    rows = max(1, 4_000_000 // k)  # bounds the index matrix on very long calibration sets
    for r in range(0, BOOTSTRAP_RESAMPLES, rows):
        m = min(rows, BOOTSTRAP_RESAMPLES - r)
        starts = rng.integers(0, block_sums.size, size=(m, k))
        frac[r : r + m] = block_sums[starts].sum(axis=1) / (k * b)
    lo, hi = np.quantile(frac, [0.025, 0.975])
    return float(lo), float(hi)
