"""CSV/Parquet rows → the monitor's JSON readings, one line per row, in time order.

``anomae replay`` turns a file that ``anomae score`` reads into the stream ``anomae monitor
--source -`` reads, so a recorded day can be replayed through the daemon (and batch and
stream compared). Every row becomes one reading in the format of
:mod:`anomae.monitor.readings`::

    {"series": "m1", "ts": "2026-01-05T00:00:00Z", "values": {"temp": 21.5}, "seq": 0}

``ts`` is RFC 3339 in UTC (fractional seconds to the microsecond when there are any),
missing (and non-finite) values are ``null``, ``seq`` counts each series' rows from 0. Rows
of all series are merged by timestamp (ties: the order the series appear in the input);
the label column is not replayed. Files are read and checked as ``anomae score`` reads them
(:func:`anomae.io.read_series`: every error names file, column and row); the readings are
then formatted and written ``chunk_rows`` at a time, so the text never exists whole.

    >>> import numpy as np
    >>> from anomae.io import SeriesData
    >>> t = np.array([0, 60], "datetime64[s]").astype("datetime64[ns]").astype(np.int64)
    >>> a = SeriesData("a", "x.csv", t, np.array([[1.5], [np.nan]], np.float32), None, t)
    >>> b = SeriesData("b", "x.csv", t + 30 * 10**9, np.array([[2.0], [3.0]], np.float32), None, t)
    >>> for line in readings([a, b], ("temp",)):
    ...     print(line)
    {"series": "a", "ts": "1970-01-01T00:00:00Z", "values": {"temp": 1.5}, "seq": 0}
    {"series": "b", "ts": "1970-01-01T00:00:30Z", "values": {"temp": 2.0}, "seq": 0}
    {"series": "a", "ts": "1970-01-01T00:01:00Z", "values": {"temp": null}, "seq": 1}
    {"series": "b", "ts": "1970-01-01T00:01:30Z", "values": {"temp": 3.0}, "seq": 1}
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

import numpy as np

from anomae.io import SeriesData, TableSpec, read_series

CHUNK_ROWS = 65_536


def merge_order(series: Sequence[SeriesData]) -> tuple[np.ndarray, np.ndarray]:
    """``(which series, which row)`` for every row of ``series``, in time order; equal
    timestamps keep the series order (a stable sort)."""
    ts = np.concatenate([s.timestamps for s in series]) if series else np.empty(0, np.int64)
    owner = np.concatenate([np.full(s.timestamps.size, i, np.int64) for i, s in enumerate(series)])
    row = np.concatenate([np.arange(s.timestamps.size, dtype=np.int64) for s in series])
    order = np.argsort(ts, kind="stable")
    return owner[order], row[order]


def _iso(ns: np.ndarray) -> list[str]:
    text = np.datetime_as_string(ns.astype("datetime64[ns]").astype("datetime64[us]"), unit="us")
    return [t.removesuffix(".000000") + "Z" for t in text]


def readings(
    series: Sequence[SeriesData], features: Sequence[str], chunk_rows: int = CHUNK_ROWS
) -> Iterator[str]:
    """One JSON reading per row (no newline), rows of all series merged in time order."""
    keys = [json.dumps(f) for f in features]
    names = [json.dumps(s.name) for s in series]
    owner, row = merge_order(series)
    for start in range(0, owner.size, chunk_rows):
        idx, rows = owner[start : start + chunk_rows], row[start : start + chunk_rows]
        ts = np.empty(idx.size, np.int64)
        values = np.empty((idx.size, len(features)), np.float32)
        for i, s in enumerate(series):
            mine = idx == i
            if mine.any():
                ts[mine] = s.timestamps[rows[mine]]
                values[mine] = s.values[rows[mine]]
        # float32's shortest text: read back as float64 and cast, it is the same float32
        text = np.where(np.isfinite(values), values.astype(str), "null").tolist()
        for name_i, seq, t, vals in zip(idx.tolist(), rows.tolist(), _iso(ts), text, strict=True):
            body = ", ".join(f"{k}: {v}" for k, v in zip(keys, vals, strict=True))
            yield f'{{"series": {names[name_i]}, "ts": "{t}", "values": {{{body}}}, "seq": {seq}}}'


def replay(
    paths: Sequence[str | Path],
    out: TextIO,
    spec: TableSpec = TableSpec(),
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[int, int]:
    """Write the readings of ``paths`` to ``out``, one per line; ``(readings, series)``."""
    series, features = read_series(list(paths), spec)
    n = 0
    for line in readings(series, features, chunk_rows):
        out.write(line + "\n")
        n += 1
    return n, len(series)
