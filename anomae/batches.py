"""A planned file (:class:`anomae.dataset.FilePlan`) read in bounded batches: each batch
``batch_rows`` file rows, split into each series' rows (views of one gather, in
first-appearance order), with the checks and messages of :func:`anomae.io.read_series`.
Parquet is read by slices, CSV by polars' batched reader (a ``.csv.gz`` file, which polars
cannot scan, whole); a task of :mod:`anomae.score_cluster` reads only its series, filtered
in the scan.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from anomae.cells import _labels, _values
from anomae.dataset import FilePlan, _frames, _lazy
from anomae.errors import InputError
from anomae.io import SeriesData, TableSpec
from anomae.timestamps import _timestamps


def read_batches(
    fp: FilePlan,
    spec: TableSpec,
    features: Sequence[str],
    labels: bool,
    batch_rows: int,
    only: Collection[str] | None = None,
) -> Iterator[tuple[list[SeriesData], int]]:
    """The file ``batch_rows`` rows at a time: per batch, each series' rows in it (in
    first-appearance order) and the number of rows read.

    ``only``: read just these series, with the filter pushed down into the scan (a task of
    :mod:`anomae.score_cluster`); a bad cell is then reported as the whole file's read reports
    it (its row in the file)."""
    series_col = spec.series if spec.series in (*fp.columns, *fp.constants) else None
    if only is None or set(fp.spans) <= set(only):
        yield from _batches(fp, spec, features, labels, batch_rows, series_col, None)
        return
    try:
        yield from _batches(fp, spec, features, labels, batch_rows, series_col, only)
    except InputError:
        for _ in _batches(fp, spec, features, labels, batch_rows, series_col, None):
            pass  # raises the error with the row numbered in the file
        raise


def _batches(
    fp: FilePlan,
    spec: TableSpec,
    features: Sequence[str],
    labels: bool,
    batch_rows: int,
    series_col: str | None,
    only: Collection[str] | None,
) -> Iterator[tuple[list[SeriesData], int]]:
    source = str(fp.path)
    keys = [spec.timestamp, series_col, spec.label if labels else None, *features]
    cols = list(dict.fromkeys(c for c in keys if c is not None))
    row0 = 0
    stem = Path(Path(source).name.removesuffix(".gz")).stem
    where = None
    if only is not None and series_col is not None:
        where = pl.col(series_col).cast(pl.String).is_in(sorted(only))
    for frame in _frames(fp, _lazy(fp, cols), batch_rows, where):
        if frame.height == 0:
            continue
        ts = _timestamps(frame[spec.timestamp], source, fp.is_csv, spec.timestamp_unit)
        values = _values(frame, features, source, fp.is_csv, row0)
        lab = None
        if labels and spec.label is not None:
            lab = _labels(frame[spec.label], source, fp.is_csv, row0)
        height = frame.height
        rows_all = np.arange(row0, row0 + height, dtype=np.int64)
        if series_col is None:
            out = [SeriesData(stem, source, ts, values, lab, rows_all)]
        else:
            # one gather puts each series' rows together (first-appearance order): its
            # pieces are then views, not one copy per series, and the frame can go
            groups = (
                frame[series_col].cast(pl.String).to_frame("id").with_row_index("row")
                .group_by("id", maintain_order=True).agg(pl.col("row"))
            )  # fmt: skip
            names = groups["id"].to_list()
            bounds = np.cumsum([0, *groups["row"].list.len().to_list()], dtype=np.int64)
            if len(names) == 1:
                order: np.ndarray | slice = slice(None)
            else:
                order = groups["row"].explode().to_numpy().astype(np.int64)
                ts, values, rows_all = ts[order], values[order], order + row0
                lab = None if lab is None else lab[order]
            del groups, order
            out = [
                SeriesData(name, source, ts[a:b], values[a:b],
                           None if lab is None else lab[a:b], rows_all[a:b])
                for name, a, b in zip(names, bounds[:-1].tolist(), bounds[1:].tolist(),
                                      strict=True)
            ]  # fmt: skip
            del ts, values, lab, rows_all
        del frame  # held while suspended otherwise: a batch waiting in a read-ahead
        yield out, height
        del out  # the caller's (read ahead: not held here while the next batch is read)
        row0 += height
