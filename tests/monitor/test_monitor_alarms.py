"""Streaming post-rules (anomae/monitor/alarms.py) give the batch post-rules' events."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from anomae.events import PostRule, event_bounds
from anomae.monitor.alarms import SeriesAlarms


@settings(max_examples=200, deadline=None)
@given(
    norm=st.lists(
        st.tuples(st.integers(0, 2), st.one_of(st.floats(0, 3), st.just(float("nan")))),
        min_size=1,
        max_size=90,
    ),
    cuts=st.lists(st.integers(0, 90), max_size=4),
    min_windows=st.integers(1, 3),
    max_gap=st.integers(0, 3),
    off=st.sampled_from([1.0, 0.8, 0.5]),
    cooldown=st.integers(0, 4),
)
def test_streaming_events_equal_batch_events(
    norm: list[tuple[int, float]],
    cuts: list[int],
    min_windows: int,
    max_gap: int,
    off: float,
    cooldown: int,
) -> None:
    """Three series interleaved, cut into random batches: per series, the same events as
    the batch post-rules, with their peak, length and top features."""
    rule = PostRule(min_windows, max_gap, off, cooldown)
    slots = np.array([s for s, _ in norm], np.int64)
    values = np.array([v for _, v in norm], np.float64)
    ts = np.arange(slots.size, dtype=np.float64)  # window i happens at time i
    fe = np.random.default_rng(1).random((slots.size, 3))
    al = SeriesAlarms(rule, ("a", "b", "c"), top_k=2)
    got: list[dict] = []
    bounds = sorted({0, slots.size, *[c for c in cuts if c < slots.size]})
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        names = [f"s{x}" for x in slots[a:b]]
        got += al.step_many(slots[a:b], names, ts[a:b], values[a:b], fe[a:b])[1]
    for s in range(3):
        got += al.finish(s, f"s{s}")
    for s in range(3):
        idx = np.flatnonzero(slots == s)
        mine = [e for e in got if e["series"] == f"s{s}"]
        first, last = event_bounds(values[idx], rule)
        assert [(e["start"], e["end"]) for e in mine] == [
            (float(idx[a]), float(idx[b])) for a, b in zip(first, last, strict=True)
        ]
        for e, a, b in zip(mine, first.tolist(), last.tolist(), strict=True):
            seg = values[idx[a : b + 1]]
            assert e["n_windows"] == b - a + 1
            assert e["peak"] == float(idx[a + int(np.nanargmax(seg))])
            assert e["peak_score_normalised"] == np.nanmax(seg)
            order = np.argsort(-fe[idx[a : b + 1]].sum(0), kind="stable")[:2]
            assert e["top_features"] == [("a", "b", "c")[j] for j in order]
    assert al.opened == len(got)
