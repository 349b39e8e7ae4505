"""The moving-block bootstrap interval of a false-alarm rate (anomae/bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.bootstrap import _far_ci


def test_interval_brackets_the_rate_and_is_reproducible() -> None:
    exceed = np.random.default_rng(1).random(5000) < 0.02
    ci = _far_ci(exceed, block=64)
    assert ci is not None
    lo, hi = ci
    assert lo <= exceed.mean() <= hi
    assert _far_ci(exceed, block=64) == ci  # fixed seed


def test_runs_widen_the_interval() -> None:
    """Exceedances in runs of 50 carry less evidence than scattered ones of the same rate."""
    scattered = np.zeros(10_000, bool)
    scattered[::50] = True
    runs = np.zeros(10_000, bool)
    for start in range(0, 10_000, 2500):
        runs[start : start + 50] = True
    assert scattered.mean() == runs.mean()
    lo_s, hi_s = _far_ci(scattered, block=64) or (0.0, 0.0)
    lo_r, hi_r = _far_ci(runs, block=64) or (0.0, 0.0)
    assert hi_r - lo_r > 3 * (hi_s - lo_s)


@pytest.mark.parametrize(("n", "block"), [(0, 64), (100, 0), (100, -1)])
def test_no_interval_without_data_or_blocks(n: int, block: int) -> None:
    assert _far_ci(np.zeros(n, bool), block=block) is None


def test_never_exceeded_gives_zero_interval() -> None:
    assert _far_ci(np.zeros(1000, bool), block=64) == (0.0, 0.0)
