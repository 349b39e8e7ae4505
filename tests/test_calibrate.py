from __future__ import annotations

import numpy as np
import pytest

from anomae.calibrate import CalibrationError, calibrate, calibrate_quantile


@pytest.mark.parametrize(
    ("sampler", "q", "analytic"),
    [
        (lambda r, n: r.exponential(2.0, n), 0.99, -2.0 * np.log(0.01)),
        (lambda r, n: r.exponential(1.0, n), 0.999, -np.log(0.001)),
        (lambda r, n: r.uniform(0, 10, n), 0.95, 9.5),
        (lambda r, n: np.abs(r.normal(0, 1, n)), 0.99, 2.5758293),
    ],
)
def test_quantile_matches_known_distributions(sampler, q: float, analytic: float) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    scores = sampler(rng, 400_000)
    t = calibrate_quantile(scores, q)
    assert t.value == pytest.approx(analytic, rel=0.02)
    assert t.method == "quantile" and t.params == {"q": q}
    assert t.n_calibration == scores.size
    assert t.expected_far == pytest.approx(1 - q)
    # the promise: about 1 - q of fresh normal scores exceed it
    fresh = sampler(rng, 400_000)
    assert np.mean(fresh > t.value) == pytest.approx(1 - q, rel=0.1)


def test_nan_scores_are_ignored() -> None:
    s = np.concatenate([np.arange(1, 1001, dtype=float), [np.nan] * 50])
    assert calibrate_quantile(s, 0.99).n_calibration == 1000


@pytest.mark.parametrize(
    ("scores", "kw", "message"),
    [
        (np.arange(50.0), {"q": 0.999}, "at least 1000 are needed"),
        (np.array([np.nan, np.nan]), {"q": 0.9}, "no finite calibration scores"),
        (np.arange(100.0), {"q": 1.5}, r"must be in \(0, 1\)"),
    ],
)
def test_calibration_errors(scores: np.ndarray, kw: dict, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        calibrate(scores, "quantile", **kw)


def test_unknown_method() -> None:
    with pytest.raises(CalibrationError, match="unknown calibration method 'magic'"):
        calibrate(np.arange(10.0), "magic")
