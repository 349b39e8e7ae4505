from __future__ import annotations

import numpy as np
import pytest

from anomae.events import PostRule, event_mask, find_events, is_anomalous

N = np.nan


@pytest.mark.parametrize(
    ("norm", "rule", "spans"),
    [
        ([0.5, 1.2, 1.5, 0.9], PostRule(1), [(1, 2)]),
        ([0.5, 1.2, 1.5, 0.9], PostRule(3), []),
        ([1.1, 1.1, 1.1], PostRule(3), [(0, 2)]),
        ([1.0, 1.0, 1.0], PostRule(1), []),  # exactly at the threshold is normal
        ([2, N, 2, 2], PostRule(2), [(2, 3)]),  # NaN (unobserved) breaks a run
        ([2, 0, 2, 0, 0, 2], PostRule(1, max_gap=1), [(0, 2), (5, 5)]),
        ([2, 0, 2, 0, 0, 2], PostRule(1, max_gap=2), [(0, 5)]),
        ([2, 2, 0, 2, 0, 2, 2], PostRule(2, max_gap=3), [(0, 6)]),
        ([], PostRule(1), []),
    ],
)
def test_post_rule_table(norm: list[float], rule: PostRule, spans: list[tuple[int, int]]) -> None:
    got = find_events(np.asarray(norm, dtype=np.float64), rule)
    assert [(s.first, s.last) for s in got] == spans
    mask = event_mask(len(norm), got)
    assert int(mask.sum()) == sum(b - a + 1 for a, b in spans)


def test_is_anomalous_handles_nan() -> None:
    assert is_anomalous(np.array([N, 1.5, 0.5, 1.0])).tolist() == [False, True, False, False]


def test_rule_validation() -> None:
    with pytest.raises(ValueError):
        PostRule(0)
