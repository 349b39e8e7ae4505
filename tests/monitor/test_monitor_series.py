"""Per-series admission (anomae/monitor/series.py): order, duplicates, gaps, sequence
numbers, the series cap and idle eviction."""

from __future__ import annotations

from anomae.monitor.series import SeriesTable


def test_series_policy_out_of_order_duplicate_gap_seq_and_cap() -> None:
    t = SeriesTable(max_series=2, max_gap_seconds=100)
    names = ["a", "a", "a", "a", "b", "c", "a", "a"]
    ts = [0.0, 60.0, 30.0, 60.0, 0.0, 0.0, 500.0, 560.0]
    seq = [1, 2, None, 3, None, None, 7, 8]
    adm = t.admit(names, ts, seq, now=0.0)
    assert adm.index.tolist() == [0, 1, 4, 6, 7]
    assert adm.reset.tolist() == [True, False, True, True, False]
    drops = {k: v for k, v in t.dropped.items() if v}
    assert drops == {"out_of_order": 1, "duplicate": 1, "series_limit": 1}
    assert (t.gap_resets, t.seq_gaps, t.seq_missing) == (1, 1, 4)
    assert t.newest_ts == 560.0


def test_auto_gap_limit_follows_each_series_interval() -> None:
    t = SeriesTable(max_series=10)  # auto: 10x the typical interval
    ts = [float(i) for i in range(20)] + [25.0, 50.0]  # 6 s is no gap, 25 s is
    adm = t.admit(["a"] * len(ts), ts, [None] * len(ts), now=0.0)
    assert adm.reset.tolist() == [True] + [False] * 20 + [True]


def test_idle_series_are_evicted_and_their_slot_reused() -> None:
    t = SeriesTable(max_series=1)
    t.admit(["a"], [0.0], [None], now=0.0)
    assert t.evict_idle(now=5.0, ttl=10.0) == []
    assert t.evict_idle(now=20.0, ttl=10.0) == [(0, "a")]
    adm = t.admit(["b"], [0.0], [None], now=21.0)
    assert adm.slots.tolist() == [0] and adm.reset.tolist() == [True] and len(t) == 1
