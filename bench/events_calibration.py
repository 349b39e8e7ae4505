"""False events per series-day on fresh normal data: per-window methods vs ``events``.

Synthetic reconstruction-error-like scores (a squared, smoothed Gaussian: high values come
in runs, as overlapping windows give), one window a minute. Each method is calibrated on
100 series-days and the post-rule's events are counted on 500 fresh series-days.

    python bench/events_calibration.py
"""

from __future__ import annotations

import time

import numpy as np

from anomae.calibrate import calibrate
from anomae.calibrate_events import calibrate_events
from anomae.events import PostRule, event_bounds

DAY = 1440


def scores(rng: np.random.Generator, n: int) -> np.ndarray:
    kernel = 0.9 ** np.arange(40)
    x = np.convolve(rng.standard_normal(n + 39), kernel / np.linalg.norm(kernel), "valid")
    return x**2 + 0.1 * rng.gamma(2.0, 1.0, n)


def rate(series: list[np.ndarray], t: float, rule: PostRule) -> float:
    n = sum(event_bounds(s / t, rule)[0].size for s in series)
    return n / (sum(s.size for s in series) / DAY)


def main() -> None:
    rng = np.random.default_rng(1)
    cal = [scores(rng, 20 * DAY) for _ in range(5)]
    fresh = [scores(rng, 100 * DAY) for _ in range(5)]
    flat = np.concatenate(cal)
    print(
        f"{'method':<34}{'rule':>10}{'threshold':>11}{'expected/day [95% CI]':>24}"
        f"{'fresh/day':>11}{'s':>7}"
    )
    for rule in (PostRule(3), PostRule(3, max_gap=16), PostRule(1)):
        name = f"{rule.min_windows},{rule.max_gap}"
        for label, method, kw in (
            ("quantile q=0.995", "quantile", {"q": 0.995}),
            ("pot q=1e-4", "pot", {"q": 1e-4}),
        ):
            t0 = time.perf_counter()
            th = calibrate(flat, method, **kw)
            dt = time.perf_counter() - t0
            fresh_rate = rate(fresh, th.value, rule)
            print(f"{label:<34}{name:>10}{th.value:>11.4g}{'-':>24}{fresh_rate:>11.3g}{dt:>7.2f}")
        for budget in (1.0, 1 / 7, 0.05):
            t0 = time.perf_counter()
            th = calibrate_events(cal, budget, interval_s=60, rule=rule)
            dt = time.perf_counter() - t0
            fe = th.expected_false_events_per_day or 0.0
            lo, hi = th.expected_false_events_per_day_ci or (0.0, 0.0)
            label = f"events {budget:.3g}/day ({th.params['fit']})"
            print(
                f"{label:<34}{name:>10}{th.value:>11.4g}{f'{fe:.3g} [{lo:.2g}, {hi:.2g}]':>24}"
                f"{rate(fresh, th.value, rule):>11.3g}{dt:>7.2f}"
            )
    big = [scores(rng, 100 * DAY) for _ in range(10)]
    t0 = time.perf_counter()
    calibrate_events(big, 1 / 7, interval_s=60, min_windows=(1, 2, 3, 5))
    print(
        f"\nevents on 1,000 series-days (1.44M windows), 4 min_windows candidates: "
        f"{time.perf_counter() - t0:.1f}s"
    )


if __name__ == "__main__":
    main()
