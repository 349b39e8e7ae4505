"""Anomaly likelihood: known distributions, batch against stream, adaptation to drift."""

from __future__ import annotations

import math

import numpy as np
import pytest

from anomae.events import PostRule, event_bounds
from anomae.likelihood import Likelihood, LikelihoodChunks, likelihood_scores, log_upper_tail


@pytest.mark.parametrize(("short", "epsilon"), [(1, 1e-2), (1, 1e-3), (4, 1e-2), (10, 1e-2)])
def test_false_alarm_rate_on_normal_scores_is_epsilon(short: int, epsilon: float) -> None:
    # averages of normal scores are normal: the fraction of windows above 1 must be the
    # design tail probability (the averages overlap, so their exceedances come in runs)
    raw = np.random.default_rng(short).normal(10.0, 1.0, 200_000)
    spec = Likelihood(short=short, long=20_000, warmup=5_000, epsilon=epsilon, min_spread=0)
    norm = likelihood_scores(raw, spec)[spec.warmup :]
    rate = float((norm > 1).mean())
    assert rate == pytest.approx(epsilon, rel=0.35 if short > 1 else 0.15)


def test_skewed_scores_alarm_more_often_than_epsilon() -> None:
    # the normal fit is an approximation: squared errors have a heavier upper tail, and the
    # rate it gives is a lower bound that this test pins, so a change to the fit shows up
    raw = np.random.default_rng(0).chisquare(3, 200_000)
    spec = Likelihood(short=1, long=20_000, warmup=5_000, epsilon=1e-3)
    rate = float((likelihood_scores(raw, spec)[spec.warmup :] > 1).mean())
    assert 3e-3 < rate < 2e-2


def test_normalised_is_log_tail_over_log_epsilon() -> None:
    spec = Likelihood(epsilon=1e-4, min_spread=0.0)
    for z in (-3.0, 0.0, 1.0, 3.719, 6.0, 12.0):
        tail = 0.5 * math.erfc(z / math.sqrt(2.0))
        got = float(spec.normalised(np.array(5.0 + 2.0 * z), 5.0, 2.0))
        assert got == pytest.approx(math.log(tail) / math.log(1e-4), rel=1e-6)
    # P(Z > 3.719) = 1.0e-4: the alarm level sits at the tail probability epsilon
    assert float(spec.normalised(np.array(3.719), 0.0, 1.0)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("z", [-8.0, -2.5, -0.3, 0.0, 0.7, 2.0, 5.0, 9.0, 20.0, 37.0])
def test_log_upper_tail_against_erfc(z: float) -> None:
    want = math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    assert float(log_upper_tail(np.array(z))) == pytest.approx(want, rel=2e-7, abs=2e-7)


def test_far_tail_is_finite_and_monotone() -> None:
    assert float(log_upper_tail(np.array(1e200))) == -np.inf
    assert float(log_upper_tail(np.array(-1e200))) == 0.0
    z = np.linspace(-10.0, 80.0, 9001)
    v = log_upper_tail(z)
    assert np.isfinite(v).all() and (np.diff(v) < 0).all()
    # Mills ratio: log P(Z > 50) = -z^2/2 - log(z sqrt(2 pi)) + log(1 - 1/z^2 + 3/z^4)
    mills = -1250.0 - math.log(50.0 * math.sqrt(2.0 * math.pi)) + math.log1p(-1 / 2500 + 3 / 50**4)
    assert float(log_upper_tail(np.array(50.0))) == pytest.approx(mills, rel=1e-8)


def test_min_spread_floors_the_spread() -> None:
    steady = np.full(500, 2.0)
    steady[-1] = 2.02  # 1 % above a perfectly steady history
    quiet = likelihood_scores(steady, Likelihood(short=1, warmup=100, min_spread=0.1))
    loud = likelihood_scores(steady, Likelihood(short=1, warmup=100, min_spread=0.0))
    assert quiet[-1] < 1 < loud[-1] == np.inf
    # 2.02 is 0.1 spread-floors of 0.2 above the mean: z = 0.1, tail 0.46
    assert quiet[-1] == pytest.approx(math.log(0.4602) / math.log(1e-5), rel=1e-3)
    zeros = likelihood_scores(np.zeros(200), Likelihood(short=1, warmup=100, min_spread=0.1))
    assert zeros[100:] == pytest.approx(-math.log(2) / math.log(1e-5))  # z = 0: p = 1/2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    ("spec", "interval_s"),
    [
        (Likelihood(short=7, long=500, warmup=50, refit=13), None),
        (Likelihood(short=1, long=64, warmup=2, refit=1, min_spread=0.0), None),
        (Likelihood(short=30, long=8640, warmup=300, refit=100), None),
        (Likelihood(short=1, warmup=5, refit=7, season_s=100, seasons=3, tolerance_s=20), 10.0),
        (Likelihood(season_s=86400), 300.0),
    ],
)
def test_stream_equals_batch(seed: int, spec: Likelihood, interval_s: float | None) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(0.0, 1.0, 3000)
    raw[rng.random(raw.size) < 0.02] = np.nan
    raw[rng.integers(0, raw.size, 5)] *= 100.0
    raw[::288] += 50.0  # a daily job, for the seasonal cap
    raw[1000:1003] = np.inf  # not finite: skipped like NaN
    raw[:40] = 0.0  # a constant start: a zero spread must not give NaN
    batch = likelihood_scores(raw, spec, interval_s)
    lc = LikelihoodChunks(spec, interval_s)  # one score at a time, as a stream sees them
    stream = np.concatenate([lc.push(raw[i : i + 1]) for i in range(raw.size)])
    np.testing.assert_array_equal(np.isnan(batch), np.isnan(stream))
    np.testing.assert_allclose(batch, stream, rtol=1e-12, atol=0, equal_nan=True)


def test_a_daily_job_alarms_on_its_first_day_only() -> None:
    rng = np.random.default_rng(1)
    raw = rng.gamma(4.0, 0.25, 288 * 10)  # ten days of 5-minute windows
    jobs = np.arange(150, raw.size, 288) + rng.integers(-3, 4, 10)  # a few minutes late or early
    raw[jobs[:, None] + np.arange(6)] += 20.0
    raw[2000:2006] += 60.0  # once, at another time of day, and worse
    plain = likelihood_scores(raw, Likelihood())
    daily = likelihood_scores(raw, Likelihood(season_s=86400), interval_s=300)
    rule = PostRule(min_windows=1, cooldown=20)
    assert event_bounds(plain, rule)[0].size >= 8  # every day's job looks new
    starts = event_bounds(daily, rule)[0].tolist()
    assert starts == [jobs[0], 2000]
    day4 = slice(jobs[3], jobs[3] + 10)
    assert 0.5 < daily[day4].max() <= 1.0 < plain[day4].max()  # capped at 1, not zeroed


@pytest.mark.parametrize(
    ("spec", "interval_s", "message"),
    [
        (Likelihood(season_s=86400), None, "needs the seconds between windows"),
        (Likelihood(season_s=600, tolerance_s=0), 600.0, "a cycle needs at least 2"),
    ],
)
def test_a_season_needs_a_clock(spec: Likelihood, interval_s: float | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        likelihood_scores(np.ones(300), spec, interval_s)
    with pytest.raises(ValueError, match=message):
        LikelihoodChunks(spec, interval_s)
    assert Likelihood().cycle(None) == (0, 0)
    assert Likelihood(season_s=86400, tolerance_s=1800).cycle(300.0) == (288, 6)


def test_nan_scores_are_skipped_and_warmup_gives_no_verdict() -> None:
    raw = np.r_[np.ones(5), np.nan, np.ones(5)] + np.arange(11) * 0.01
    out = likelihood_scores(raw, Likelihood(warmup=8, refit=1))
    assert np.isnan(out[:9]).all()  # 8 finite scores (the NaN does not count) to warm up
    assert np.isfinite(out[9:]).all()
    assert np.isnan(likelihood_scores(np.full(4, np.nan))).all()
    assert likelihood_scores(np.array([])).shape == (0,)


def test_a_new_level_alarms_once_then_becomes_normal() -> None:
    rng = np.random.default_rng(7)
    raw = rng.gamma(4.0, 0.25, 6000)
    raw[3000:] += 20.0  # the series moves to a worse-reconstructed regime and stays there
    spec = Likelihood(long=1000)
    starts, _ = event_bounds(likelihood_scores(raw, spec), PostRule(min_windows=1))
    assert starts.size >= 1 and 3000 <= starts[0] < 3010
    assert (starts < 3000 + spec.long + spec.short).all()  # the history has absorbed it


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"short": 0}, "short must be >= 1"),
        ({"long": 0}, "long must be >= 1"),
        ({"refit": 0}, "refit must be >= 1"),
        ({"warmup": 1}, "warmup must be >= 2"),
        ({"epsilon": 0.0}, "epsilon must be in (0, 1)"),
        ({"epsilon": 1.0}, "epsilon must be in (0, 1)"),
        ({"min_spread": -1.0}, "min_spread must be >= 0"),
        ({"min_spread": math.nan}, "min_spread must be >= 0"),
        ({"season_s": -1.0}, "season_s and tolerance_s must be >= 0"),
        ({"seasons": 0}, "seasons >= 1"),
        ({"season_s": 600.0, "tolerance_s": 600.0}, "tolerance_s (600) must be below season_s"),
    ],
)
def test_settings_are_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Likelihood(**kwargs)  # type: ignore[arg-type]
