"""ParquetStream (anomae.parquet_stream): tables put in a bounded queue come out as one
Parquet file, in order, with its metadata, written in a thread; a writer error is raised
again in the caller; abort ends the thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.parquet_stream import ParquetStream


def _tables(n: int) -> list[pl.DataFrame]:
    return [pl.DataFrame({"i": np.arange(k * 100, (k + 1) * 100), "x": np.full(100, k / 3)})
            for k in range(n)]  # fmt: skip


def test_tables_come_out_as_one_file_in_order_with_the_metadata(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    tables = _tables(30)
    s = ParquetStream(out, tables[0].schema, {"anomae.run_id": "abc"}, depth=2)
    for t in tables:
        s.put(t)
    s.close()
    assert pl.read_parquet(out).equals(pl.concat(tables))
    assert pl.read_parquet_metadata(out)["anomae.run_id"] == "abc"
    assert not any(t.name == "anomae-parquet" for t in threading.enumerate())


def test_a_writer_error_is_raised_in_the_caller(tmp_path: Path) -> None:
    # the folder is gone: polars cannot create the file, in the writer thread
    s = ParquetStream(tmp_path / "gone" / "s.parquet", _tables(1)[0].schema)
    with pytest.raises(OSError, match="No such file"):
        for t in _tables(200):
            s.put(t)
        s.close()


def test_abort_ends_the_thread(tmp_path: Path) -> None:
    s = ParquetStream(tmp_path / "s.parquet", _tables(1)[0].schema)
    s.put(_tables(1)[0])
    s.abort()
    assert not any(t.name == "anomae-parquet" for t in threading.enumerate())
