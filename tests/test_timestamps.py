"""One timestamp rule for batch and stream: every input below is parsed by the batch reader
(a one-row CSV and Parquet file through :func:`anomae.io.read_series`) and by the
monitor's reading parser (its typed fast path and its general stdlib path), and all give
the same instant or all refuse it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.io import InputError, TableSpec, read_series
from anomae.monitor.readings import ReadingParser
from anomae.monitor.sources.base import Raw
from anomae.timestamps import _iso, _timestamps, check_unit, parse_timestamp

T = 1_767_571_260_000_000_000  # 2026-01-05T00:01:00Z in ns
REFUSED = None

CASES = [
    ("2026-01-05T00:01:00Z", None, T),
    ("2026-01-05T00:01:00z", None, T),
    ("2026-01-05T02:01:00+02:00", None, T),
    ("2026-01-04T22:01:00-0200", None, T),
    ("2026-01-05 00:01:00", None, T),  # naive: UTC
    ("2026-01-05T00:01", None, T),
    ("2026-01-05T00:01:00.250", None, T + 250_000_000),
    ("2026-01-05T00:01:00.123456789+00:00", None, T + 123_456_789),
    ("2026-01-05", None, T - 60 * 10**9),  # date only
    (1767571260, None, T),  # epoch seconds, int
    (1767571260.5, None, T + 500_000_000),  # epoch seconds, float
    ("1767571260", None, T),  # epoch seconds, numeric string
    ("125e-3", None, 125_000_000),
    (-86400, None, -86400 * 10**9),
    (1767571260123, "ms", T + 123_000_000),
    (1767571260123456, "us", T + 123_456_000),
    (1767571260, "s", T),
    ("1767571260123", "ms", T + 123_000_000),
    (1.7e12, None, REFUSED),  # milliseconds without the unit
    (1767571260123, None, REFUSED),
    (9.3e9, None, REFUSED),  # beyond 2262 in seconds
    (9.3e21, "ms", REFUSED),
    ("2300-01-01T00:00:00Z", None, REFUSED),
    ("1600-01-01", None, REFUSED),
    ("yesterday", None, REFUSED),
    ("01/02/2026", None, REFUSED),  # never a guess between day and month first
    ("2026-02-30", None, REFUSED),
    ("2026-W01-1T00:01:00Z", None, REFUSED),  # ISO week dates: not a shape we read
    ("2026-01-05T00:00:60Z", None, T),  # a leap second reads as the next minute
    ("2026-01-05 00:00:60.5+00:00", None, T + 500_000_000),
    ("2026-01-05T00:00:61Z", None, REFUSED),
    ("2026-01-05T25:00:00", None, REFUSED),
]
IDS = [f"{v!r}-{u}" for v, u, _ in CASES]


def _batch(tmp_path: Path, value: object, unit: str | None, kind: str) -> int | None:
    """The batch reader's nanoseconds for a one-row file, None when it refuses."""
    path = tmp_path / f"one.{kind}"
    if kind == "csv":
        path.write_text(f"timestamp,x\n{value},1\n")
    else:
        pl.DataFrame({"timestamp": [value], "x": [1.0]}).write_parquet(path)
    try:
        [s], _ = read_series(path, TableSpec(timestamp_unit=unit))
    except InputError as exc:
        assert "timestamp" in str(exc) or "epoch" in str(exc)
        return None
    return int(s.timestamps[0])


def _stream(value: object, unit: str | None, general: bool) -> float | None:
    """The monitor's epoch seconds for one reading, None when it refuses it as
    bad_timestamp. ``general``: a NaN literal, which the typed decoder refuses."""
    parser = ReadingParser(("x",), unit=unit)
    payload = json.dumps({"series": "a", "ts": value, "values": {"x": 1.0}})
    if general:
        payload = payload.replace("1.0", "NaN")
    out = parser.parse([Raw(payload.encode())])
    if not out.ts:
        assert parser.invalid["bad_timestamp"] == 1, parser.invalid
        return None
    return out.ts[0]


@pytest.mark.parametrize(("value", "unit", "expected"), CASES, ids=IDS)
def test_batch_and_stream_agree(
    tmp_path: Path, value: object, unit: str | None, expected: int | None
) -> None:
    got = {
        "csv": _batch(tmp_path, value, unit, "csv"),
        "parquet": _batch(tmp_path, value, unit, "parquet"),
        "scalar": parse_timestamp(value, unit),
    }
    assert got == dict.fromkeys(got, expected)
    for general in (False, True):
        seconds = _stream(value, unit, general)
        if expected is None:
            assert seconds is None
        else:  # readings carry float seconds: ~240 ns apart in 2026
            assert seconds is not None and abs(seconds * 1e9 - expected) < 1_000


def test_refusal_without_unit_names_the_option(tmp_path: Path) -> None:
    path = tmp_path / "ms.csv"
    path.write_text("timestamp,x\n1767571260000,1\n1767571261000,2\n")
    with pytest.raises(InputError, match=r"row 1 \(line 2\).*--timestamp-unit ms"):
        read_series(path)
    [s], _ = read_series(path, TableSpec(timestamp_unit="ms"))
    assert s.timestamps.tolist() == [T - 60 * 10**9 + k * 10**9 for k in (60, 61)]


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="'min' is not one of s, ms, us, ns"):
        check_unit("min")
    with pytest.raises(ValueError, match="not one of"):
        ReadingParser(("x",), unit="h")
    assert check_unit("") is None


T0 = np.datetime64("2026-01-01T00:00:00", "ns").astype(np.int64)


@pytest.mark.parametrize(
    "values",
    [["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"],
     ["2026-01-01 01:00:00+01:00", "2026-01-01T00:01:00.000"],
     ["2026-01-01T00:00", "2026-01-01T00:01"],
     [str(T0 // 10**9), str(T0 // 10**9 + 60)],
     [T0 // 10**9, T0 // 10**9 + 60],
     [float(T0 // 10**9), T0 / 1e9 + 60.0],
     [datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 1)]],
)  # fmt: skip
def test_every_supported_form_gives_utc_nanoseconds(values: list[object]) -> None:
    ns = _timestamps(pl.Series("timestamp", values), "x.csv", True)
    assert ns.dtype == np.int64
    assert ns.tolist() == [T0, T0 + 60 * 10**9]


def test_dates_are_midnight() -> None:
    ns = _timestamps(pl.Series("timestamp", ["2026-01-01", "2026-01-02"]), "x.csv", True)
    assert [_iso(t) for t in ns] == ["2026-01-01T00:00:00", "2026-01-02T00:00:00"]


@pytest.mark.parametrize(
    ("values", "where"),
    [(["2026-01-01T00:00:00", "01/02/2026"], "x.csv: column 'timestamp', row 2 (line 3)"),
     (["2026-01-01T00:00:00", "soon"], "row 2 (line 3)"),
     ([1.0, 1e12], "row 2")],
)  # fmt: skip
def test_bad_cells_are_named(values: list[object], where: str) -> None:
    with pytest.raises(InputError, match=where.replace("(", r"\(").replace(")", r"\)")):
        _timestamps(pl.Series("timestamp", values), "x.csv", True)


def test_unsupported_type_says_what_is_supported() -> None:
    with pytest.raises(InputError, match="timestamps must be datetimes, ISO-8601 strings or epoch"):
        _timestamps(pl.Series("timestamp", [True, False]), "x.parquet", False)
