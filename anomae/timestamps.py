"""One timestamp parser for batch and stream: a column of any supported type to int64
nanoseconds since the epoch, UTC, with an :class:`~anomae.errors.InputError` naming the
first bad cell.

Supported: polars datetimes (naive ones are UTC) and dates, ISO-8601/RFC 3339 strings and
epoch numbers (numbers or numeric strings). ISO-8601 shapes only: 01/02/2026 is an error,
never a guess between day and month first. Epoch numbers are seconds unless a unit
(``s``, ``ms``, ``us``, ``ns``: :data:`UNITS`) is given; without a unit a number beyond
the seconds of years 1677-2262 is refused rather than guessed to be milliseconds.

The batch reader (:mod:`anomae.io`) parses columns with :func:`_timestamps`; the monitor
parses one reading's ``ts`` with :func:`parse_timestamp`, which accepts the same forms
with the same epoch rule (``tests/test_timestamps.py`` checks they agree value by value).

    >>> import polars as pl
    >>> col = pl.Series("timestamp", ["2026-01-01T01:00:00+01:00", "2026-01-01 00:01:00Z"])
    >>> [_iso(t) for t in _timestamps(col, "pump.csv", True)]
    ['2026-01-01T00:00:00', '2026-01-01T00:01:00']
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import polars as pl

from anomae.errors import InputError, _cell, _row, _show

# Formats tried in order for timestamp strings, after "Z" -> "+00:00" and "date time" ->
# "dateTtime". Only ISO-8601 shapes: polars' format inference would also accept 01/02/2026,
# silently guessing day or month first.
_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
_ISO_SHAPE = re.compile(
    r"\d{4}-\d\d-\d\d(?:([Tt ])\d\d:\d\d(:\d\d(\.\d+)?)?(Z|z|[+-]\d\d:?\d\d)?)?"
)
_INT = re.compile(r"[+-]?\d+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch seconds whose nanoseconds fit int64 (years 1677..2262).
_MAX_EPOCH_S = 9.2e9
# Nanoseconds per unit of an epoch number.
UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def check_unit(unit: str | None) -> str | None:
    """``unit`` if it is one of :data:`UNITS` or None (empty: None); else ValueError."""
    if not unit:
        return None
    if unit not in UNITS:
        raise ValueError(
            f"timestamp unit {unit!r} is not one of {', '.join(UNITS)} (the unit of epoch "
            "numbers; leave it unset for epoch seconds)"
        )
    return unit


def parse_timestamp(value: object, unit: str | None = None) -> int | None:
    """Int64 nanoseconds since epoch (UTC) of one value, or None where :func:`_timestamps`
    would refuse it: the scalar form of the column parser, for the monitor's readings.

    >>> parse_timestamp("2026-01-05T01:01:00+01:00"), parse_timestamp(1767571260)
    (1767571260000000000, 1767571260000000000)
    >>> parse_timestamp(1767571260000, "ms"), parse_timestamp(1.7e12), parse_timestamp(True)
    (1767571260000000000, None, None)
    """
    t = type(value)
    if t is str:
        text = value.strip()  # type: ignore[attr-defined]
        if text[4:5] == "-" and text[:4].isdigit():  # ISO-8601 first: no float() to fail
            return _parse_iso_one(text)
        try:
            number = float(text)
        except ValueError:
            return _parse_iso_one(text)
        if not math.isfinite(number):
            return None
        value = int(text) if _INT.fullmatch(text) else number
    elif t is not int and t is not float:
        return None  # bool, None, lists...
    return _epoch_one(value, unit)  # type: ignore[arg-type]


def _epoch_one(value: float, unit: str | None) -> int | None:
    if not math.isfinite(value):
        return None
    per = UNITS[unit or "s"]
    if abs(float(value)) * per >= _MAX_EPOCH_S * 1e9:  # as _epoch compares, in float64
        return None
    if type(value) is int:
        return value * per
    # As _epoch: whole and fractional units apart, so seconds keep their nanoseconds.
    whole = math.floor(value)
    return int(whole) * per + round((value - whole) * per)


def _parse_iso_one(text: str) -> int | None:
    if (
        len(text) == 20
        and text[10] == "T"
        and text[19] == "Z"
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
        and text[17] != "6"
    ):  # 2026-01-05T00:01:00Z, the usual form: datetime alone checks its digits
        sep = fraction = zone = None
        iso, leap = text, 0
    else:
        match = _ISO_SHAPE.fullmatch(text)
        if match is None:
            return None
        sep, seconds, fraction, zone = match.groups()
        iso, leap = text, 0
        if seconds is not None and seconds[1:3] == "60":  # polars reads :60 as the next minute
            at = match.start(2)
            iso, leap = iso[:at] + ":59" + iso[at + 3 :], 1_000_000
    if sep is not None and sep != "T":
        iso = iso[:10] + "T" + iso[11:]
    if zone is not None and zone != "Z":  # datetime reads Z and +02:00, not z nor +0200
        offset = "+00:00" if zone == "z" else zone[:3] + ":" + zone[-2:]
        iso = iso[: len(iso) - len(zone)] + offset
    nanos = 0
    if fraction:  # datetime keeps microseconds; polars keeps nanoseconds
        digits = fraction[1:10].ljust(9, "0")
        nanos = int(digits[6:])
        iso = iso.replace(fraction, "." + digits[:6], 1)
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    d = dt - _EPOCH
    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds + leap
    if abs(us) >= _MAX_EPOCH_S * 1e6:
        return None
    return us * 1000 + nanos


def _timestamps(col: pl.Series, source: str, is_csv: bool, unit: str | None = None) -> np.ndarray:
    """Int64 nanoseconds since epoch (UTC) for a timestamp column of any supported type;
    ``unit`` is the unit of epoch numbers (None: seconds, with the range rule)."""
    if col.dtype == pl.String:
        head = [v.strip() for v in col.head(1000).drop_nulls().to_list()]
        first = next((v for v in head if v), "")
        try:
            float(first)
        except ValueError:
            parsed = _parse_iso(col, first)
            _check_iso_range(col, source, is_csv)
        else:
            text = col.str.strip_chars()
            epoch = text.cast(pl.Int64, strict=False)
            if (epoch.is_null() & (text.str.len_chars() > 0)).any():
                epoch = text.cast(pl.Float64, strict=False)
            return _epoch(epoch, text, source, is_csv, unit)
    elif isinstance(col.dtype, pl.Datetime):
        zoned = col.dt.convert_time_zone("UTC") if col.dtype.time_zone else col
        parsed = _in_ns_range(zoned.dt.replace_time_zone(None), source, is_csv)
    elif col.dtype == pl.Date:
        parsed = _in_ns_range(col, source, is_csv)
    elif col.dtype.is_numeric():
        return _epoch(col, col, source, is_csv, unit)
    else:
        raise InputError(
            f"{source}: column '{col.name}' has type {col.dtype}; timestamps must be datetimes, "
            "ISO-8601 strings or epoch numbers (seconds, or --timestamp-unit s|ms|us|ns)"
        )
    _check_parsed(parsed, col, source, is_csv)
    return parsed.to_physical().to_numpy()


def _in_ns_range(col: pl.Series, source: str, is_csv: bool) -> pl.Series:
    """``col`` (dates or datetimes) as Datetime("ns"); a value outside nanoseconds' years
    1677-2262 is an error naming its row, not a polars cast failure."""
    parsed = col.cast(pl.Datetime("ns"), strict=False)
    lost = parsed.is_null() & col.is_not_null()
    if lost.any():
        row = int(lost.arg_true()[0])
        raise InputError(
            f"{_cell(source, col.name, row, is_csv)}: {_show(col[row])} is out of range for "
            "timestamps (years 1677-2262)"
        )
    return parsed


def _format_like(value: str) -> str | None:
    """The strptime format of one ISO-8601 value, or None if it is not ISO-8601."""
    match = _ISO_SHAPE.fullmatch(value)
    if match is None:
        return None
    sep, seconds, fraction, zone = match.groups()
    if sep is None:
        return "%Y-%m-%d"
    fmt = f"%Y-%m-%d{sep}%H:%M" + (":%S" if seconds else "") + ("%.f" if fraction else "")
    return fmt + ("" if zone is None else zone if zone in ("Z", "z") else "%z")


def _check_iso_range(col: pl.Series, source: str, is_csv: bool) -> None:
    """Refuse ISO-8601 strings outside nanoseconds' years 1677-2262, which polars' parse to
    nanoseconds would wrap around to a wrong date rather than refuse."""
    years = col.str.strip_chars().str.slice(0, 4).cast(pl.Int32, strict=False)
    edge = ((years < 1678) | (years > 2261)).fill_null(False)
    if not edge.any():
        return
    rows = edge.arg_true()
    wide = _parse_iso(col.gather(rows), "", "us")
    lost = wide.is_not_null() & wide.cast(pl.Datetime("ns", "UTC"), strict=False).is_null()
    if lost.any():
        row = int(rows[int(lost.arg_true()[0])])
        raise InputError(
            f"{_cell(source, col.name, row, is_csv)}: {_show(col[row])} is out of range for "
            "timestamps (years 1677-2262)"
        )


def _parse_iso(col: pl.Series, first: str, time_unit: Literal["ns", "us"] = "ns") -> pl.Series:
    """Datetime(time_unit, "UTC") for ISO-8601 strings; null where a value does not parse."""
    # One exact format guessed from the first value parses a uniform column in one pass, and
    # polars is ~3x faster on formats without %.f; mixed columns fall back to the list below.
    fmt = _format_like(first)
    parsed = None
    if fmt is not None:
        parsed = col.str.to_datetime(fmt, time_unit=time_unit, time_zone="UTC", strict=False)
        if not (parsed.is_null() & col.is_not_null()).any():
            return parsed
    text = col.str.strip_chars()
    iso = text.str.replace(r"[Zz]$", "+00:00").str.replace(r"^(\d{4}-\d\d-\d\d)[ t]", "${1}T")
    filled = text.str.len_chars() > 0
    for fmt in _TIME_FORMATS:
        if parsed is not None and not (parsed.is_null() & filled).any():
            break
        attempt = iso.str.to_datetime(fmt, time_unit=time_unit, time_zone="UTC", strict=False)
        parsed = attempt if parsed is None else parsed.fill_null(attempt)
    assert parsed is not None
    return parsed


def _epoch(
    numbers: pl.Series, original: pl.Series, source: str, is_csv: bool, unit: str | None
) -> np.ndarray:
    if numbers.dtype.is_float():
        numbers = numbers.fill_nan(None)
    _check_parsed(numbers, original, source, is_csv)
    per = UNITS[unit or "s"]
    big = numbers.cast(pl.Float64).abs() * per >= _MAX_EPOCH_S * 1e9
    if big.any():
        row = int(big.arg_true()[0])
        where = f"{_cell(source, original.name, row, is_csv)}: {_show(original[row])} is out of "
        if unit is None:
            raise InputError(
                where + "range for epoch seconds (years 1677-2262); if the column holds epoch "
                "milliseconds (or us, ns), say so with --timestamp-unit ms (pipelines: [data] "
                'timestamp_unit = "ms")'
            )
        raise InputError(where + f"range for epoch {unit} (years 1677-2262); check the unit")
    if numbers.dtype.is_integer():
        return numbers.cast(pl.Int64).to_numpy() * np.int64(per)
    # Whole and fractional units apart: x * 1e9 in float64 would round away nanoseconds.
    floats = numbers.cast(pl.Float64).to_numpy()
    whole = np.floor(floats)
    return whole.astype(np.int64) * np.int64(per) + np.round((floats - whole) * per).astype(
        np.int64
    )


def _check_parsed(parsed: pl.Series, original: pl.Series, source: str, is_csv: bool) -> None:
    if not parsed.has_nulls():
        return
    row = int(parsed.is_null().arg_true()[0])
    value = original[row]
    where = _cell(source, original.name, row, is_csv)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{where}: timestamp is empty (every row needs a timestamp)")
    raise InputError(
        f"{where}: cannot parse {_show(value)} as a timestamp; use ISO-8601/RFC 3339 "
        "(2026-01-01T00:00:00Z, 2026-01-01 00:00:00+02:00) or epoch numbers (seconds, or "
        "--timestamp-unit s|ms|us|ns)"
    )


def _check_order(name: str, ts: np.ndarray, rows: np.ndarray, source: str, is_csv: bool) -> None:
    bad = np.flatnonzero(np.diff(ts) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise InputError(
            f"{source}: series '{name}': timestamp {_iso(ts[i])} at "
            f"{_row(int(rows[i]), is_csv)} is not after {_iso(ts[i - 1])} at "
            f"{_row(int(rows[i - 1]), is_csv)} (timestamps must be strictly "
            "increasing within a series; sort the file or drop duplicates)"
        )


def series_hint(frame: pl.DataFrame, skip: set[str | None], ts: np.ndarray) -> str:
    """For a file read as one series whose timestamps ``ts`` go back: a hint naming the
    columns that would split it into series each strictly increasing in time (empty: none).
    Candidates are string columns and integer columns with few distinct values, not in
    ``skip``."""
    found = []
    for name in frame.columns:
        col = frame[name]
        if name in skip or not (col.dtype == pl.String or col.dtype.is_integer()):
            continue
        if col.has_nulls() or not 1 < col.n_unique() <= frame.height // 2:
            continue
        steps = (
            pl.DataFrame({"id": col, "ts": ts})
            .group_by("id", maintain_order=True)
            .agg(pl.col("ts").diff().drop_nulls().min().alias("step"))["step"]
        )
        if steps.is_null().all() or steps.min() > 0:  # type: ignore[operator]
            found.append(name)
    if not found:
        return ""
    return (
        f"; if the file holds several series, name their column with --series-column "
        f"{found[0]} (candidates: {', '.join(found)}; pipelines: [data] series)"
    )


def _iso(ns: np.int64) -> str:
    return (datetime(1970, 1, 1) + timedelta(microseconds=int(ns) // 1000)).isoformat()
