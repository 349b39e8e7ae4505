"""The monitor's building blocks: parsing, per-series admission, ring buffers, post-rules,
sink, intake queue and file sources (in-process; the daemon journeys are in
``test_monitor_cli.py``)."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomae.events import PostRule, event_bounds
from anomae.monitor.alarms import SeriesAlarms
from anomae.monitor.intake import EventQueue
from anomae.monitor.readings import INVALID_REASONS, ReadingParser
from anomae.monitor.ring import RingBank
from anomae.monitor.series import SeriesTable
from anomae.monitor.sink import JsonlSink, repair_tail
from anomae.monitor.sources.base import Raw, RawBatch, Reading
from anomae.monitor.sources.files import FileSource, LineSplitter
from anomae.spec import WindowSpec
from anomae.windows import RingBuffer, sliding_windows

FEATS = ("temp", "rpm")


def parse_one(payload: bytes | str, hint: str | None = None) -> tuple[ReadingParser, object]:
    p = ReadingParser(FEATS, max_bytes=200)
    data = payload.encode() if isinstance(payload, str) else payload
    return p, p.parse([Raw(data, hint)])


@pytest.mark.parametrize(
    "payload, reason",
    [
        ("x" * 201, "too_large"),
        ("{not json", "bad_json"),
        (b'{"series": "m1", "ts": 1, "values": {"temp": 1}}\xff', "bad_json"),
        ('{"series": "m1", "ts": 1, "values": {"temp": 1}} trailing', "bad_json"),
        ("[" * 90 + "]" * 90, "not_object"),
        ('"just a string"', "not_object"),
        ('{"ts": 1, "values": {"temp": 1}}', "missing_series"),
        ('{"series": 7, "ts": 1, "values": {"temp": 1}}', "bad_series"),
        ('{"series": "", "ts": 1, "values": {"temp": 1}}', "bad_series"),
        ('{"series": "m1", "values": {"temp": 1}}', "bad_timestamp"),
        ('{"series": "m1", "ts": "yesterday", "values": {"temp": 1}}', "bad_timestamp"),
        ('{"series": "m1", "ts": 1.7e12, "values": {"temp": 1}}', "bad_timestamp"),
        ('{"series": "m1", "ts": true, "values": {"temp": 1}}', "bad_timestamp"),
        ('{"series": "m1", "ts": NaN, "values": {"temp": 1}}', "bad_timestamp"),
        ('{"series": "m1", "ts": 1}', "bad_values"),
        ('{"series": "m1", "ts": 1, "values": [1, 2]}', "bad_values"),
        ('{"series": "m1", "ts": 1, "values": {}}', "bad_values"),
        ('{"series": "m1", "ts": 1, "values": {"pressure": 3}}', "unknown_feature"),
        ('{"series": "m1", "ts": 1, "values": {"temp": 1}, "seq": -1}', "bad_seq"),
        ('{"series": "m1", "ts": 1, "values": {"temp": 1}, "seq": 1.5}', "bad_seq"),
        ('{"series": "m1", "ts": 1, "values": {"temp": "21.5"}}', "wrong_type"),
        ('{"series": "m1", "ts": 1, "values": {"temp": true}}', "wrong_type"),
        ('{"series": "m1", "ts": 1, "values": {"temp": [1]}}', "wrong_type"),
    ],
)
def test_invalid_readings_are_counted_by_reason(payload: str, reason: str) -> None:
    p, out = parse_one(payload)
    assert len(out) == 0  # type: ignore[arg-type]
    assert {k: v for k, v in p.invalid.items() if v} == {reason: 1}
    assert p.received == 1


def test_deeply_nested_json_is_bad_json_not_a_crash() -> None:
    p2 = ReadingParser(FEATS, max_bytes=300_000)
    p2.parse([Raw(b"[" * 100_000 + b"]" * 100_000)])
    assert sum(p2.invalid.values()) == 1


@pytest.mark.parametrize(
    "payload, expect",
    [
        # RFC 3339 with offset, epoch int, missing and null features, extras ignored
        (
            '{"series": "m1", "ts": "2026-01-05T01:00:00+01:00", "values": {"temp": 2}}',
            ("m1", 1767571200.0, [2.0, np.nan], None),
        ),
        (
            '{"series": "m1", "ts": 1767571200, "values": {"temp": null, "rpm": 3, "x": "y"}, '
            '"seq": 4, "unit": "C"}',
            ("m1", 1767571200.0, [np.nan, 3.0], 4),
        ),
        # naive timestamps are UTC; non-finite numbers and float32 overflow are missing
        (
            '{"series": "m1", "ts": "2026-01-05T00:00:00", "values": {"temp": Infinity, '
            '"rpm": 1e300}}',
            ("m1", 1767571200.0, [np.nan, np.nan], None),
        ),
        (
            '  {"series": "m1", "ts": 5, "values": {"rpm": 10000000000000000000000000000000000000'
            "000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
            "000000000000000000000000000000000}}\r",
            ("m1", 5.0, [np.nan, np.nan], None),
        ),
    ],
)
def test_valid_readings(payload: str, expect: tuple) -> None:
    p = ReadingParser(FEATS, max_bytes=10_000)
    out = p.parse([Raw(payload.encode())])
    assert sum(p.invalid.values()) == 0
    series, ts, values, seq = expect
    assert out.series == [series] and out.ts == [ts] and out.seq == [seq]
    np.testing.assert_array_equal(out.values[0], np.array(values, np.float32))


def test_series_hint_and_ready_readings() -> None:
    p = ReadingParser(FEATS)
    out = p.parse(
        [
            Raw(b'{"ts": 1, "values": {"temp": 1}}', series_hint="from-topic"),
            Raw(b'{"series": "own", "ts": 2, "values": {"temp": 1}}', series_hint="topic"),
            Reading("r1", 3.0, {"temp": 1.5, "rpm": None}),
            Reading("r1", 4.0, {"temp": "bad"}),  # type: ignore[dict-item]
            RawBatch([b'{"series": "b", "ts": 5, "values": {"rpm": 2}}'] * 2, received=9.0),
        ]
    )
    assert out.series == ["from-topic", "own", "r1", "b", "b"]
    assert out.received[-2:] == [9.0, 9.0]
    assert p.received == 6 and p.invalid["wrong_type"] == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3)
    ),
    max_leaves=8,
)
readings = st.fixed_dictionaries(
    {},
    optional={
        "series": st.one_of(st.text(max_size=300), json_values),
        "ts": st.one_of(st.floats(), st.integers(), st.text(max_size=30), json_values),
        "values": st.one_of(
            st.dictionaries(st.sampled_from(["temp", "rpm", "other"]), json_values, max_size=3),
            json_values,
        ),
        "seq": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            readings.map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=300),
            json_values.map(lambda v: json.dumps(v).encode()),
        ),
        max_size=20,
    )
)
def test_parser_never_raises_and_accounts_for_every_reading(payloads: list[bytes]) -> None:
    p = ReadingParser(FEATS, max_bytes=250)
    out = p.parse([RawBatch(payloads)])
    assert p.received == len(payloads) == len(out) + sum(p.invalid.values())
    assert set(p.invalid) == set(INVALID_REASONS)
    assert out.values.shape == (len(out), 2) and out.values.dtype == np.float32
    assert not np.isinf(out.values).any()
    assert all(isinstance(s, str) and s for s in out.series)
    table = SeriesTable(max_series=3)
    table.admit(out.series, out.ts, out.seq, now=0.0)


number = st.one_of(st.integers(0, 10**6), st.floats(), st.integers(-(2**80), 2**80))
valid_ish = st.fixed_dictionaries(  # mostly valid readings, each field sometimes not
    {
        "series": st.one_of(st.sampled_from(["m1", "m2"]), st.text(max_size=3)),
        "ts": st.one_of(number, st.sampled_from(["2026-01-05", "x", True])),
        "values": st.fixed_dictionaries(
            {"temp": st.one_of(number, st.none(), st.booleans())},
            optional={"rpm": st.one_of(number, st.none()), "other": st.text(max_size=2)},
        )
        | st.dictionaries(st.sampled_from(["rpm", "other"]), st.none(), max_size=2),
    },
    optional={"seq": st.one_of(st.integers(-3, 5), st.integers(0, 2**70), st.floats(), st.none())},
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            valid_ish.map(lambda d: json.dumps(d).encode()),
            readings.map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=60),
        ),
        max_size=20,
    ),
    st.sampled_from([None, "hint"]),
)
def test_typed_decoder_accepts_and_counts_exactly_as_the_general_path(
    payloads: list[bytes], hint: str | None
) -> None:
    fast = ReadingParser(FEATS, max_bytes=250)
    out = fast.parse([RawBatch(payloads, series_hint=hint)])
    ref = ReadingParser(FEATS, max_bytes=250)
    from anomae.monitor.readings import Parsed

    want, rows = Parsed(), []  # type: ignore[var-annotated]
    for p in payloads:
        if len(p) > 250:
            ref.invalid["too_large"] += 1
        else:
            ref._general(p, hint, 0.0, want, rows)
    want.values = ref._matrix(rows, want)
    assert out.series == want.series and out.seq == want.seq
    assert out.ts == want.ts
    np.testing.assert_array_equal(out.values, want.values)
    assert fast.invalid == ref.invalid


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


@settings(max_examples=200, deadline=None)
@given(
    length=st.integers(1, 5),
    stride=st.integers(1, 3),
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=30), max_size=6
    ),
)
def test_ringbank_emits_exactly_the_ringbuffer_windows(
    length: int, stride: int, batches: list[list[tuple[int, bool]]]
) -> None:
    spec = WindowSpec(length, stride)
    bank = RingBank(spec, n_features=2, max_slots=4, initial_slots=1)
    refs = [RingBuffer(spec, 2) for _ in range(4)]
    rng = np.random.default_rng(0)
    for batch in batches:
        slots = np.array([s for s, _ in batch], np.int64)
        reset = np.array([r for _, r in batch], bool) & (rng.random(len(batch)) < 0.2)
        rows = rng.normal(size=(len(batch), 2)).astype(np.float32)
        expected = []
        for i, (s, r) in enumerate(zip(slots, reset, strict=True)):
            if r:
                refs[s].reset()
            w = refs[s].push(rows[i])
            if w is not None:
                expected.append((i, w))
        origin, windows = bank.push(slots, rows, reset)
        assert windows.shape == (len(expected), length, 2)
        assert sorted(origin.tolist()) == [i for i, _ in expected]
        for s in set(slots.tolist()):  # each series' windows in order
            mine = origin[slots[origin] == s].tolist()
            assert mine == sorted(mine)
        by_origin = dict(zip(origin.tolist(), windows, strict=True))
        for i, want in expected:
            np.testing.assert_array_equal(by_origin[i], want)


def test_ringbank_many_readings_of_one_series_match_batch_windows() -> None:
    spec = WindowSpec(4, 2)
    rows = np.arange(60, dtype=np.float32).reshape(30, 2)
    bank = RingBank(spec, 2, max_slots=1)
    got = [
        bank.push(np.zeros(n, np.int64), rows[a : a + n], np.zeros(n, bool))[1]
        for a, n in ((0, 3), (3, 20), (23, 7))
    ]  # 20 readings: the general path
    np.testing.assert_array_equal(np.concatenate(got), sliding_windows(rows, spec))


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


def test_sink_repairs_a_partial_last_record(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    sink = JsonlSink(path)
    assert sink.repaired == len(b'{"c": ')
    sink.write(['{"d": 4}\n'])
    sink.close()
    assert path.read_text().splitlines() == ['{"a": 1}', '{"b": 2}', '{"d": 4}']
    path.write_bytes(b"no newline at all")
    assert repair_tail(path) == 17 and path.read_bytes() == b""
    assert repair_tail(tmp_path / "absent.jsonl") == 0


def test_intake_queue_is_bounded_and_blocking_put_waits() -> None:
    q = EventQueue(capacity=10)
    assert q.put("a", 6, block=False) and not q.put("b", 6, block=False)
    assert q.put("huge", 100, block=False) is False
    done = threading.Event()

    def producer() -> None:
        q.put("c", 6, block=True)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.2)  # waiting for room
    assert q.get_many(1, 0) == ["a"]
    assert done.wait(2) and q.depth == 6
    stop = threading.Event()
    stop.set()
    assert q.put("d", 6, block=True, stop=stop) is False  # a stopping daemon refuses at once
    empty = EventQueue(4)
    assert empty.put("bigger than the queue", 9, block=False)  # an empty queue takes it


def test_line_splitter_bounds_long_lines_and_keeps_partial_ones() -> None:
    s = LineSplitter(max_bytes=5)
    # blank lines skipped; an over-long line is cut to max_bytes + 1 (counted too_large)
    assert s.feed(b"ab\n\n  \ncdefghij") == [b"ab", b"cdefgh"]
    assert s.feed(b"klm") == []  # still inside the over-long line: dropped
    assert s.feed(b"nop\nqr") == []
    assert s.feed(b"\n") == [b"qr"]
    assert s.feed(b"st") == [] and s.end() == [b"st"]


def _collect(src: FileSource, stop: threading.Event) -> tuple[list[bytes], threading.Thread]:
    got: list[bytes] = []

    def emit(item: object, block: bool) -> bool:
        assert block and isinstance(item, RawBatch)
        got.extend(item.payloads)
        return True

    th = threading.Thread(target=src.run, args=(emit, stop), daemon=True)
    th.start()
    return got, th


def _wait_for(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_file_source_follows_growth_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"1\n2\n")
    stop = threading.Event()
    src = FileSource(str(path), follow=True, poll_s=0.01)
    got, th = _collect(src, stop)
    _wait_for(lambda: got == [b"1", b"2"])
    with open(path, "ab") as f:
        f.write(b"3\n4")  # a partial line waits for its newline
    _wait_for(lambda: got[-1] == b"3")
    time.sleep(0.05)
    assert got == [b"1", b"2", b"3"]
    with open(path, "ab") as f:
        f.write(b"\n")
    _wait_for(lambda: got[-1] == b"4")
    path.write_bytes(b"5\n")  # truncated and rewritten (copytruncate)
    _wait_for(lambda: got[-1] == b"5")
    os.rename(path, tmp_path / "events.jsonl.1")  # rotated
    with open(tmp_path / "events.jsonl.1", "ab") as f:
        f.write(b"6\n")  # the old file's last lines are still read
    path.write_bytes(b"7\n")
    _wait_for(lambda: got[-1] == b"7")
    assert got == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]
    assert (src.truncations, src.rotations) == (1, 1)
    stop.set()
    th.join(2)
    assert not th.is_alive() and not src.up


def test_file_source_without_follow_reads_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"a\nb\nlast-without-newline")
    got, th = _collect(FileSource(str(path)), threading.Event())
    th.join(5)
    assert got == [b"a", b"b", b"last-without-newline"]


def test_file_source_from_end_reads_only_what_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"old\n")
    stop = threading.Event()
    got, th = _collect(FileSource(str(path), follow=True, from_end=True, poll_s=0.01), stop)
    time.sleep(0.1)
    with open(path, "ab") as f:
        f.write(b"new\n")
    _wait_for(lambda: got == [b"new"])
    stop.set()
    th.join(2)
