"""Output tables written as they are produced, in bounded memory, replaced atomically.

:class:`TableWriter` takes a table in pieces (``append``): Parquet pieces are gathered into
parts of ``part_rows`` rows, each written to its own temporary file beside the target; at
``finish`` polars streams the parts into one temporary Parquet file (with the key-value
``metadata``) and deletes them. CSV pieces are appended to one temporary file (header
once; UTC times as RFC 3339, as :func:`anomae.score.encode_table` writes them). With
``stream`` set (``anomae score``), Parquet pieces go in ``STREAM_ROWS`` rows at a time to
one temporary file written in a background thread (:class:`~anomae.parquet_stream.ParquetStream`):
no parts, no merge, and the writing overlaps the caller's work.
:func:`commit` then renames the finished temporaries over their targets in the order given
and fsyncs the folders. Temporaries follow :mod:`anomae.atomic`'s rules (names
``.<name>.<pid>.<random>.tmp``, the target's permissions or ``0666 & ~umask``, those of
killed runs removed by the next write), and every ``OSError`` or polars I/O failure
(a full disk) becomes an :class:`~anomae.atomic.OutputError` naming the target: the old
file stays as it was.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence, Sized
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import IO, Any

import polars as pl

from anomae.atomic import (
    OutputError,
    _as_output_error,
    _fsync_dir,
    _mode_for,
    _why,
    remove_stale_temps,
    target_of,
    temp_name,
)
from anomae.parquet_stream import ParquetStream

PART_ROWS = 1_000_000  # rows per Parquet part: ~60 MB of a scores table in memory
STREAM_ROWS = 131_072  # rows per table handed to a stream: ~8 MB, a few of them queued


@contextmanager
def _io(path: Path) -> Iterator[None]:
    """OSError and polars' I/O errors as an :class:`OutputError` naming ``path``."""
    try:
        with _as_output_error(path):
            yield
    except pl.exceptions.PolarsError as exc:
        m = re.search(r"os error (\d+)", str(exc))
        if m is None:
            raise
        cause = OSError(int(m.group(1)), os.strerror(int(m.group(1))))
        raise OutputError(
            f"{path}: could not write: {_why(cause)}; the previous file (if any) is unchanged"
        ) from exc


class TableWriter:
    """One output table, appended in pieces (module docstring)."""

    def __init__(
        self,
        path: str | Path,
        metadata: dict[str, str] | None = None,
        part_rows: int = PART_ROWS,
        parts_only: bool = False,
        stream: bool = False,
    ) -> None:
        self.shown, self.target = Path(path), target_of(path)
        # parts_only: a Dask task's writer: Parquet parts for :meth:`hand_over`, whatever the
        # target, and no cleaning of temporaries (other hosts' live pids look dead here)
        self.csv = str(path).lower().endswith(".csv") and not parts_only
        self.metadata = metadata
        self.stream = stream and not self.csv and not parts_only
        self.part_rows = min(part_rows, STREAM_ROWS) if self.stream else part_rows
        self._sink: ParquetStream | None = None
        self.rows = 0
        self._pending: list[pl.DataFrame] = []
        self._later: list[Any] = []  # pieces to make a table of off the caller's thread
        self._later_rows = 0
        self._later_table: Callable[[Sequence[Any]], pl.DataFrame] | None = None
        self._pending_rows = 0
        self._parts: list[Path] = []
        self._fh: IO[bytes] | None = None
        self._tmp: Path | None = None
        with _io(self.shown):
            self.target.parent.mkdir(parents=True, exist_ok=True)
            if not parts_only:
                remove_stale_temps(self.target)

    def _new_temp(self) -> Path:
        tmp = temp_name(self.target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, _mode_for(self.target))
        os.close(fd)
        return tmp

    def append(self, df: pl.DataFrame) -> None:
        """Add rows (every piece with the same columns)."""
        self._flush_later()  # keep the order of what came before
        if df.height == 0 and self.rows + self._pending_rows:
            return
        self._pending.append(df)
        self._pending_rows += df.height
        if self._pending_rows >= self.part_rows:
            self._flush()

    def append_pieces(
        self, pieces: Sequence[Sized], table: Callable[[Sequence[Any]], pl.DataFrame]
    ) -> None:
        """Add the rows of ``pieces`` (``len`` rows each), made one table by ``table`` per
        ``part_rows`` rows, at most :data:`STREAM_ROWS`: in the writer's threads when
        streaming, else in the caller's (a table per onnxruntime call cost a Dask task
        0.5 us a row in polars' constructors: docs/benchmarks.md)."""
        if self.stream and self._pending:
            self._flush()
        self._later_table = table
        for p in pieces:
            self._later.append(p)
            self._later_rows += len(p)
        if self._later_rows >= min(self.part_rows, STREAM_ROWS):
            self._flush_later()

    def _flush_later(self) -> None:
        """The pieces waiting, made one table (by the last ``append_pieces``' function)."""
        table = self._later_table
        if not self._later or table is None:
            return
        pieces, self._later, self._later_rows = self._later, [], 0
        if not self.stream:  # one table, written with what is pending
            df = table(pieces)
            self._pending.append(df)
            self._pending_rows += df.height
            if self._pending_rows >= self.part_rows:
                self._flush()
            return
        self.rows += sum(len(p) for p in pieces)
        with _io(self.shown):
            if self._sink is None:  # the first table made here, for the file's schema
                df = table(pieces)
                self._tmp = self._new_temp()
                self._sink = ParquetStream(self._tmp, df.schema, self.metadata)
                self._sink.put(df)
            else:
                self._sink.put(partial(table, pieces))

    def _flush(self) -> None:
        self._flush_later()
        if not self._pending:
            return
        df = pl.concat(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        self.rows += df.height
        with _io(self.shown):
            if self.csv:
                if self._fh is None:
                    self._tmp = self._new_temp()
                    self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish/discard
                    header = True
                else:
                    header = False
                times = [t for t in df.schema.values() if isinstance(t, pl.Datetime)]
                utc = all(t.time_zone == "UTC" for t in times)
                df.write_csv(self._fh, include_header=header,
                             datetime_format="%Y-%m-%dT%H:%M:%S%.fZ" if utc else None)  # fmt: skip
            elif self.stream:
                if self._sink is None:
                    self._tmp = self._new_temp()
                    self._sink = ParquetStream(self._tmp, df.schema, self.metadata)
                self._sink.put(df)
            else:
                part = self._new_temp()
                self._parts.append(part)
                df.write_parquet(part)

    def hand_over(self) -> list[Path]:
        """Write what is pending as a part and give up every part (Parquet), for another
        writer to :meth:`adopt`: a Dask task's scores (:mod:`anomae.score_cluster`)."""
        self._flush()
        parts, self._parts = self._parts, []
        return parts

    def adopt(self, parts: list[Path], rows: int) -> None:
        """Take over ``parts`` (``rows`` rows in all), written by :meth:`hand_over`, as if
        appended here; for a CSV target they are read back one at a time and deleted."""
        self._flush()
        if not self.csv and not self.stream:
            self._parts += parts
            self.rows += rows
            return
        for part in parts:
            with _io(self.shown):
                df = pl.read_parquet(part)
            self.append(df)
            self._flush()
            part.unlink(missing_ok=True)

    def finish(self) -> Path:
        """Complete the temporary file (fsynced) and return it; :func:`commit` renames it."""
        self._flush_later()
        with _io(self.shown):
            if self.csv:
                self._flush()
                assert self._fh is not None and self._tmp is not None
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None
                return self._tmp
            if self._sink is not None:
                self._flush()
                assert self._sink is not None and self._tmp is not None
                self._sink.close()
                self._sink = None
                tmp = self._tmp
            elif not self._parts:  # small: one write, no parts
                tmp = self._tmp = self._new_temp()
                df = pl.concat(self._pending) if len(self._pending) > 1 else self._pending[0]
                self._pending = []
                df.write_parquet(tmp, metadata=self.metadata)
            else:
                tmp = self._tmp = self._new_temp()
                self._flush()
                pl.scan_parquet(self._parts).sink_parquet(tmp, metadata=self.metadata)
                for part in self._parts:
                    part.unlink(missing_ok=True)
                self._parts = []
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return tmp

    def discard(self) -> None:
        """Remove every temporary of this writer (after an error)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._sink is not None:
            self._sink.abort()
            self._sink = None
        for p in [*self._parts, *([self._tmp] if self._tmp else [])]:
            p.unlink(missing_ok=True)
        self._parts, self._tmp, self._later, self._later_rows = [], None, [], 0


def commit(writers: list[TableWriter], temps: list[Path]) -> None:
    """Rename each finished temporary over its writer's target, in order."""
    for w, tmp in zip(writers, temps, strict=True):
        with _io(w.shown):
            os.replace(tmp, w.target)
        w._tmp = None
    for folder in {w.target.parent for w in writers}:
        _fsync_dir(folder)
