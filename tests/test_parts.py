"""Output tables written in pieces (anomae.parts): Parquet parts merged into one file with
its metadata, or streamed into one file in a thread (a writer error, a full disk, raised in
the caller as a clear error, the old file kept), CSV with one header and RFC 3339 UTC
times, nothing visible at the target until commit, temporaries gone after commit or
discard, an unwritable target refused naming it."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest

from anomae.atomic import OutputError
from anomae.parts import TableWriter, commit


def piece(lo: int, hi: int) -> pl.DataFrame:
    t0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "timestamp": [t0 + dt.timedelta(minutes=i, milliseconds=500 * (i % 2))
                          for i in range(lo, hi)],
            "score": [float(i) for i in range(lo, hi)],
        },
        schema={"timestamp": pl.Datetime("us", "UTC"), "score": pl.Float64},
    )  # fmt: skip


def write(path: Path, pieces: list[pl.DataFrame], **kw: object) -> TableWriter:
    w = TableWriter(path, **kw)  # type: ignore[arg-type]
    for p in pieces:
        w.append(p)
    commit([w], [w.finish()])
    return w


def test_parquet_parts_are_merged_in_order_with_the_metadata(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    pieces = [piece(0, 7), piece(7, 8), piece(8, 30)]
    w = write(out, pieces, metadata={"anomae": "v1"}, part_rows=5)
    assert w.rows == 30
    assert pl.read_parquet(out).equals(pl.concat(pieces))
    assert pl.read_parquet_metadata(out)["anomae"] == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]  # no parts left


def test_a_small_parquet_table_is_one_write(tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    w = write(out, [piece(0, 0), piece(0, 3)], metadata={"k": "v"})
    assert pl.read_parquet(out).height == 3 and w.rows == 0  # never flushed: no parts
    assert pl.read_parquet_metadata(out)["k"] == "v"
    empty = tmp_path / "e.parquet"
    write(empty, [piece(0, 0)])  # an empty table still has its columns
    assert pl.read_parquet(empty).columns == ["timestamp", "score"]


def test_csv_has_one_header_and_rfc3339_utc_times(tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    write(out, [piece(0, 2), piece(2, 4)], part_rows=1)
    lines = out.read_text().splitlines()
    assert lines == ["timestamp,score", "2026-01-05T00:00:00Z,0.0", "2026-01-05T00:01:00.500Z,1.0",
                     "2026-01-05T00:02:00Z,2.0", "2026-01-05T00:03:00.500Z,3.0"]  # fmt: skip


def test_nothing_reaches_the_target_before_commit_and_discard_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    w = TableWriter(out, part_rows=2)
    w.append(piece(0, 5))
    tmp = w.finish()
    assert out.read_bytes() == b"old" and tmp.parent == tmp_path and tmp.name.endswith(".tmp")
    w.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert out.read_bytes() == b"old"


def test_commit_renames_every_table(tmp_path: Path) -> None:
    a, b = TableWriter(tmp_path / "a.csv"), TableWriter(tmp_path / "sub" / "b.parquet")
    a.append(piece(0, 1))
    b.append(piece(0, 2))
    commit([a, b], [a.finish(), b.finish()])
    assert (tmp_path / "a.csv").read_text().count("\n") == 2
    assert pl.read_parquet(tmp_path / "sub" / "b.parquet").height == 2


def test_an_unwritable_target_is_refused_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=r"file/out.parquet: could not write"):
        TableWriter(blocker / "out.parquet")


def test_a_stream_writes_one_file_in_a_thread_in_order_with_the_metadata(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    pieces = [piece(i, i + 3) for i in range(0, 60, 3)]
    w = TableWriter(out, {"anomae": "v1"}, part_rows=7, stream=True)
    threads = set(threading.enumerate())
    for p in pieces:
        w.append(p)
    # one temporary, the file being written: no parts
    assert len(list(tmp_path.glob(".*.tmp"))) == 1
    assert any(t.name == "anomae-parquet" for t in set(threading.enumerate()) - threads)
    commit([w], [w.finish()])
    assert pl.read_parquet(out).equals(pl.concat(pieces))
    assert pl.read_parquet_metadata(out)["anomae"] == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert not any(t.name == "anomae-parquet" for t in threading.enumerate())


class _Rows:
    """A piece of a table not yet made: rows ``lo`` to ``hi``."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def __len__(self) -> int:
        return self.hi - self.lo


@pytest.mark.parametrize("stream", [True, False])
def test_pieces_are_made_tables_in_the_writer_thread_in_order(tmp_path: Path, stream: bool) -> None:
    # anomae score: the scorer's main thread hands over pieces; the writer's threads make
    # the tables, part_rows rows of pieces at a time (the first table made by the caller, for
    # the file's schema); without a stream (a Dask task's parts) the caller makes them, as
    # many rows at a time, not a table per piece
    out = tmp_path / "scores.parquet"
    made: list[tuple[str, int]] = []

    def table(rows: list[_Rows]) -> pl.DataFrame:
        made.append((threading.current_thread().name, sum(len(r) for r in rows)))
        return pl.concat([piece(r.lo, r.hi) for r in rows])

    w = TableWriter(out, part_rows=7, stream=stream)
    w.append_pieces([_Rows(0, 3), _Rows(3, 5)], table)
    for lo in range(5, 60, 3):
        w.append_pieces([_Rows(lo, min(lo + 3, 60))], table)
    commit([w], [w.finish()])
    assert pl.read_parquet(out).equals(piece(0, 60))
    if stream:
        assert made[0][0] == threading.current_thread().name and made[0][1] >= 7
        # polars' own threads run the stream's source, never the caller's
        assert threading.current_thread().name not in {name for name, _ in made[1:]}
    else:
        assert {name for name, _ in made} == {threading.current_thread().name}
    assert all(n >= 7 for _, n in made[:-1])  # part_rows rows a table, the last the rest
    assert sum(n for _, n in made) == 60 and len(made) <= 60 // 7 + 1


def test_pieces_and_tables_keep_their_order_in_parts(tmp_path: Path) -> None:
    # a Dask task's writer: pieces waiting for their table are written before a table
    # appended after them, and handed-over parts hold every row in order
    out = tmp_path / "scores.parquet"
    w = TableWriter(out, part_rows=4, parts_only=True)

    def table(rows: list[_Rows]) -> pl.DataFrame:
        return pl.concat([piece(r.lo, r.hi) for r in rows])

    w.append_pieces([_Rows(0, 2)], table)
    w.append(piece(2, 5))
    w.append_pieces([_Rows(5, 6), _Rows(6, 9)], table)
    parts = w.hand_over()
    assert w.rows == 9
    assert pl.concat([pl.read_parquet(p) for p in parts]).equals(piece(0, 9))


def test_discarding_a_stream_stops_its_thread_and_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    w = TableWriter(out, part_rows=2, stream=True)
    w.append(piece(0, 5))
    w.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert out.read_bytes() == b"old"
    assert not any(t.name == "anomae-parquet" for t in threading.enumerate())


def test_a_full_disk_in_the_stream_thread_is_a_clear_error_keeping_the_old_file(
    tmp_path: Path,
) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"old")
    code = (
        "import resource, sys\n"
        "import numpy as np, polars as pl\n"
        "from anomae.atomic import OutputError\n"
        "from anomae.parts import TableWriter\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))\n"
        f"w = TableWriter({str(out)!r}, part_rows=50_000, stream=True)\n"
        "rng = np.random.default_rng(0)\n"
        "try:\n"
        "    for _ in range(40):\n"
        "        w.append(pl.DataFrame({'x': rng.random(50_000)}))\n"
        "    w.finish()\n"
        "except OutputError as e:\n"
        "    w.discard(); print(e); sys.exit(1)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    assert "scores.parquet: could not write: File too large" in r.stdout
    assert "previous file (if any) is unchanged" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert out.read_bytes() == b"old"
