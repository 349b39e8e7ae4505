"""Maximum-likelihood generalised Pareto fits (anomae/gpd.py)."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.gpd import MIN_PEAKS, fit_gpd


def _gpd_sample(shape: float, scale: float, n: int, seed: int = 0) -> np.ndarray:
    u = np.random.default_rng(seed).random(n)
    if shape == 0:
        return -scale * np.log1p(-u)
    return scale / shape * ((1.0 - u) ** -shape - 1.0)


@pytest.mark.parametrize(
    ("shape", "scale"),
    [(0.0, 1.0), (0.3, 2.0), (-0.3, 1.0), (0.6, 0.5)],
)
def test_recovers_shape_and_scale(shape: float, scale: float) -> None:
    got_shape, got_scale = fit_gpd(_gpd_sample(shape, scale, 50_000))
    assert got_shape == pytest.approx(shape, abs=0.03)
    assert got_scale == pytest.approx(scale, rel=0.05)


def test_scale_equivariant() -> None:
    y = _gpd_sample(0.2, 1.0, 5000, seed=3)
    s1, c1 = fit_gpd(y)
    s2, c2 = fit_gpd(1000.0 * y)
    assert s2 == pytest.approx(s1, abs=1e-6)
    assert c2 == pytest.approx(1000.0 * c1, rel=1e-6)


def test_min_peaks_is_what_calibration_refuses_below() -> None:
    from anomae.calibrate import CalibrationError, calibrate_pot

    scores = np.arange(1.0, 101.0)  # above the 0.9 quantile: 10 peaks at most
    with pytest.raises(CalibrationError, match=f"at least {MIN_PEAKS}"):
        calibrate_pot(scores, q=1e-3, init_quantile=0.95)
