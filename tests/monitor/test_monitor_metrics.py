"""MonitorMetrics on an injected registry: per-series arrays turned into samples at scrape
time, a series removed leaves no stale label set, the counters add up as exported, and a
scrape never fails on a value (+Inf for huge counters, escaped series names)."""

from __future__ import annotations

import math

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from anomae.monitor.metrics import LATENCY_BUCKETS, MonitorMetrics

FEATURES = ("temp", "rpm", "flow")


def metrics(top_k: int = 2) -> tuple[MonitorMetrics, CollectorRegistry]:
    reg = CollectorRegistry()
    m = MonitorMetrics(reg, FEATURES, top_k=top_k)
    m.series_names.update({0: "a", 1: "b", 2: "c"})
    return m, reg


def score(reg: CollectorRegistry, series: str) -> float | None:
    return reg.get_sample_value("anomae_anomaly_score", {"series": series})


def test_the_last_window_of_each_series_wins() -> None:
    m, reg = metrics()
    slots = np.array([0, 1, 0])
    norm = np.array([0.5, 2.0, 1.5])
    ratio = np.array([[0.1, 0.9, 0.5], [3.0, 0.0, 1.0], [0.2, 0.3, 0.7]])
    m.update_series(slots, norm, ratio, np.array([False, True, True]))
    assert score(reg, "a") == 1.5 and score(reg, "b") == 2.0 and score(reg, "c") is None
    assert reg.get_sample_value("anomae_anomaly", {"series": "a"}) == 1.0
    ratios = {
        (s, f): reg.get_sample_value("anomae_feature_error_ratio", {"series": s, "feature": f})
        for s in ("a", "b") for f in FEATURES
    }  # fmt: skip
    assert ratios == {  # top 2 features of the last window only
        ("a", "temp"): None, ("a", "rpm"): 0.3, ("a", "flow"): 0.7,
        ("b", "temp"): 3.0, ("b", "rpm"): None, ("b", "flow"): 1.0,
    }  # fmt: skip


def test_a_removed_series_leaves_no_samples_and_alarms_clear() -> None:
    m, reg = metrics()
    m.update_series(np.array([0, 1]), np.ones(2) * 3, np.ones((2, 3)), np.array([True, True]))
    m.clear_alarm(1)
    assert reg.get_sample_value("anomae_anomaly", {"series": "b"}) == 0.0
    assert reg.get_sample_value("anomae_anomaly", {"series": "a"}) == 1.0
    m.remove_series(0)
    m.remove_series(99)  # a slot never seen: nothing to do
    m.clear_alarm(99)
    text = generate_latest(reg).decode()
    assert 'series="a"' not in text and score(reg, "b") == 3.0


def test_the_arrays_grow_beyond_their_first_capacity() -> None:
    m, reg = metrics(top_k=1)
    n = 200
    m.series_names.update({i: f"s{i}" for i in range(n)})
    m.update_series(np.array([5]), np.array([0.25]), np.ones((1, 3)), np.array([False]))
    slots = np.arange(n)
    m.update_series(slots, slots / 100, np.zeros((n, 3)), np.zeros(n, bool))
    assert score(reg, "s199") == 1.99 and score(reg, "s5") == 0.05 and score(reg, "s0") == 0.0


def test_counters_gauges_and_the_model() -> None:
    m, reg = metrics()
    m.set_model({"version": "1", "model_sha256": "ab12"}, 2.5, false_events_per_day=0.25)
    st = m.stats
    st.received, st.accepted, st.windows_scored = 10, 7, 3
    st.invalid["bad_json"] = 2
    st.dropped["queue_full"] = 1
    st.reloads["refused"] = 4
    m.other_shard = lambda: 5
    m.queue_depth, m.queue_capacity = (lambda: 6), 100
    m.series_count, m.series_limit = (lambda: 2), 50
    m.source_up = lambda: True
    get = reg.get_sample_value
    assert get("anomae_events_received_total") == 10.0
    assert get("anomae_events_accepted_total") == 7.0
    assert get("anomae_events_invalid_total", {"reason": "bad_json"}) == 2.0
    assert get("anomae_events_dropped_total", {"reason": "queue_full"}) == 1.0
    assert get("anomae_events_other_shard_total") == 5.0
    assert get("anomae_windows_scored_total") == 3.0
    assert get("anomae_model_reloads_total", {"result": "refused"}) == 4.0
    assert get("anomae_threshold") == 2.5
    assert get("anomae_expected_false_events_per_day") == 0.25
    assert get("anomae_queue_depth") == 6.0 and get("anomae_queue_capacity") == 100.0
    assert get("anomae_series") == 2.0 and get("anomae_series_limit") == 50.0
    assert get("anomae_source_up") == 1.0
    assert get("anomae_build_info", {"version": "1", "model_sha256": "ab12"}) == 1.0
    assert math.isnan(get("anomae_last_event_timestamp_seconds") or 0.0)
    m.set_model({"version": "1", "model_sha256": "ab12"}, 2.5)  # no calibration estimate
    assert math.isnan(get("anomae_expected_false_events_per_day") or 0.0)


def test_source_lag_is_exported_only_by_sources_that_have_one() -> None:
    m, reg = metrics()
    assert "anomae_source_lag_messages" not in generate_latest(reg).decode()
    m.source_lag = lambda: 42.0
    assert reg.get_sample_value("anomae_source_lag_messages") == 42.0


def test_latency_histogram_observed_an_array_at_a_time() -> None:
    m, reg = metrics()
    m.observe_scoring(0.002, 3, np.array([0.001, 0.003, 100.0]))
    m.observe_scoring(0.004, 0, np.array([]))
    get = reg.get_sample_value
    name = "anomae_event_to_score_seconds"
    assert get(f"{name}_bucket", {"le": "0.001"}) == 1.0  # le: a value on the bound counts
    assert get(f"{name}_bucket", {"le": "0.005"}) == 2.0
    assert get(f"{name}_bucket", {"le": repr(LATENCY_BUCKETS[-1])}) == 2.0
    assert get(f"{name}_bucket", {"le": "+Inf"}) == 3.0
    assert get(f"{name}_count") == 3.0 and get(f"{name}_sum") == 100.004
    assert get("anomae_scoring_duration_seconds_count") == 2.0
    assert get("anomae_batch_windows_sum") == 3.0


def test_the_scrape_survives_values_the_parser_would_refuse() -> None:
    reg = CollectorRegistry()
    m = MonitorMetrics(reg, ("temp",), top_k=1)
    m.series_names[0] = "m\ud800"
    m.update_series(np.array([0]), np.array([0.5]), np.array([[0.5]]), np.array([False]))
    m.stats.seq_missing = 10**400
    text = generate_latest(reg).decode()
    assert 'anomae_anomaly_score{series="m\\\\ud800"} 0.5' in text
    assert "anomae_sequence_missing_total +Inf" in text
