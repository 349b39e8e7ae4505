from __future__ import annotations

import numpy as np
import pytest

from anomae.events import (
    EventTracker,
    PostRule,
    Span,
    alarm_policy,
    event_mask,
    find_events,
    is_anomalous,
    resolve_likelihood,
    resolve_post_rule,
    rule_text,
)

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


@pytest.mark.parametrize(
    ("norm", "rule", "spans"),
    [
        # hysteresis: opens above 1, holds above `off`
        ([0.5, 1.2, 0.9, 0.85, 0.7, 1.1], PostRule(1, off=0.8), [(1, 3), (5, 5)]),
        ([0.9, 0.95, 1.2, 1.3, 0.95, 0.5], PostRule(2, off=0.9), [(2, 4)]),
        ([1.2, 0.95, 1.2, 0.5], PostRule(2, off=0.9), []),  # holding never opens
        ([2, N, 2, 2], PostRule(1, off=0.5), [(0, 0), (2, 3)]),  # NaN closes
        # cool-down suppresses events starting within `cooldown` windows of the last end
        ([2, 0, 0, 2, 0, 0, 0, 0, 2], PostRule(1, cooldown=3), [(0, 0), (8, 8)]),
        ([2, 0, 0, 2, 0, 0, 0, 0, 2], PostRule(1, cooldown=2), [(0, 0), (3, 3), (8, 8)]),
        # merging happens before suppression
        ([2, 0, 2, 0, 0, 2], PostRule(1, max_gap=1, cooldown=3), [(0, 2)]),
        ([2, 0, 2, 0, 0, 2], PostRule(1, max_gap=1, cooldown=2), [(0, 2), (5, 5)]),
    ],
)
def test_hysteresis_and_cooldown_table(
    norm: list[float], rule: PostRule, spans: list[tuple[int, int]]
) -> None:
    got = find_events(np.asarray(norm, dtype=np.float64), rule)
    assert [(s.first, s.last) for s in got] == spans


@pytest.mark.parametrize("seed", range(40))
def test_stream_tracker_equals_batch(seed: int) -> None:
    """The monitor's per-window tracker and the batch scorer give the same events."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    # bursty scores: long quiet stretches, anomalies, values near both levels, NaN
    norm = rng.choice(
        [0.2, 0.7, 0.95, 1.05, 1.5, 3.0, np.nan], size=n, p=[0.4, 0.15, 0.1, 0.1, 0.15, 0.08, 0.02]
    )
    rule = PostRule(
        min_windows=int(rng.integers(1, 4)),
        max_gap=int(rng.integers(0, 5)),
        off=float(rng.choice([1.0, 0.9, 0.6])),
        cooldown=int(rng.choice([0, 0, 3, 10])),
    )
    tracker = EventTracker(rule)
    streamed: list[Span] = []
    active = []
    for v in norm:
        streamed += tracker.step(float(v))
        active.append(tracker.active)
    streamed += tracker.flush()
    assert streamed == find_events(norm, rule)
    # while live, the tracker is active only inside events that survive suppression
    mask = event_mask(n, streamed)
    assert not (np.array(active) & ~mask).any()


def test_skip_equals_quiet_steps_and_guards_its_precondition() -> None:
    a, b = EventTracker(PostRule(2)), EventTracker(PostRule(2))
    for _ in range(5):
        a.step(0.3)
    b.skip(5)
    for v in [1.5, 1.6, 0.2, 0.1, 0.1]:
        assert a.step(v) == b.step(v)
    assert a.flush() == b.flush()
    c = EventTracker(PostRule(2))
    c.step(1.5)  # a run above 1 is under way: skipping would lose it
    assert not c.idle
    with pytest.raises(ValueError, match="idle"):
        c.skip(1)


# the alarm policy in the model card
CARD_ALARM = {"post_rule": {"min_windows": 2, "max_gap": 16, "off": 0.8, "cooldown": 0}}


@pytest.mark.parametrize(
    ("alarm", "given", "rule", "source"),
    [
        ({}, {}, PostRule(3), "default default default default"),
        (CARD_ALARM, {}, PostRule(2, 16, 0.8, 0), "card card card card"),
        (
            CARD_ALARM,
            {"min_windows": None, "off": 1.0},
            PostRule(2, 16, 1.0, 0),
            "card card option card",
        ),
        (
            {"post_rule": {"max_gap": 4}},
            {"cooldown": 9},
            PostRule(3, 4, 1.0, 9),
            "default card default option",
        ),
    ],
)
def test_resolve_post_rule(alarm: dict, given: dict, rule: PostRule, source: str) -> None:
    got, src = resolve_post_rule(alarm, given)
    assert got == rule
    assert " ".join(src[k] for k in ("min_windows", "max_gap", "off", "cooldown")) == source
    assert rule_text(got, src).startswith(f"post-rule min_windows={rule.min_windows} (")


def test_resolve_post_rule_errors_name_the_source() -> None:
    with pytest.raises(ValueError, match="min_windows from the card.*min_windows must be >= 1"):
        resolve_post_rule({"post_rule": {"min_windows": 0}}, {})
    with pytest.raises(ValueError, match="off from the option"):
        resolve_post_rule({}, {"off": 2.0})
    with pytest.raises(ValueError, match="unknown post-rule setting"):
        resolve_post_rule({}, {"min_window": 2})


def test_alarm_policy_round_trips_through_the_resolvers() -> None:
    from anomae.likelihood import Likelihood

    lk = Likelihood(short=7, epsilon=1e-4)
    alarm = alarm_policy(PostRule(2, 16, 0.8, 0), lk)
    assert resolve_post_rule(alarm, {})[0] == PostRule(2, 16, 0.8, 0)
    assert resolve_likelihood(alarm, None, {}) == (lk, "card")
    assert resolve_likelihood(alarm, False, {}) == (None, "option")
    assert resolve_likelihood(alarm, None, {"epsilon": 1e-3})[0] == Likelihood(
        short=7, epsilon=1e-3
    )
    assert resolve_likelihood(CARD_ALARM, None, {"epsilon": 1e-3}) == (None, "default")
    assert resolve_likelihood(CARD_ALARM, True, {"short": 3}) == (Likelihood(short=3), "option")
    with pytest.raises(ValueError, match="invalid likelihood policy"):
        resolve_likelihood(alarm, None, {"epsilon": 2.0})
