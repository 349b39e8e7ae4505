"""The monitor daemon in-process, with a numpy stand-in for the detector: golden /metrics,
promtool, micro-batching, caps, backpressure, reloads and the HTTP endpoints (TLS too)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from anomae.events import PostRule
from anomae.monitor.app import MonitorError, open_source, source_options
from anomae.monitor.daemon import Monitor, MonitorOptions
from anomae.monitor.series import SeriesTable
from anomae.monitor.sink import JsonlSink
from anomae.monitor.sources.base import Emit, Raw, RawBatch, Source
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec

REQUIRE = os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1"


class FakeDetector:
    """Scores a window by its mean square (per feature: ``feature_error``), in numpy."""

    def __init__(
        self,
        features: tuple[str, ...] = ("temp", "rpm"),
        length: int = 3,
        th: float = 1.0,
        sha: str = "ab12",
        delay: float = 0.0,
    ) -> None:
        n = len(features)
        self.card = ModelCard(
            features,
            WindowSpec(length, 1),
            Scaler((0.0,) * n, (1.0,) * n),
            threshold=Threshold(th, "quantile", {"q": 0.99}, 10),
        )
        self.path, self.sha256, self.delay = "fake.onnx", sha, delay
        self.calls = 0

    @property
    def threshold(self) -> float:
        assert self.card.threshold is not None
        return self.card.threshold.value

    def run(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        obs = ~np.isnan(rows)
        sq = np.where(obs, rows, 0.0) ** 2
        fe = sq.sum(1) / np.maximum(obs.sum(1), 1)
        score = sq.sum((1, 2)) / obs.sum((1, 2))
        cov = obs.mean((1, 2))
        f32 = np.float32
        return score[:, None].astype(f32), fe[:, None].astype(f32), cov[:, None].astype(f32)


class ListSource(Source):
    """Emits its items (then waits for stop when ``hold``)."""

    kind = "list"

    def __init__(self, items: list[Any], block: bool = True, hold: bool = False) -> None:
        super().__init__()
        self.items, self.block, self.hold = items, block, hold
        self.refused = 0

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.up = True
        for item in self.items:
            if not emit(item, self.block):
                self.refused += len(item.payloads) if isinstance(item, RawBatch) else 1
        if self.hold:
            stop.wait()
        self.up = False


def line(series: str, ts: float, temp: float | None, rpm: float | None = 0.0) -> bytes:
    return json.dumps({"series": series, "ts": ts, "values": {"temp": temp, "rpm": rpm}}).encode()


GOLDEN_INPUT = [
    line("m1", 0, 0.0),
    line("m2", 0, 0.1),
    line("m1", 60, 0.0),
    line("m2", 60, 0.1),
    b"{broken",
    line("m1", 120, 0.0),
    line("m1", 120, 0.0),  # duplicate
    line("m2", 30, 0.1),  # out of order
    line("m2", 120, 0.1),
    line("m1", 180, 3.0),  # window: temp (0, 0, 3), rpm 0 -> mean square 9 / 6 = 1.5
    line("m2", 180, 0.1, 1.0),
    b'{"series": "m3", "ts": 0, "values": {"temp": "hot"}}',
]

GOLDEN = [
    "# TYPE anomae_scoring_duration_seconds histogram",
    'anomae_scoring_duration_seconds_bucket{le="0.0005"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.001"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.0025"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.005"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.01"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.025"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.05"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.1"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.25"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="0.5"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="1.0"} 1.0',
    'anomae_scoring_duration_seconds_bucket{le="+Inf"} 1.0',
    "anomae_scoring_duration_seconds_count 1.0",
    "anomae_scoring_duration_seconds_sum 0.0",
    "# TYPE anomae_batch_windows histogram",
    'anomae_batch_windows_bucket{le="1.0"} 0.0',
    'anomae_batch_windows_bucket{le="4.0"} 1.0',
    'anomae_batch_windows_bucket{le="16.0"} 1.0',
    'anomae_batch_windows_bucket{le="64.0"} 1.0',
    'anomae_batch_windows_bucket{le="256.0"} 1.0',
    'anomae_batch_windows_bucket{le="1024.0"} 1.0',
    'anomae_batch_windows_bucket{le="4096.0"} 1.0',
    'anomae_batch_windows_bucket{le="16384.0"} 1.0',
    'anomae_batch_windows_bucket{le="+Inf"} 1.0',
    "anomae_batch_windows_count 1.0",
    "anomae_batch_windows_sum 4.0",
    "# TYPE anomae_build_info gauge",
    'anomae_build_info{features="2",model_sha256="ab12",stride="1"'
    ',threshold_method="quantile",version="0.1.0",window="3"} 1.0',
    "# TYPE anomae_anomaly_score gauge",
    'anomae_anomaly_score{series="m1"} 1.5',
    'anomae_anomaly_score{series="m2"} 0.17166666686534882',
    "# TYPE anomae_anomaly gauge",
    'anomae_anomaly{series="m1"} 0.0',
    'anomae_anomaly{series="m2"} 0.0',
    "# TYPE anomae_feature_error_ratio gauge",
    'anomae_feature_error_ratio{feature="temp",series="m1"} 3.0',
    'anomae_feature_error_ratio{feature="rpm",series="m1"} 0.0',
    'anomae_feature_error_ratio{feature="rpm",series="m2"} 0.3333333432674408',
    'anomae_feature_error_ratio{feature="temp",series="m2"} 0.010000000707805157',
    "# TYPE anomae_threshold gauge",
    "anomae_threshold 1.0",
    "# TYPE anomae_expected_false_events_per_day gauge",
    "anomae_expected_false_events_per_day NaN",
    "# TYPE anomae_events_received_total counter",
    "anomae_events_received_total 12.0",
    "# TYPE anomae_events_accepted_total counter",
    "anomae_events_accepted_total 8.0",
    "# TYPE anomae_events_invalid_total counter",
    'anomae_events_invalid_total{reason="too_large"} 0.0',
    'anomae_events_invalid_total{reason="bad_json"} 1.0',
    'anomae_events_invalid_total{reason="not_object"} 0.0',
    'anomae_events_invalid_total{reason="missing_series"} 0.0',
    'anomae_events_invalid_total{reason="bad_series"} 0.0',
    'anomae_events_invalid_total{reason="bad_timestamp"} 0.0',
    'anomae_events_invalid_total{reason="future_timestamp"} 0.0',
    'anomae_events_invalid_total{reason="bad_values"} 0.0',
    'anomae_events_invalid_total{reason="unknown_feature"} 0.0',
    'anomae_events_invalid_total{reason="bad_seq"} 0.0',
    'anomae_events_invalid_total{reason="wrong_type"} 1.0',
    "# TYPE anomae_events_dropped_total counter",
    'anomae_events_dropped_total{reason="out_of_order"} 1.0',
    'anomae_events_dropped_total{reason="duplicate"} 1.0',
    'anomae_events_dropped_total{reason="series_limit"} 0.0',
    'anomae_events_dropped_total{reason="queue_full"} 0.0',
    'anomae_events_dropped_total{reason="shutdown"} 0.0',
    'anomae_events_dropped_total{reason="scoring_error"} 0.0',
    "# TYPE anomae_events_other_shard_total counter",
    "anomae_events_other_shard_total 0.0",
    "# TYPE anomae_window_resets_total counter",
    "anomae_window_resets_total 0.0",
    "# TYPE anomae_sequence_gaps_total counter",
    "anomae_sequence_gaps_total 0.0",
    "# TYPE anomae_sequence_missing_total counter",
    "anomae_sequence_missing_total 0.0",
    "# TYPE anomae_windows_scored_total counter",
    "anomae_windows_scored_total 4.0",
    "# TYPE anomae_anomalous_windows_total counter",
    "anomae_anomalous_windows_total 1.0",
    "# TYPE anomae_anomalies_total counter",
    "anomae_anomalies_total 1.0",
    "# TYPE anomae_model_reloads_total counter",
    'anomae_model_reloads_total{result="ok"} 0.0',
    'anomae_model_reloads_total{result="refused"} 0.0',
    'anomae_model_reloads_total{result="error"} 0.0',
    "# TYPE anomae_event_to_score_seconds histogram",
    'anomae_event_to_score_seconds_bucket{le="0.001"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.0025"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.005"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.01"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.025"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.05"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.1"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.25"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="0.5"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="1.0"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="2.5"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="5.0"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="10.0"} 4.0',
    'anomae_event_to_score_seconds_bucket{le="+Inf"} 4.0',
    "anomae_event_to_score_seconds_count 4.0",
    "anomae_event_to_score_seconds_sum 0.0",
    "# TYPE anomae_queue_depth gauge",
    "anomae_queue_depth 0.0",
    "# TYPE anomae_queue_capacity gauge",
    "anomae_queue_capacity 65536.0",
    "# TYPE anomae_series gauge",
    "anomae_series 2.0",
    "# TYPE anomae_series_limit gauge",
    "anomae_series_limit 10000.0",
    "# TYPE anomae_source_up gauge",
    "anomae_source_up 0.0",
    "# TYPE anomae_last_event_timestamp_seconds gauge",
    "anomae_last_event_timestamp_seconds 180.0",
    "# TYPE anomae_feature_mean_shift gauge",
    'anomae_feature_mean_shift{feature="temp"} 0.7999999523162842',
    'anomae_feature_mean_shift{feature="rpm"} 0.25',
    "# TYPE anomae_feature_std_ratio gauge",
    'anomae_feature_std_ratio{feature="temp"} 1.2708265777575085',
    'anomae_feature_std_ratio{feature="rpm"} 0.4330127018922193',
    "# TYPE anomae_feature_out_of_range_ratio gauge",
    'anomae_feature_out_of_range_ratio{feature="temp"} NaN',
    'anomae_feature_out_of_range_ratio{feature="rpm"} NaN',
    "# TYPE anomae_score_quantile gauge",
    'anomae_score_quantile{q="0.5"} 0.0883333336096257',
    'anomae_score_quantile{q="0.9"} 1.101500000059605',
    'anomae_score_quantile{q="0.99"} 1.4601500000059602',
    "# TYPE anomae_calibration_score_quantile gauge",
    'anomae_calibration_score_quantile{q="0.5"} NaN',
    'anomae_calibration_score_quantile{q="0.9"} NaN',
    'anomae_calibration_score_quantile{q="0.99"} NaN',
    "# TYPE anomae_series_events_total counter",
    'anomae_series_events_total{series="m1"} 1.0',
    "# TYPE anomae_model_trained_timestamp_seconds gauge",
    "anomae_model_trained_timestamp_seconds NaN",
    "# TYPE anomae_model_training_data_start_timestamp_seconds gauge",
    "anomae_model_training_data_start_timestamp_seconds NaN",
    "# TYPE anomae_model_training_data_end_timestamp_seconds gauge",
    "anomae_model_training_data_end_timestamp_seconds NaN",
]


def run_monitor(
    items: list[Any],
    det: FakeDetector | None = None,
    opts: MonitorOptions | None = None,
    sink: JsonlSink | None = None,
    source: Source | None = None,
) -> tuple[Monitor, CollectorRegistry]:
    reg = CollectorRegistry()
    mon = Monitor(
        det or FakeDetector(),
        source or ListSource(items),
        reg,
        opts or MonitorOptions(rule=PostRule(min_windows=1), stats_log_seconds=0),
        sink=sink,
        clock=lambda: 0.0,
    )
    assert mon.run(threading.Event()) == 0
    return mon, reg


def exposition(reg: CollectorRegistry) -> str:
    """The exposition without HELP texts and the wall-clock ``_created`` samples."""
    text = generate_latest(reg).decode()
    keep = [x for x in text.splitlines() if "_created" not in x and not x.startswith("# HELP")]
    return "\n".join(keep) + "\n"


def test_golden_metrics_for_a_fixed_input(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "out.jsonl")
    mon, reg = run_monitor([RawBatch(GOLDEN_INPUT, received=0.0)], sink=sink)
    text = exposition(reg)
    (tmp_path / "metrics.txt").write_text(text)
    assert text.splitlines() == GOLDEN, text
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    windows = [r for r in records if r["type"] == "window"]
    assert [(w["series"], w["ts"]) for w in windows] == [
        ("m1", "1970-01-01T00:02:00Z"),
        ("m2", "1970-01-01T00:02:00Z"),
        ("m1", "1970-01-01T00:03:00Z"),
        ("m2", "1970-01-01T00:03:00Z"),
    ]
    assert windows[2]["is_anomaly"] and windows[2]["anomaly"]
    assert windows[2]["top_features"] == ["temp", "rpm"] and windows[2]["score_normalised"] == 1.5
    assert "# HELP anomae_anomaly_score " in generate_latest(reg).decode()
    events = [r for r in records if r["type"] == "event"]
    assert events == [
        {
            "type": "event",
            "series": "m1",
            "start": "1970-01-01T00:03:00Z",
            "end": "1970-01-01T00:03:00Z",
            "peak": "1970-01-01T00:03:00Z",
            "peak_score_normalised": 1.5,
            "duration_s": 0.0,
            "n_windows": 1,
            "top_features": ["temp", "rpm"],
        }
    ]


@pytest.mark.skipif(shutil.which("promtool") is None and not REQUIRE, reason="no promtool")
def test_promtool_accepts_the_metrics(tmp_path: Path) -> None:
    _, reg = run_monitor([RawBatch(GOLDEN_INPUT, received=0.0)])
    r = subprocess.run(
        ["promtool", "check", "metrics"], input=generate_latest(reg), capture_output=True
    )
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r


def test_windows_are_scored_in_micro_batches() -> None:
    det = FakeDetector()
    lines = [line(f"s{i}", t, 0.1) for t in range(10) for i in range(50)]
    opts = MonitorOptions(batch_size=128, flush_ms=1000, stats_log_seconds=0)
    mon, _ = run_monitor([RawBatch(lines[a : a + 100]) for a in range(0, 500, 100)], det, opts)
    assert mon.metrics.stats.windows_scored == 50 * 8
    assert det.calls <= 5  # 400 windows in batches of >= 128 (the last one at the end)


def test_series_cap_drops_and_counts_what_is_over_it() -> None:
    lines = [line(s, t, 0.1) for t in range(5) for s in ("a", "b", "c")]
    opts = MonitorOptions(max_series=2, stats_log_seconds=0)
    mon, reg = run_monitor([RawBatch(lines)], opts=opts)
    assert mon.table.dropped["series_limit"] == 5
    assert 'series="c"' not in generate_latest(reg).decode()


def test_gap_resets_the_window() -> None:
    lines = [line("a", t, 0.1) for t in (0, 1, 2, 3, 100, 101, 102)]
    opts = MonitorOptions(max_gap_seconds=10, stats_log_seconds=0)
    mon, _ = run_monitor([RawBatch(lines)], opts=opts)
    assert mon.metrics.stats.window_resets == 1
    assert mon.metrics.stats.windows_scored == 2 + 1  # (0..3) and (100..102)


def test_flood_from_a_live_source_is_bounded_and_every_drop_counted() -> None:
    det = FakeDetector(delay=0.02)  # a slow scorer
    lines = [line(f"s{i % 100}", i // 100, 0.1) for i in range(20_000)]
    src = ListSource([RawBatch(lines[a : a + 50]) for a in range(0, 20_000, 50)], block=False)
    opts = MonitorOptions(queue_size=500, batch_size=256, stats_log_seconds=0)
    depths: list[int] = []
    reg = CollectorRegistry()
    mon = Monitor(det, src, reg, opts)
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            depths.append(mon.queue.depth)
            time.sleep(0.001)

    threading.Thread(target=sample, daemon=True).start()
    assert mon.run(threading.Event()) == 0
    sampling.set()
    st = mon.metrics.stats
    assert st.dropped["queue_full"] == src.refused > 0
    assert st.received == 20_000  # the queue's drops are received too
    assert max(depths) <= 500
    assert 'anomae_events_dropped_total{reason="queue_full"}' in generate_latest(reg).decode()


def test_the_intake_queue_is_bounded_in_bytes_too() -> None:
    det = FakeDetector(delay=0.02)  # a slow scorer
    pad = "x" * 4000  # large readings: 25 of them fill the byte bound, not the count bound
    payloads = [
        json.dumps({"series": f"s{i % 10}", "ts": i // 10, "values": {"temp": 0.1}, "pad": pad})
        for i in range(3000)
    ]
    src = ListSource([Raw(p.encode()) for p in payloads], block=False)
    opts = MonitorOptions(queue_bytes=100_000, batch_size=64, stats_log_seconds=0)
    mon = Monitor(det, src, CollectorRegistry(), opts)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], mon.queue.bytes)
            time.sleep(0.0005)

    threading.Thread(target=sample, daemon=True).start()
    assert mon.run(threading.Event()) == 0
    done.set()
    st = mon.metrics.stats
    # the sampler may miss the brief moments the queue holds anything (a busy machine): the
    # drops prove the bound was reached, the samples that it was never passed
    assert peak[0] <= 100_000
    assert st.dropped["queue_full"] == src.refused > 0
    assert st.received == 3000


def test_stop_drains_what_is_queued_and_exits_zero(tmp_path: Path) -> None:
    lines = [line("a", t, 0.1) for t in range(1000)]
    src = ListSource([RawBatch(lines)], hold=True)
    sink = JsonlSink(tmp_path / "s.jsonl")
    mon = Monitor(
        FakeDetector(), src, CollectorRegistry(), MonitorOptions(stats_log_seconds=0), sink=sink
    )
    stop = threading.Event()
    th = threading.Thread(target=lambda: setattr(mon, "code", mon.run(stop)))
    th.start()
    deadline = time.monotonic() + 5
    while mon.metrics.stats.windows_scored < 998 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mon.ready()
    stop.set()
    th.join(5)
    assert not th.is_alive() and mon.code == 0  # type: ignore[attr-defined]
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 998


def test_monitor_swaps_in_a_reloaded_model_and_counts_refusals() -> None:
    mon = Monitor(
        FakeDetector(), ListSource([]), CollectorRegistry(), MonitorOptions(stats_log_seconds=0)
    )
    mon._reloaded(FakeDetector(th=4.0, sha="ef56"), "ok", "")
    mon._reloaded(None, "refused", "features differ")
    assert mon.scorer._next is not None and mon.metrics.stats.reloads == {
        "ok": 1,
        "refused": 1,
        "error": 0,
    }


def test_source_dispatch_and_options(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="no such file"):
        open_source(str(tmp_path / "absent.jsonl"))
    with pytest.raises(MonitorError, match="unknown source"):
        open_source("amqp://broker/queue")
    f = tmp_path / "e.jsonl"
    f.write_text("")
    assert open_source(f"file:{f}").kind == "file" and open_source("-").kind == "stdin"
    assert source_options(["step=60", "query.temp=avg(temp)"]) == {
        "step": 60,
        "queries": {"temp": "avg(temp)"},
    }
    with pytest.raises(MonitorError):
        source_options(["novalue"])


def test_idle_series_are_evicted_from_state_and_metrics() -> None:
    now = {"t": 0.0}
    lines = [line("a", t, 0.0) for t in range(5)] + [line("b", t, 3.0) for t in range(5)]
    src = ListSource([RawBatch(lines, received=0.0)], hold=True)
    opts = MonitorOptions(rule=PostRule(min_windows=1), series_ttl_seconds=10, stats_log_seconds=0)
    reg = CollectorRegistry()
    mon = Monitor(FakeDetector(), src, reg, opts, clock=lambda: now["t"])
    stop = threading.Event()
    th = threading.Thread(target=mon.run, args=(stop,))
    th.start()
    try:
        deadline = time.monotonic() + 5
        while mon.metrics.stats.received < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        now["t"] = 1.0  # past the flush deadline, within the TTL
        while mon.metrics.stats.windows_scored < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 'anomae_anomaly{series="b"} 1.0' in generate_latest(reg).decode()
        now["t"] = 100.0  # both series silent for longer than the TTL
        while len(mon.table) and time.monotonic() < deadline:
            time.sleep(0.01)
        while 'series="b"' in generate_latest(reg).decode() and time.monotonic() < deadline:
            time.sleep(0.01)
        text = generate_latest(reg).decode()
        assert len(mon.table) == 0 and 'series="a"' not in text and 'series="b"' not in text
        assert "anomae_series 0.0" in text
    finally:
        stop.set()
        th.join(5)


def _with_gap_limit(det: FakeDetector, max_gap_s: float) -> FakeDetector:
    det.card = dataclasses.replace(det.card, max_gap_s=max_gap_s)
    return det


def test_the_cards_gap_limit_applies_unless_an_option_overrides_it() -> None:
    lines = [line("a", t, 0.1) for t in (0, 1, 2, 3, 100, 101, 102)]
    opts = MonitorOptions(stats_log_seconds=0)  # no --max-gap-seconds: the card's 10 s
    mon, _ = run_monitor([RawBatch(lines)], _with_gap_limit(FakeDetector(), 10.0), opts)
    assert mon.table.max_gap_seconds == 10.0
    assert mon.metrics.stats.window_resets == 1
    assert mon.metrics.stats.windows_scored == 2 + 1  # (0..3) and (100..102), as batch
    mon._reloaded(_with_gap_limit(FakeDetector(sha="ef56"), 30.0), "ok", "")
    assert mon.table.max_gap_seconds == 30.0  # a reloaded card brings its own limit
    given = MonitorOptions(max_gap_seconds=1000.0, stats_log_seconds=0)
    mon, _ = run_monitor([RawBatch(lines)], _with_gap_limit(FakeDetector(), 10.0), given)
    assert mon.table.max_gap_seconds == 1000.0 and mon.metrics.stats.window_resets == 0
    mon._reloaded(_with_gap_limit(FakeDetector(sha="ef56"), 30.0), "ok", "")
    assert mon.table.max_gap_seconds == 1000.0  # the option still wins


@pytest.mark.parametrize("n", [2, 3])
def test_replicas_of_a_sharded_fleet_together_score_what_one_does(tmp_path: Path, n: int) -> None:
    rng = np.random.default_rng(n)
    names = [f"pump-{k}" for k in range(12)]
    lines = [
        line(s, 60.0 * t, float(rng.normal()), float(rng.normal()) * (3.0 if t == 20 else 1.0))
        for t in range(30)
        for s in names
    ]

    def records(shard: tuple[int, int], tag: str) -> tuple[list[dict], Monitor]:
        sink = JsonlSink(tmp_path / f"{tag}.jsonl")
        opts = MonitorOptions(rule=PostRule(min_windows=1), stats_log_seconds=0, shard=shard)
        mon, _ = run_monitor([RawBatch(lines, received=0.0)], opts=opts, sink=sink)
        out = [json.loads(x) for x in (tmp_path / f"{tag}.jsonl").read_text().splitlines()]
        return out, mon

    one, _ = records((0, 1), "one")
    parts = [records((i, n), f"part{i}") for i in range(n)]
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    together = sorted((r for recs, _ in parts for r in recs), key=key)
    assert together == sorted(one, key=key)
    # every series lives on exactly one replica, and each replica saw the others' readings
    owners = [{r["series"] for r in recs} for recs, _ in parts]
    assert sum(len(o) for o in owners) == len(names) and all(owners)
    for recs, mon in parts:
        taken = len({r["series"] for r in recs})
        assert mon.table.other_shard == (len(names) - taken) * 30
        assert len(mon.table) == taken


def test_a_bad_shard_is_refused() -> None:
    with pytest.raises(ValueError, match="shard must be I/N with 0 <= I < N, got 2/2"):
        SeriesTable(10, shard=(2, 2))
