from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from anomae.calibrate import (
    CalibrationError,
    calibrate,
    calibrate_features,
    calibrate_quantile,
)


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


# --- every method against distributions whose thresholds are known exactly -----------------


# Lomax (Pareto II) with shape 3: survival (1 + x)^-3, a GPD tail with gamma = 1/3.
def _lomax3(r: np.random.Generator, n: int) -> np.ndarray:
    return r.random(n) ** (-1 / 3) - 1


# GPD with gamma = -0.25, sigma = 1: bounded tail, end point 4.
def _gpd_neg(r: np.random.Generator, n: int) -> np.ndarray:
    return -4.0 * (r.random(n) ** 0.25 - 1)


@pytest.mark.parametrize(
    ("method", "params", "sampler", "analytic", "rel"),
    [
        ("ksigma", {"k": 3.0}, lambda r, n: r.normal(5, 2, n), 5 + 3 * 2, 0.01),
        ("ksigma", {"k": 2.0}, lambda r, n: r.normal(1, 0.1, n), 1 + 2 * 0.1, 0.01),
        ("mad", {"k": 3.0}, lambda r, n: r.normal(5, 2, n), 5 + 3 * 2, 0.02),
        ("mad", {"k": 1.0}, lambda r, n: r.normal(10, 3, n), 10 + 3, 0.02),
        ("pot", {"q": 1e-3}, lambda r, n: r.exponential(2.0, n), -2.0 * np.log(1e-3), 0.1),
        ("pot", {"q": 1e-4}, lambda r, n: r.exponential(1.0, n), -np.log(1e-4), 0.1),
        ("pot", {"q": 1e-4, "init_quantile": 0.99}, lambda r, n: r.exponential(1.0, n), 9.21, 0.1),
        ("pot", {"q": 1e-3}, _lomax3, 1e-3 ** (-1 / 3) - 1, 0.1),
        ("pot", {"q": 1e-3}, _gpd_neg, -4.0 * (1e-3**0.25 - 1), 0.1),
        # 2 alarms a day at one row a minute: 1 window in 720
        ("fpr", {"alarms_per_day": 2, "interval_s": 60}, lambda r, n: r.exponential(1.0, n),
         np.log(720.0), 0.03),
        # stride 5: 5x fewer windows a day, so each may alarm 5x as often
        ("fpr", {"alarms_per_day": 2, "interval_s": 60, "stride": 5},
         lambda r, n: r.exponential(1.0, n), np.log(144.0), 0.03),
        ("fpr", {"rate": 0.01}, lambda r, n: r.uniform(0, 10, n), 9.9, 0.01),
    ],
)  # fmt: skip
def test_methods_match_known_distributions(  # type: ignore[no-untyped-def]
    method: str, params: dict, sampler, analytic: float, rel: float
) -> None:
    rng = np.random.default_rng(4)
    t = calibrate(sampler(rng, 200_000), method, **params)
    assert t.method == method
    assert t.value == pytest.approx(analytic, rel=rel)
    assert t.n_calibration == 200_000


@pytest.mark.parametrize(
    ("sampler", "gamma", "sigma"),
    [
        (lambda r, n: r.exponential(2.0, n), 0.0, 2.0),  # memoryless: excesses are Exp(2)
        (_lomax3, 1 / 3, None),
        (_gpd_neg, -0.25, None),
    ],
)
def test_pot_fits_the_tail_shape(sampler, gamma: float, sigma: float | None) -> None:  # type: ignore[no-untyped-def]
    t = calibrate(sampler(np.random.default_rng(5), 400_000), "pot", q=1e-3)
    assert t.params["gamma"] == pytest.approx(gamma, abs=0.06)
    if sigma is not None:
        assert t.params["sigma"] == pytest.approx(sigma, rel=0.08)
    assert t.params["n_peaks"] == pytest.approx(0.02 * 400_000, rel=0.01)
    assert t.expected_far == 1e-3
    json.dumps(t.params)  # plain floats: the card is JSON


@pytest.mark.parametrize(
    ("method", "params", "far"),
    [
        ("quantile", {"q": 0.99}, 0.01),
        ("pot", {"q": 2e-3}, 2e-3),
        ("fpr", {"rate": 0.02}, 0.02),
        ("ksigma", {}, None),  # measured: the exceedance fraction on the calibration scores
        ("mad", {}, None),
    ],
)
def test_expected_far_and_interval(method: str, params: dict, far: float | None) -> None:
    s = np.random.default_rng(6).gamma(2.0, 1.0, 50_000)
    t = calibrate(s, method, **params)
    seen = float(np.mean(s > t.value))
    assert t.expected_far == pytest.approx(seen if far is None else far)
    assert t.expected_far_ci is not None
    lo, hi = t.expected_far_ci
    assert 0 <= lo <= seen <= hi <= 1
    assert calibrate(s, method, block=0, **params).expected_far_ci is None


# --- the bootstrap interval -----------------------------------------------------------------


def _overlapping(rng: np.random.Generator, n: int, width: int = 32) -> np.ndarray:
    """Scores like overlapping windows': |moving average| of white noise, strongly
    autocorrelated, and marginally |N(0, 1)| so the true exceedance is erfc(v / sqrt 2)."""
    run = np.concatenate([[0.0], np.cumsum(rng.normal(size=n + width - 1))])
    return np.abs(run[width:] - run[:-width]) / math.sqrt(width)


def _coverage(block: int, reps: int = 60) -> float:
    hits = 0
    for seed in range(reps):
        t = calibrate(
            _overlapping(np.random.default_rng(seed), 20_000), "quantile", q=0.99, block=block
        )
        assert t.expected_far_ci is not None
        lo, hi = t.expected_far_ci
        hits += lo <= math.erfc(t.value / math.sqrt(2)) <= hi
    return hits / reps


def test_block_bootstrap_covers_the_true_rate_of_fresh_data() -> None:
    covered = _coverage(block=64)
    assert covered >= 0.8
    # resampling single windows ignores the runs and is overconfident: the reason for blocks
    assert _coverage(block=1) < covered - 0.25


def test_interval_narrows_with_more_data() -> None:
    widths = []
    for n in (10_000, 40_000, 160_000):
        lo, hi = calibrate(
            _overlapping(np.random.default_rng(1), n), "quantile", q=0.99
        ).expected_far_ci  # type: ignore[misc]
        widths.append(hi - lo)
    assert widths[0] > 1.5 * widths[1] > 1.5 * 1.5 * widths[2]


@pytest.mark.parametrize("method", ["quantile", "ksigma", "mad", "pot", "fpr"])
def test_deterministic(method: str) -> None:
    params = {"rate": 0.01} if method == "fpr" else {}
    s = _overlapping(np.random.default_rng(2), 30_000)
    assert calibrate(s, method, **params) == calibrate(s.copy(), method, **params)


def test_fast_on_100k_scores() -> None:
    s = _overlapping(np.random.default_rng(3), 100_000)
    labels = (np.arange(s.size) % 1000 < 5).astype(int)
    for method, params in [
        ("quantile", {}), ("ksigma", {}), ("mad", {}), ("pot", {}), ("fpr", {"rate": 1e-3}),
        ("f1", {"labels": labels}),
    ]:  # fmt: skip
        t0 = time.perf_counter()
        calibrate(s, method, **params)
        assert time.perf_counter() - t0 < 0.5, method  # ~10-20 ms measured; slack for CI load


# --- f1 -------------------------------------------------------------------------------------


def test_f1_separates_classes() -> None:
    rng = np.random.default_rng(7)
    s = np.concatenate([rng.uniform(0, 1, 5000), rng.uniform(2, 3, 50), rng.uniform(0, 1, 5000)])
    y = np.zeros(s.size, int)
    y[5000:5050] = 1
    t = calibrate(s, "f1", labels=y)
    assert s[y == 0].max() < t.value < s[y == 1].min()
    assert t.params == {"f1": 1.0, "n_anomalous": 50}
    assert t.expected_far == 0.0 and t.expected_far_ci == (0.0, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_f1_is_the_best_over_all_cuts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.1).astype(int)
    s = np.round(rng.normal(0, 1, 400) + 1.5 * y, 1)  # ties and overlapping classes
    s[rng.random(400) < 0.05] = np.nan  # unscorable windows drop out with their labels
    t = calibrate(s, "f1", labels=y)
    ok = np.isfinite(s)

    def f1(v: float) -> float:
        p = s[ok] > v
        tp = np.sum(p & (y[ok] == 1))
        return 2 * tp / (p.sum() + y[ok].sum())

    best = max(f1(v) for v in np.unique(s[ok]) - 1e-9)
    assert f1(t.value) == pytest.approx(best) == pytest.approx(t.params["f1"])
    assert t.expected_far == pytest.approx(np.mean(s[ok][y[ok] == 0] > t.value))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(100, int), "mark no scored window as anomalous.*label-free method"),
        (np.ones(100, int), "mark every scored window.*label-free method"),
        (np.zeros(99, int), "one label per score: 99 labels, 100 scores"),
        (np.full(100, 2), "must be 0 .normal. or 1"),
    ],
)
def test_f1_guards(labels: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        calibrate(np.arange(100.0), "f1", labels=labels)


def test_only_f1_takes_labels() -> None:
    with pytest.raises(CalibrationError, match="'quantile' takes no labels"):
        calibrate(np.arange(100.0), "quantile", labels=np.zeros(100))


# --- guards ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "kw", "n", "message"),
    [
        ("pot", {}, 300, r"found 6 peaks .* needs at least 10 to fit a tail: give at least 500 "
         r"calibration windows \(200 more\) or lower init_quantile to 0\.9666"),
        ("pot", {"init_quantile": 0.999}, 5000, r"at least 10,000 calibration windows "
         r"\(5,000 more\)"),
        ("pot", {"q": 0.05}, 5000, "below 0.95 or use method 'quantile' with q=0.95"),
        ("pot", {"q": 0}, 5000, r"pot q must be in \(0, 1\)"),
        ("pot", {"init_quantile": 1}, 5000, "init_quantile must be in"),
        ("fpr", {}, 5000, "exactly one of rate= .* or alarms_per_day="),
        ("fpr", {"rate": 0.1, "alarms_per_day": 1}, 5000, "exactly one of"),
        ("fpr", {"alarms_per_day": 1}, 5000, "needs interval_s > 0"),
        ("fpr", {"rate": 0.1, "interval_s": 60}, 5000, "interval_s only applies"),
        ("fpr", {"alarms_per_day": 2000, "interval_s": 60}, 5000, "rate per window must be in"),
        ("fpr", {"alarms_per_day": 1, "interval_s": 60, "stride": 0}, 5000, "stride must be"),
        ("fpr", {"rate": 1e-4}, 5000, "at least 10000 are needed; .* allow more false alarms"),
        ("ksigma", {"q": 0.9}, 5000, "bad parameters for method 'ksigma'.*it takes k, block"),
        ("ksigma", {"k": -1}, 5000, "k must be finite and >= 0"),
        ("mad", {"k": float("nan")}, 5000, "k must be finite"),
        ("f1", {}, 5000, "bad parameters for method 'f1'.*labels"),
    ],
)  # fmt: skip
def test_method_guards(method: str, kw: dict, n: int, message: str) -> None:
    s = np.random.default_rng(8).exponential(1.0, n)
    with pytest.raises(CalibrationError, match=message):
        calibrate(s, method, **kw)


def test_mad_of_discrete_scores() -> None:
    with pytest.raises(CalibrationError, match="median absolute deviation is 0.*'quantile'"):
        calibrate(np.r_[np.zeros(80), np.arange(1.0, 21.0)], "mad")


def test_all_zero_scores_give_a_positive_threshold() -> None:
    for method in ("quantile", "ksigma"):
        t = calibrate(np.zeros(1000), method)
        assert t.value > 0 and t.expected_far_ci == (0.0, 0.0)
        # quantile states its design rate; ties at the quantile leave fewer exceedances
        assert t.expected_far == (0.005 if method == "quantile" else 0.0)


# --- per-feature thresholds and calibrate_rows ----------------------------------------------


def test_per_feature_thresholds() -> None:
    rng = np.random.default_rng(9)
    fe = rng.exponential(1.0, (20_000, 3)) * np.array([1.0, 10.0, 0.1])
    th = calibrate_features(fe, ["temp", "rpm", "flow"], "quantile", q=0.99)
    assert list(th) == ["temp", "rpm", "flow"]
    for j, name in enumerate(th):
        assert th[name] == pytest.approx(np.quantile(fe[:, j], 0.99))
    pot = calibrate_features(fe, ("temp", "rpm", "flow"), "pot", q=1e-3)
    assert pot["rpm"] / pot["temp"] == pytest.approx(10, rel=0.15)


@pytest.mark.parametrize(
    ("fe", "features", "message"),
    [
        (np.ones((10, 2)), ["a", "b", "c"], r"must be \[n, 3\]"),
        (np.c_[np.arange(100.0), np.full(100, np.nan)], ["a", "b"], "feature 'b': no finite"),
    ],
)
def test_per_feature_errors(fe: np.ndarray, features: list[str], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        calibrate_features(fe, features, "quantile", q=0.9)
