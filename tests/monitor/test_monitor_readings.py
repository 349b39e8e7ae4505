"""The reading parser (anomae/monitor/readings.py): every invalid reading counted by
reason, valid ones decoded, the typed fast path agreeing with the general one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomae.monitor.readings import INVALID_REASONS, ReadingParser
from anomae.monitor.series import SeriesTable
from anomae.monitor.sources.base import Raw, RawBatch, Reading

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
