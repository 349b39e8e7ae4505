"""One Parquet file written in a background thread as its tables arrive, in one pass.

:class:`ParquetStream` runs polars' streaming ``sink_parquet`` in a thread over a source
(:func:`polars.io.plugins.register_io_source`) that takes tables from a bounded queue:
the caller ``put``\\ s tables (same schema), polars encodes and writes them while the caller
goes on (scoring: onnxruntime releases the GIL), and ``close`` waits for the complete file.
At most ``depth`` tables wait in the queue; ``put`` blocks while it is full. A table may
also be put as a function that makes it: it is then made where polars reads the source
(its own threads), not in the caller's. Compared with
writing parts and merging them at the end, every row is encoded once and the writing
overlaps the scoring. An error of the writer (a full disk) is raised again, the same
object, by the next ``put`` or by ``close``; ``abort`` ends the file early (the caller
deletes it).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

_POLL_S = 0.05  # how often a blocked ``put`` looks whether the writer has failed

Table = pl.DataFrame | Callable[[], pl.DataFrame]  # a table, or a function that makes it


class ParquetStream:
    """The Parquet file ``path`` (overwritten) with ``schema`` and key-value ``metadata``."""

    def __init__(
        self,
        path: Path,
        schema: pl.Schema,
        metadata: dict[str, str] | None = None,
        depth: int = 4,
    ) -> None:
        from polars.io.plugins import register_io_source

        self._queue: queue.Queue[Table | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        lf = register_io_source(self._tables, schema=schema)
        self._thread = threading.Thread(
            target=self._write, args=(lf, path, metadata), name="anomae-parquet", daemon=True
        )
        self._thread.start()

    def _tables(
        self,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        while (item := self._queue.get()) is not None:
            df = item if isinstance(item, pl.DataFrame) else item()
            del item
            yield df if with_columns is None else df.select(with_columns)

    def _write(self, lf: pl.LazyFrame, path: Path, metadata: dict[str, str] | None) -> None:
        try:
            lf.sink_parquet(path, metadata=metadata)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _put(self, df: Table | None) -> bool:
        """Queue ``df``; False when the writer has stopped."""
        while self._thread.is_alive():
            try:
                self._queue.put(df, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def put(self, df: Table) -> None:
        """Add ``df``'s rows after those before (``df``: a table or a function that makes
        it, called in the writer thread)."""
        self._check()
        if not self._put(df):
            self._check()
            raise RuntimeError("the Parquet writer thread stopped before the end of its file")

    def close(self) -> None:
        """Every table is in: wait until the file is complete."""
        self._check()
        self._put(None)
        self._thread.join()
        self._check()

    def abort(self) -> None:
        """End early (after an error elsewhere): stop the writer and wait for it."""
        self._put(None)
        self._thread.join()
