"""Fleet vs per-series thresholds on a fleet whose machines differ (no torch, seconds).

Three series of one-minute rows with noise levels 0.5, 1 and 2 (a window's score is the
mean square of its values: a zero network, as in tests/test_calibrate_series.py), 4 days
of normal data to calibrate (events, one false event per series per week), then 20 fresh
days each with 20 bursts (x2.5 for 8 rows). Prints false events per series-day and bursts
detected, per series, with the fleet threshold for all and with each series' own.

    python bench/per_series_fleet.py
"""

from __future__ import annotations

import numpy as np

from anomae.calibrate_events import calibrate_events
from anomae.calibrate_series import calibrate_per_series
from anomae.events import PostRule, event_bounds

DAY = 1440
SCALES = {"quiet": 0.5, "mid": 1.0, "noisy": 2.0}


def window_scores(v: np.ndarray, length: int = 4) -> np.ndarray:
    sq = (v**2).mean(axis=1)
    return np.convolve(sq, np.ones(length) / length, "valid")


def main() -> None:
    rng = np.random.default_rng(0)
    cal = {n: window_scores(rng.normal(0, s, (4 * DAY, 3))) for n, s in SCALES.items()}
    rule = PostRule(3, max_gap=16)
    names = list(cal)
    fleet = calibrate_events(list(cal.values()), 1 / 7, interval_s=60, rule=rule)
    params = {"false_events_per_day": 1 / 7, "interval_s": 60.0, "rule": rule}
    th = calibrate_per_series(fleet, names, list(cal.values()), "events", params)
    print(f"fleet threshold {fleet.value:.3g}; own: {th.per_series}")
    print(
        f"{'series':<8}{'fleet: false/day':>18}{'detected':>10}{'own: false/day':>18}"
        f"{'detected':>10}"
    )
    for name, scale in SCALES.items():
        days = 20
        v = rng.normal(0, scale, (days * DAY, 3))
        starts = np.sort(rng.choice(np.arange(100, days * DAY - 100, 200), 20, replace=False))
        for s in starts:
            v[s : s + 8] *= 2.5
        sc = window_scores(v)
        row = f"{name:<8}"
        for t in (fleet.value, th.for_series(name)):
            first, last = event_bounds(sc / t, rule)
            # window w covers rows w..w+3: an event is true when it overlaps a burst
            overlap = np.array([(first <= s + 7) & (last + 3 >= s) for s in starts])
            false = int((~overlap.any(axis=0)).sum()) if first.size else 0
            hit = int(overlap.any(axis=1).sum()) if first.size else 0
            row += f"{false / days:>18.3g}{f'{hit}/20':>10}"
        print(row)

if __name__ == "__main__":
    main()
