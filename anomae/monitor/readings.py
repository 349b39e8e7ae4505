"""Readings in: JSON payloads (or ready :class:`Reading` objects) → validated columns.

One reading is one JSON object per line or message::

    {"series": "m1", "ts": "2026-01-05T00:00:00Z", "values": {"temp": 21.5, "rpm": null}, "seq": 17}

``ts`` is an ISO-8601/RFC 3339 string (no offset means UTC) or epoch seconds (another unit
with ``unit``), accepted exactly as the batch reader accepts a timestamp cell
(:func:`anomae.timestamps.parse_timestamp`); ``seq`` is optional;
``series`` may be left out when the source knows it (an MQTT topic: ``Raw.series_hint``);
the payload's ``series`` wins over the hint. Values are numbers or null. A feature of the
model that is absent or null is missing (NaN); so are non-finite numbers and numbers beyond
float32's range. Keys the model does not know are ignored, as long as at least one known
feature is present. Other top-level keys are ignored.

Invalid input never raises: it is counted by the first reason that applies, from this
closed set (:data:`INVALID_REASONS`, the values of ``anomae_events_invalid_total{reason}``):

====================  ===================================================================
``too_large``         payload longer than ``max_bytes`` (64 KiB by default)
``bad_json``          not UTF-8, not JSON, trailing garbage, or nested too deep
``not_object``        valid JSON but not an object
``missing_series``    no ``series`` and no series from the source
``bad_series``        ``series`` not a string of 1 to 256 characters, or one that UTF-8
                      cannot encode (a lone surrogate such as ``"m\\ud800"``)
``bad_timestamp``     ``ts`` absent, not a number or ISO-8601 string, or outside years 1677-2262
``future_timestamp``  ``ts`` later than the parser's clock plus ``max_future`` seconds
``bad_values``        ``values`` absent, not an object, or empty
``unknown_feature``   ``values`` names none of the model's features
``bad_seq``           ``seq`` present but not an integer from 0 to 2**63 - 1
``wrong_type``        a feature's value is not a number or null (strings, booleans, ...)
====================  ===================================================================

Parsing is the daemon's hottest Python loop. Each payload is first decoded by msgspec into a
typed struct made for the model's features (fields ``series``, ``ts``, ``seq`` and one
``float | null`` per feature, unknown keys skipped in C): ~1.6 µs for a 170-byte reading
where ``json.loads`` takes ~6. Whatever that decoder refuses or cannot decide (a wrong type,
``NaN`` literals, a BOM, a string timestamp that does not parse, no known feature, ...) goes
through the general stdlib path, which alone decides the reason, so both paths accept the
same readings and count the same reasons (a hypothesis test checks it).

Every refusal also leaves its offending field in ``samples[reason]`` (the latest one, a
short text), so the daemon can say *why* it refused readings, not only how many.

    >>> p = ReadingParser(("temp", "rpm"))
    >>> out = p.parse([Raw(b'{"series": "m1", "ts": 60, "values": {"temp": 21.5}}'),
    ...                Raw(b'{"series": "m1", "ts": 120, "values": {"temp": "hot"}}'),
    ...                Raw(b'not json')])
    >>> out.series, out.ts, out.values.tolist()
    (['m1'], [60.0], [[21.5, nan]])
    >>> {k: v for k, v in p.invalid.items() if v}
    {'bad_json': 1, 'wrong_type': 1}
"""

from __future__ import annotations

import json
import json.scanner
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

import msgspec
import numpy as np

from anomae.monitor.decoder import typed_decoder
from anomae.monitor.sources.base import Raw, RawBatch, Reading
from anomae.timestamps import _MAX_EPOCH_S, UNITS, check_unit
from anomae.timestamps import parse_timestamp as _parse_ns

INVALID_REASONS = (
    "too_large",
    "bad_json",
    "not_object",
    "missing_series",
    "bad_series",
    "bad_timestamp",
    "future_timestamp",
    "bad_values",
    "unknown_feature",
    "bad_seq",
    "wrong_type",
)
MAX_BYTES = 64 * 1024
MAX_SERIES_NAME = 256
_TS_LIMIT = _MAX_EPOCH_S  # years 1677-2262, as batch: rejects milliseconds sent as seconds
_PER_SECOND = {unit: 1e9 / ns for unit, ns in UNITS.items()}  # units per second
_SEQ_LIMIT = 2**63  # seq beyond int64 would overflow the float counters derived from it
_NUMERIC = frozenset({float, int, type(None)})
_SAMPLE_CHARS = 120


def _encodable(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (the stdlib decoder lets lone surrogates in)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SAMPLE_CHARS else text[: _SAMPLE_CHARS - 3] + "..."


def parse_timestamp(ts: object, unit: str | None = None) -> float | None:
    """Epoch seconds from a number (in ``unit``, default seconds) or an ISO-8601 string;
    None when the batch reader would refuse it (:func:`anomae.timestamps.parse_timestamp`).

    >>> parse_timestamp("2026-01-05T00:01:00Z"), parse_timestamp(1767571260)
    (1767571260.0, 1767571260.0)
    >>> parse_timestamp(True), parse_timestamp("yesterday"), parse_timestamp(1.7e12)
    (None, None, None)
    """
    ns = _parse_ns(ts, unit)
    if ns is None:
        return None
    if type(ts) is float or type(ts) is int:  # as the typed fast path computes it
        return float(ts) / _PER_SECOND[unit or "s"]
    return ns / 1e9


@dataclass
class Parsed:
    """Valid readings as columns; ``values`` is float32 ``[n, features]`` (NaN = missing)."""

    series: list[str] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    seq: list[int | None] = field(default_factory=list)
    received: list[float] = field(default_factory=list)
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.series)


class ReadingParser:
    """Parses items from a source into :class:`Parsed` columns and counts what is invalid.

    ``received`` counts every reading offered (valid or not); ``invalid`` counts by reason
    and ``samples`` holds the latest refusal of each reason (field and value, as text).
    A reading dated more than ``max_future`` seconds after ``clock()`` (wall-clock epoch
    seconds, read once per :meth:`parse`) is ``future_timestamp``: one reading from a clock
    set to year 4999 would otherwise make every later reading of its series out of order.
    """

    def __init__(
        self,
        features: Sequence[str],
        max_bytes: int = MAX_BYTES,
        max_future: float = math.inf,
        clock: Callable[[], float] = time.time,
        unit: str | None = None,
    ) -> None:
        self.features = tuple(features)
        # the unit of numeric ``ts`` (None: seconds); readings keep epoch seconds
        self.unit = check_unit(unit)
        self._per_s = _PER_SECOND[self.unit or "s"]
        self.max_bytes = max_bytes
        self.max_future, self.clock = max_future, clock
        self.received = 0
        self.invalid: dict[str, int] = dict.fromkeys(INVALID_REASONS, 0)
        self.samples: dict[str, str] = {}
        self._ts_high, self._now = _TS_LIMIT, 0.0
        feats = self.features
        self._get = itemgetter(*feats) if len(feats) > 1 else (lambda v: (v[feats[0]],))
        self._scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
        self._decode, self._attrs = typed_decoder(feats)
        self._none_row = (None,) * len(feats)

    def parse(self, items: Iterable[Raw | RawBatch | Reading]) -> Parsed:
        out = Parsed()
        if self.max_future < math.inf:
            self._now = self.clock()
            self._ts_high = min(_TS_LIMIT, self._now + self.max_future)
        rows: list[Any] = []
        for item in items:
            if type(item) is RawBatch:
                self._payloads(item.payloads, item.series_hint, item.received, out, rows)
            elif type(item) is Raw:
                self._payloads((item.payload,), item.series_hint, item.received, out, rows)
            elif isinstance(item, Reading):
                self.received += 1
                self._add(item.series, item.ts, item.values, item.seq, item.received, out, rows)
            else:
                self.received += 1
                self._refuse("not_object", f"item of type {type(item).__name__}")
        out.values = self._matrix(rows, out)
        return out

    def _payloads(
        self,
        payloads: Iterable[bytes],
        hint: str | None,
        received: float,
        out: Parsed,
        rows: list[Any],
    ) -> None:
        # The common case is inlined (this loop runs once per event); anything the typed
        # decoder refuses, or a reading it cannot judge alone, goes through `_general`.
        decode, attrs, none_row = (
            self._decode,
            self._attrs,
            self._none_row,
        )
        max_bytes, ts_high, per_s = self.max_bytes, self._ts_high, self._per_s
        if hint is not None and not _encodable(hint):
            hint = None  # the general path names the reason
        a_series, a_ts, a_seq, a_rows = (
            out.series.append,
            out.ts.append,
            out.seq.append,
            rows.append,
        )
        n = kept = 0
        for p in payloads:
            n += 1
            if len(p) > max_bytes:
                self._refuse("too_large", f"{len(p)} bytes > {max_bytes}: {_show(p[:60])}")
                continue
            try:
                r = decode(p)
            except msgspec.DecodeError:  # also ValidationError: wrong types, NaN, BOM, ...
                self._general(p, hint, received, out, rows)
                continue
            series = r.series
            if series is None:
                series = hint
            ts, seq = r.ts, r.seq
            row = attrs(r.values)
            if type(ts) is float:
                ts /= per_s
            if (
                type(series) is str
                and 0 < len(series) <= MAX_SERIES_NAME
                and type(ts) is float
                and -_TS_LIMIT < ts < ts_high
                and (seq is None or 0 <= seq < _SEQ_LIMIT)
                and row != none_row
            ):
                a_rows(row)
                a_series(series)
                a_ts(ts)
                a_seq(seq)
                kept += 1
                continue
            self._general(p, hint, received, out, rows)
        out.received.extend([received] * kept)
        self.received += n

    def _general(
        self, p: bytes, hint: str | None, received: float, out: Parsed, rows: list[Any]
    ) -> None:
        """One payload through the stdlib decoder and every check, counting the reason."""
        try:
            text = p.decode()
            obj, end = self._scan(text, 0)
            if end != len(text) and not text[end:].isspace():
                raise ValueError("extra data")
        except (ValueError, StopIteration, RecursionError):
            obj = _loads_slow(p)  # leading whitespace and other encodings
            if obj is _BAD:
                self._refuse("bad_json", f"payload {_show(p)}")
                return
        if type(obj) is not dict:
            self._refuse("not_object", f"payload {_show(p)}")
            return
        series = obj.get("series")
        self._add(
            hint if series is None else series,
            obj.get("ts"),
            obj.get("values"),
            obj.get("seq"),
            received,
            out,
            rows,
            self.unit,
        )

    def _add(
        self,
        series: object,
        ts: object,
        values: object,
        seq: object,
        received: float,
        out: Parsed,
        rows: list[Any],
        unit: str | None = None,
    ) -> None:
        """``unit``: of a numeric ``ts`` in a payload (a :class:`Reading`'s is seconds)."""
        refuse = self._refuse
        if series is None:
            refuse("missing_series", "no series in the reading nor from the source")
            return
        if (
            type(series) is not str
            or not series
            or len(series) > MAX_SERIES_NAME
            or not _encodable(series)
        ):
            refuse("bad_series", f"series={_show(series)}")
            return
        if type(ts) is float and unit is None and -_TS_LIMIT < ts < _TS_LIMIT:
            value = ts
        else:
            parsed = parse_timestamp(ts, unit)
            if parsed is None:
                refuse("bad_timestamp", f"series={_show(series)} ts={_show(ts)}")
                return
            value = parsed
        if value >= self._ts_high:
            refuse(
                "future_timestamp",
                f"series={_show(series)} ts={_show(ts)}: {value - self._now:.0f} s ahead of "
                f"the clock (--max-future {self.max_future:g})",
            )
            return
        if type(values) is not dict or not values:
            refuse("bad_values", f"series={_show(series)} values={_show(values)}")
            return
        try:
            row = self._get(values)
        except KeyError:
            if not any(f in values for f in self.features):
                refuse("unknown_feature", f"series={_show(series)} keys={_show(list(values))}")
                return
            row = tuple(values.get(f) for f in self.features)
        if seq is not None and (
            type(seq) is not int or not 0 <= seq < _SEQ_LIMIT  # type: ignore[operator]
        ):
            refuse("bad_seq", f"series={_show(series)} seq={_show(seq)}")
            return
        out.series.append(series)
        out.ts.append(value)
        out.seq.append(seq)  # type: ignore[arg-type]
        out.received.append(received)
        rows.append(row)

    def _matrix(self, rows: list[Any], out: Parsed) -> np.ndarray:
        """Rows → float32 matrix; rows with a non-numeric value are removed and counted."""
        n_f = len(self.features)
        if not rows:
            return np.empty((0, n_f), np.float32)
        if not set(map(type, chain.from_iterable(rows))) <= _NUMERIC:
            keep = [set(map(type, r)) <= _NUMERIC for r in rows]
            self.invalid["wrong_type"] += keep.count(False)
            bad = keep.index(False)
            values = dict(zip(self.features, rows[bad], strict=True))
            self.samples["wrong_type"] = f"series={_show(out.series[bad])} values={_show(values)}"
            for name in ("series", "ts", "seq", "received"):
                col = getattr(out, name)
                col[:] = [x for x, k in zip(col, keep, strict=True) if k]
            rows = [r for r, k in zip(rows, keep, strict=True) if k]
            if not rows:
                return np.empty((0, n_f), np.float32)
        try:
            m = np.array(rows, dtype=np.float64)
        except OverflowError:  # an integer beyond float64: missing, like other non-finite values
            m = np.array([[_finite(x) for x in r] for r in rows], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            m32 = m.astype(np.float32)
        m32[~np.isfinite(m32)] = np.nan
        return m32

    def _refuse(self, reason: str, sample: str) -> None:
        self.invalid[reason] += 1
        self.samples[reason] = sample


_BAD = object()


def _loads_slow(p: bytes) -> Any:
    try:
        return json.loads(p)
    except (ValueError, RecursionError):
        return _BAD


def _finite(x: float | int | None) -> float:
    try:
        return math.nan if x is None else float(x)
    except OverflowError:
        return math.nan
