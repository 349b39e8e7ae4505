"""The one timestamp parser for batch and stream (anomae/timestamps.py)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from anomae.errors import InputError
from anomae.timestamps import _iso, _timestamps

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
