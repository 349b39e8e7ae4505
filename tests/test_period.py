"""The period window (``[window] period``, ``[tune] period``): a clear period is found and
only a clear one; the window is lengthened to it, never shortened; tuning tries it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anomae.io import SeriesData
from anomae.period import MAX_LAG, data_period, period_window, series_period


def _wave(period: float, n: int = 4000, seed: int = 0, noise: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    beat = np.sin(2 * np.pi * t / period) + 0.5 * np.sin(4 * np.pi * t / period)
    return beat + rng.normal(0, noise, n)


@pytest.mark.parametrize("period", [5, 24, 50, 137, 290])
def test_a_clear_period_is_found(period: int) -> None:
    found = series_period(_wave(period))
    assert found is not None and abs(found - period) <= 1


def test_no_period_in_noise_a_random_walk_a_trend_or_a_constant() -> None:
    rng = np.random.default_rng(3)
    assert series_period(rng.normal(size=5000)) is None
    assert series_period(np.cumsum(rng.normal(size=5000))) is None  # tall flat wiggles
    assert series_period(np.linspace(0, 1, 5000)) is None
    assert series_period(np.ones(5000)) is None
    assert series_period(_wave(20)[:300]) is None  # too few rows for the lags
    assert series_period(_wave(MAX_LAG * 1.5, n=8000)) is None  # beyond the range


def test_the_period_of_many_series_and_features() -> None:
    a = np.column_stack([_wave(40, seed=1), _wave(40, seed=2), np.ones(4000)])
    b = np.column_stack([_wave(42, seed=3), np.random.default_rng(4).normal(size=4000),
                         np.ones(4000)])  # fmt: skip
    # 3 of the 4 varying pairs have a period (constants do not count): the median
    assert data_period([a, b]) == 40
    noisy = np.random.default_rng(5).normal(size=(4000, 3))
    # 1 of 4 varying pairs: no period for the data
    assert data_period([np.column_stack([_wave(40), noisy])]) is None
    assert data_period([np.ones((4000, 2))]) is None


def _pipe(recipe: str = "univariate", **window: Any) -> Any:
    from anomae.api import _pipeline

    return _pipeline(recipe, {"window": window} if window else {}, "test")


def test_the_window_is_lengthened_to_the_period_never_shortened() -> None:
    rows = [_wave(60)[:, None]]
    assert _pipe().window.period is False
    assert period_window(_pipe(), rows) == (_pipe(), None)  # not asked: not looked for
    longer, found = period_window(_pipe(period=True), rows)
    assert found == 60 and longer.window.length == 60 and longer.window.period
    same, found = period_window(_pipe(period=True, length=80), rows)
    assert found == 60 and same.window.length == 80
    noise = [np.random.default_rng(0).normal(size=(4000, 1))]
    flat, found = period_window(_pipe(period=True), noise)
    assert found is None and flat.window.length == 16


def test_fit_trains_the_period_window() -> None:
    pytest.importorskip("torch")
    import pandas as pd

    import anomae

    frame = pd.DataFrame({"timestamp": np.arange(3000) * 60, "x": _wave(30, n=3000)})
    model = anomae.fit(frame, recipe="univariate", period=True, epochs=1)
    assert model.window == 30
    assert anomae.fit(frame, recipe="univariate", epochs=1).window == 16


def _series(values: np.ndarray) -> SeriesData:
    n = values.shape[0]
    return SeriesData("s", "test", np.arange(n, dtype=np.int64) * 60 * 10**9, values, None,
                      np.arange(n))  # fmt: skip


def test_tuning_tries_the_period_when_the_held_out_blocks_can_hold_it() -> None:
    from anomae.api import _pipeline
    from anomae.tune import _with_period

    said: list[str] = []
    pipe = _pipeline("univariate", {"tune": {"window": [8, 16]}}, "test")
    section = _with_period(pipe, [_series(_wave(50, n=20000)[:, None])], said.append)
    assert section.window == (8, 16, 50) and "50 rows, is tried" in said[-1]
    # a 250-row period needs held-out blocks of 490 rows; 40 % of 1,000 rows are 400
    short = _with_period(pipe, [_series(_wave(250, n=1000)[:, None])], said.append)
    assert short.window == (8, 16) and "rows, is not tried" in said[-1]
    off = _pipeline("univariate", {"tune": {"window": [8, 16], "period": False}}, "test")
    assert _with_period(off, [_series(_wave(50, n=20000)[:, None])], said.append).window == (8, 16)
    noise = _series(np.random.default_rng(0).normal(size=(20000, 1)))
    assert _with_period(pipe, [noise], said.append).window == (8, 16)
