"""Event-level calibration: the threshold and post-rule meet a false-events-per-day budget."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.calibrate import CalibrationError, calibrate
from anomae.calibrate_events import calibrate_events, running_min
from anomae.events import PostRule, event_bounds

DAY = 1440  # windows per day at one row a minute, stride 1


def _scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """Reconstruction-error-like scores: a squared, smoothed Gaussian (runs of high values,
    as overlapping windows give) plus a little independent noise."""
    kernel = 0.9 ** np.arange(40)
    x = np.convolve(rng.standard_normal(n + 39), kernel / np.linalg.norm(kernel), "valid")
    return x**2 + 0.1 * rng.gamma(2.0, 1.0, n)


@pytest.fixture(scope="module")
def data() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(1)
    cal = [_scores(rng, 20 * DAY) for _ in range(5)]  # 100 series-days to calibrate on
    fresh = [_scores(rng, 100 * DAY) for _ in range(5)]  # 500 more to check against
    return cal, fresh


def _rate(series: list[np.ndarray], t: float, rule: PostRule) -> float:
    events = sum(event_bounds(s / t, rule)[0].size for s in series)
    return events / (sum(s.size for s in series) / DAY)


@pytest.mark.parametrize(
    ("budget", "rule", "fit"),
    [
        (1 / 7, PostRule(3), "gpd"),  # the default: extrapolated (14 events allowed)
        (0.05, PostRule(3, max_gap=16), "gpd"),  # 5 events allowed in 100 days
        (1.0, PostRule(1), "gpd"),
        (2.0, PostRule(3, off=0.8, cooldown=30), "gpd"),
        (60.0, PostRule(3), "empirical"),  # more events allowed than the tail holds
    ],
)
def test_fresh_normal_data_meets_the_budget(
    data: tuple[list[np.ndarray], list[np.ndarray]], budget: float, rule: PostRule, fit: str
) -> None:
    cal, fresh = data
    th = calibrate_events(cal, budget, interval_s=60, rule=rule)
    assert th.method == "events" and th.params["fit"] == fit
    assert th.false_events_per_day == budget
    assert th.post_rule == {
        "min_windows": rule.min_windows,
        "max_gap": rule.max_gap,
        "off": rule.off,
        "cooldown": rule.cooldown,
    }
    lo, hi = th.expected_false_events_per_day_ci  # type: ignore[misc]
    assert lo <= th.expected_false_events_per_day <= hi
    assert th.expected_false_events_per_day <= budget * 1.000001
    got = _rate(fresh, th.value, rule)
    assert 0.6 * budget <= got <= 1.6 * budget, (got, budget)
    if fit == "empirical":  # exactly the count on the calibration data
        assert _rate(cal, th.value, rule) == pytest.approx(th.expected_false_events_per_day)


def test_per_window_quantile_raises_many_false_events(
    data: tuple[list[np.ndarray], list[np.ndarray]],
) -> None:
    """Why the default changed: the old default (0.995 quantile, min_windows 3) gives
    about one false event per day on these normal scores; the events method one a week."""
    cal, fresh = data
    rule = PostRule(3)
    old = calibrate(np.concatenate(cal), "quantile", q=0.995).value
    new = calibrate_events(cal, interval_s=60, rule=rule).value
    assert _rate(fresh, old, rule) > 4 / 7  # more than 4 times the budget
    assert _rate(fresh, new, rule) < 0.25


def test_stride_and_interval_set_the_clock(data: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    cal, _ = data
    a = calibrate_events(cal, 0.5, interval_s=60, stride=1)
    b = calibrate_events(cal, 0.5, interval_s=30, stride=2)  # the same window interval
    c = calibrate_events(cal, 0.5, interval_s=10)  # a sixth of the days: a higher threshold
    assert a.value == b.value and a.params["series_days"] == 100
    assert c.value > a.value and c.params["series_days"] == pytest.approx(100 / 6, rel=1e-6)


def test_min_windows_search_keeps_the_lowest_threshold(
    data: tuple[list[np.ndarray], list[np.ndarray]],
) -> None:
    cal, _ = data
    th = calibrate_events(
        cal, 0.5, interval_s=60, rule=PostRule(3, max_gap=5), min_windows=(5, 1, 2)
    )
    tried = th.params["threshold_by_min_windows"]
    assert set(tried) == {"1", "2", "5"}
    best = min(tried, key=tried.get)
    assert th.value == pytest.approx(tried[best], rel=1e-5)
    assert th.post_rule["min_windows"] == int(best)
    assert th.post_rule["max_gap"] == 5
    # each candidate's threshold is the one calibrating for that rule alone
    alone = calibrate_events(cal, 0.5, interval_s=60, rule=PostRule(1, max_gap=5))
    assert tried["1"] == pytest.approx(alone.value, rel=1e-5)


def test_too_little_data_is_refused_with_the_days_needed() -> None:
    rng = np.random.default_rng(2)
    short = [_scores(rng, DAY // 4) for _ in range(2)]  # 0.5 series-days
    with pytest.raises(CalibrationError) as err:
        calibrate_events(short, 1 / 7, interval_s=60)
    msg = str(err.value)
    assert "needs at least 0.70 series-days" in msg and "got 0.50 (2 series or blocks" in msg
    assert "or calibrate per window instead (--method quantile" in msg
    assert "give 0.20 more series-days" in msg and "at least 0.2" in msg
    # a budget the data can resolve is accepted
    assert calibrate_events(short, 1.0, interval_s=60).value > 0


def test_too_few_excursions_is_refused() -> None:
    s = np.full(10 * DAY, 1.0)
    s[[1000, 5000, 9000]] = 5.0  # three bursts of a constant series
    for i in (1000, 5000, 9000):
        s[i : i + 5] = 5.0
    with pytest.raises(
        CalibrationError, match=r"found 3 separate excursions.*about 33\.3 series-days"
    ):
        calibrate_events([s], 1 / 7, interval_s=60)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"interval_s": None}, "needs the sampling interval"),
        ({"interval_s": 60, "false_events_per_day": 0.0}, "false_events_per_day must be > 0"),
        ({"interval_s": 60, "min_windows": (0, 2)}, "candidates must be >= 1"),
        ({"interval_s": 60, "init_quantile": 1.0}, "init_quantile must be in"),
    ],
)
def test_guards(kw: dict, message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        calibrate_events([np.ones(100)], **kw)


def test_dispatch_and_determinism(data: tuple[list[np.ndarray], list[np.ndarray]]) -> None:
    cal, _ = data
    one = calibrate(cal[0], "events", false_events_per_day=0.5, interval_s=60)
    assert one == calibrate_events([cal[0]], 0.5, interval_s=60)
    assert one.params["series_days"] == 20


def test_running_min() -> None:
    s = np.array([3.0, 1.0, 4.0, 5.0, np.nan, 2.0])
    assert running_min(s, 1).tolist()[:4] == [3.0, 1.0, 4.0, 5.0]
    np.testing.assert_array_equal(running_min(s, 2), [1.0, 1.0, 4.0, np.nan, np.nan])
    assert running_min(s[:2], 3).size == 0
