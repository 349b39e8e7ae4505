"""Post-rules over one series' windows in chunks (anomae.stream_events.EventStream): however
the windows are cut, the settled in_event masks and the events equal the whole-series rule
(anomae.events.event_bounds), and each event's peak, length and top features are the
batch table's."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.events import PostRule, event_bounds, event_mask
from anomae.stream_events import EventStream, Windows

FEATURES = ("temp", "rpm", "flow")
SECOND = 10**9


def windows(norm: np.ndarray, seed: int = 0) -> Windows:
    n = norm.size
    ratio = np.random.default_rng(seed).uniform(0, 1, (n, 3)).astype(np.float32)
    return Windows(np.arange(n, dtype=np.int64) * 60 * SECOND, norm * 2, norm,
                   np.ones(n, np.float32), ratio, None)  # fmt: skip


def stream(w: Windows, cuts: list[int], rule: PostRule) -> tuple[np.ndarray, list[dict]]:
    es = EventStream("s", rule, FEATURES, top_k=2)
    masks, events, seen = [], [], 0
    for lo, hi in zip([0, *cuts], [*cuts, len(w)], strict=True):
        out, mask, ev = es.push(w.cut(lo, hi))
        assert (out is None and mask.size == 0) or len(out) == mask.size  # type: ignore[arg-type]
        if out is not None:
            assert out.ts[0] == w.ts[seen]  # settled windows come back in order, once
            seen += len(out)
        masks.append(mask)
        events += ev
    out, mask, ev = es.finish()
    masks.append(mask)
    events += ev
    assert seen + (len(out) if out is not None else 0) == len(w)
    return np.concatenate(masks), events


RULES = [
    PostRule(),
    PostRule(min_windows=3),
    PostRule(min_windows=2, max_gap=3),
    PostRule(min_windows=2, off=0.6),
    PostRule(min_windows=1, cooldown=4, max_gap=1),
]


@pytest.mark.parametrize("rule", RULES, ids=str)
@pytest.mark.parametrize("seed", range(6))
def test_any_chunking_gives_the_whole_series_events(rule: PostRule, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    norm = rng.uniform(0, 0.9, n).astype(np.float32)
    for start in rng.integers(0, n - 10, 12):  # bursts of various lengths, some near 1
        norm[start : start + rng.integers(1, 8)] = rng.uniform(0.5, 3.0)
    norm[rng.integers(0, n, 5)] = np.nan  # unscored windows
    w = windows(norm, seed)
    starts, ends = event_bounds(norm, rule)
    cuts = sorted(set(rng.integers(1, n, rng.integers(0, 30)).tolist()))
    mask, events = stream(w, cuts, rule)
    np.testing.assert_array_equal(mask, event_mask(n, (starts, ends)))
    assert [(e["start"], e["end"]) for e in events] == [
        (int(w.ts[a]), int(w.ts[b])) for a, b in zip(starts, ends, strict=True)
    ]
    for e, a, b in zip(events, starts.tolist(), ends.tolist(), strict=True):
        seg = norm[a : b + 1]
        assert e["n_windows"] == b - a + 1 and e["duration_s"] == (b - a) * 60.0
        assert e["peak_score_normalised"] == float(np.nanmax(seg))
        assert e["peak"] == int(w.ts[a + int(np.nanargmax(seg))])  # the first at the peak
        top = np.argsort(-w.ratio[a : b + 1].sum(0, dtype=np.float32), kind="stable")[:2]
        assert e["top_features"] == ";".join(FEATURES[i] for i in top)


def test_one_window_at_a_time_and_an_event_open_at_the_end() -> None:
    norm = np.array([0.1, 2.0, 2.5, 0.2, 3.0, 3.0, 3.0], np.float32)
    w = windows(norm)
    mask, events = stream(w, list(range(1, len(norm))), PostRule(min_windows=2))
    assert mask.tolist() == [False, True, True, False, True, True, True]
    assert [(e["n_windows"], e["peak_score_normalised"]) for e in events] == [(2, 2.5), (3, 3.0)]
    assert events[1]["peak"] == int(w.ts[4]) and all(e["series"] == "s" for e in events)


def test_a_quiet_series_holds_nothing_back() -> None:
    w = windows(np.full(1000, 0.1, np.float32))
    es = EventStream("q", PostRule(min_windows=3), FEATURES, top_k=1)
    out, mask, events = es.push(w)
    assert out is not None and len(out) == 1000 and not mask.any() and events == []
    assert es.finish()[0] is None
