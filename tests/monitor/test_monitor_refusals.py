"""Readings the monitor refuses: one validation of series, seq and timestamp (a lone
surrogate, a seq beyond int64 or a reading from year 4999 cannot break /metrics or blind a
series), counters that add up, and a rate-limited log line saying why."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from test_monitor_daemon import FakeDetector, ListSource, line

from anomae.events import PostRule
from anomae.monitor.daemon import Monitor, MonitorOptions
from anomae.monitor.readings import ReadingParser
from anomae.monitor.refusals import RefusalLog
from anomae.monitor.sources.base import Raw, RawBatch

NOW = 1_767_571_200.0  # 2026-01-05T00:00:00Z, the injected wall clock


def reading(series: str, ts: Any, seq: Any = None, temp: float = 0.1) -> bytes:
    obj: dict[str, Any] = {"series": series, "ts": ts, "values": {"temp": temp, "rpm": 0.0}}
    if seq is not None:
        obj["seq"] = seq
    return json.dumps(obj).encode()


def monitor(items: list[Any], **opts: Any) -> tuple[Monitor, CollectorRegistry]:
    reg = CollectorRegistry()
    options = MonitorOptions(rule=PostRule(min_windows=1), stats_log_seconds=0, **opts)
    mon = Monitor(
        FakeDetector(), ListSource(items), reg, options, clock=lambda: 0.0, wall_clock=lambda: NOW
    )
    assert mon.run(threading.Event()) == 0
    return mon, reg


SURROGATE = b'{"series": "m\\ud800", "ts": 1767571200, "values": {"temp": 1.0}}'
HUGE_SEQ = b'{"series": "a", "ts": 1767571260, "seq": 1' + b"0" * 320 + b', "values": {"temp": 1}}'


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (SURROGATE, "bad_series"),
        (HUGE_SEQ, "bad_seq"),  # the general path (beyond what msgspec reads as an int)
        (reading("a", NOW + 60, seq=2**64 - 1), "bad_seq"),  # the typed fast path
        (reading("a", NOW + 60, seq=2**63), "bad_seq"),
        (reading("a", 7_258_118_400), "future_timestamp"),  # year 2200
        (reading("a", "2200-01-01T00:00:00Z"), "future_timestamp"),
        (reading("a", 95_000_000_000), "bad_timestamp"),  # year 4980: beyond 2262, as batch
        (reading("a", "4999-01-01T00:00:00Z"), "bad_timestamp"),
    ],
)
def test_one_bad_reading_is_refused_and_metrics_keep_working(payload: bytes, reason: str) -> None:
    items = [RawBatch([reading("a", NOW, seq=1), payload, reading("a", NOW + 120, seq=2)])]
    mon, reg = monitor(items)
    st = mon.metrics.stats
    assert st.invalid[reason] == 1 and sum(st.invalid.values()) == 1
    assert st.accepted == 2  # the series goes on: its next reading is not "out of order"
    text = generate_latest(reg).decode()  # raised UnicodeEncodeError / OverflowError before
    assert f'anomae_events_invalid_total{{reason="{reason}"}} 1.0' in text
    assert reg.get_sample_value("anomae_last_event_timestamp_seconds") == NOW + 120
    assert "anomae_sequence_missing_total 0.0" in text


def test_seq_at_the_int64_limit_is_accepted() -> None:
    p = ReadingParser(("temp",))
    out = p.parse([Raw(reading("a", 60, seq=2**63 - 1))])
    assert out.seq == [2**63 - 1] and not any(p.invalid.values())


@pytest.mark.parametrize(
    ("ahead", "max_future", "accepted"),
    [(299.0, 300.0, True), (301.0, 300.0, False), (10**9, 0.0, True), (10.0, 5.0, False)],
)
def test_max_future_tolerance_of_the_injected_clock(
    ahead: float, max_future: float, accepted: bool
) -> None:
    mon, _ = monitor([Raw(reading("a", NOW + ahead))], max_future_seconds=max_future)
    assert mon.metrics.stats.accepted == int(accepted)
    assert mon.metrics.stats.invalid["future_timestamp"] == int(not accepted)


def test_received_is_accepted_plus_every_invalid_and_dropped_reason() -> None:
    det = FakeDetector(delay=0.02)  # slow: a non-blocking source overflows the queue
    bad = [b"{", SURROGATE, reading("a", NOW + 10**6), reading("a", NOW, seq=-1)]
    lines = [line(f"s{i % 40}", i // 40, 0.1) for i in range(8000)]
    lines[100:100] = bad + [line("s1", 0, 0.1), line("s2", 0.5, 0.1)]  # duplicate, out of order
    items = [RawBatch(lines[a : a + 50]) for a in range(0, len(lines), 50)]
    opts = MonitorOptions(queue_size=300, batch_size=64, max_series=30, stats_log_seconds=0)
    reg = CollectorRegistry()
    mon = Monitor(det, ListSource(items, block=False), reg, opts, wall_clock=lambda: NOW)
    assert mon.run(threading.Event()) == 0
    st = mon.metrics.stats
    assert st.dropped["queue_full"] > 0 and st.dropped["series_limit"] > 0
    assert st.dropped["duplicate"] + st.dropped["out_of_order"] > 0
    assert sum(st.invalid.values()) >= 1  # the bad lines may have been dropped with the queue
    assert st.received == len(lines)
    refused = sum(st.invalid.values()) + sum(st.dropped.values()) - st.dropped["scoring_error"]
    assert st.received == st.accepted + refused
    text = generate_latest(reg).decode()
    assert f"anomae_events_received_total {float(len(lines))}" in text


def test_refusals_are_logged_with_the_offending_field(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "anomae.monitor")
    items = [RawBatch([SURROGATE] * 3 + [reading("a", NOW), reading("a", NOW - 60)])]
    monitor(items)
    lines = [r.fields for r in caplog.records if r.getMessage() == "readings refused"]  # type: ignore[attr-defined]
    by_reason = {f["reason"]: f for f in lines}
    assert by_reason["bad_series"]["refused"] == 3
    assert by_reason["bad_series"]["suppressed"] == 2
    assert "m\\ud800" in by_reason["bad_series"]["sample"]
    assert "newest accepted ts=1767571200.0" in by_reason["out_of_order"]["sample"]


def test_refusal_log_writes_one_line_per_reason_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "anomae.monitor")
    rl = RefusalLog(period=10.0)
    counts = {"bad_json": 0, "bad_seq": 0}
    for second in range(30):
        counts["bad_json"] += 1000  # a flood
        rl.report("invalid", counts, {"bad_json": "payload b'{'"}, now=float(second))
    rl.report("invalid", counts, {}, now=30.5, final=True)
    got = [(r.fields["refused"], r.fields["suppressed"]) for r in caplog.records]  # type: ignore[attr-defined]
    assert got == [(1000, 999), (10_000, 9_999), (10_000, 9_999), (9_000, 8_999)]
