"""Scoring a Dask DataFrame a user already has: :func:`score_dask`.

The frame is shuffled on its series column, so all rows of a series land in one partition
(Dask's hash partitioning), and every partition is scored on its own by
:class:`~anomae.stream_score.StreamScorer` (``map_partitions``): a pure function of each
series' rows, the numbers :func:`anomae.score.score_all` gives (scores bitwise). Within a
partition the rows are sorted by series and timestamp (a stable sort), so the shuffle may
deliver them in any order; a series' timestamps must be distinct (a repeated one is refused
as :func:`anomae.io.read_series` refuses it). A partition holds whole series, so the
largest series (plus whatever else hashes to its partition) must fit in a worker's memory;
use :mod:`anomae.score_cluster` (``anomae score --dask``) for files of any size.

The result is a lazy Dask DataFrame: the scores table (one row per window, the columns of
``anomae score``'s output) or, with ``events=True``, the events table; each partition's
rows are its series in name order, each in time order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from anomae.cells import _labels, _values
from anomae.detector import Detector
from anomae.errors import AnomaeError, InputError, install_hint
from anomae.io import TableSpec
from anomae.score import ScoreOptions, events_frame
from anomae.score_cluster import worker_detector
from anomae.stream_score import StreamScorer
from anomae.timestamps import _check_order, _timestamps

SOURCE = "Dask DataFrame"


def score_partition(
    pdf: Any,
    model: str,
    sha256: str,
    table: TableSpec,
    opts: ScoreOptions,
    labels: bool,
    events: bool,
    threads: int = 1,
) -> Any:
    """Score the whole series of one pandas partition (module docstring)."""
    det = worker_detector(model, sha256, threads=threads)
    sc = StreamScorer(det, opts, labels, later=True)  # one table of every call's pieces
    assert table.series is not None
    frame = pl.from_pandas(pdf).sort([table.series, table.timestamp], maintain_order=True)
    pieces: list[Any] = []
    for (name,), rows in frame.group_by(table.series, maintain_order=True):
        name = str(name)
        ts = _timestamps(rows[table.timestamp], SOURCE, False, table.timestamp_unit)
        _check_order(name, ts, np.arange(ts.size), SOURCE, False)
        values = _values(rows, det.card.features, SOURCE, False)
        lab = _labels(rows[table.label], SOURCE, False) if labels and table.label else None
        pieces += sc.push(name, ts, values, lab)
        pieces += sc.finish(name)
    if events:
        return events_frame(sc.events).to_pandas()
    return (sc.table(pieces) if pieces else sc.empty_table()).to_pandas()


def score_dask(
    model: str | Path,
    ddf: Any,
    table: TableSpec = TableSpec(),
    opts: ScoreOptions = ScoreOptions(),
    events: bool = False,
    threads: int = 1,
) -> Any:
    """The scores table (or, with ``events``, the events table) of the Dask DataFrame
    ``ddf`` scored with ``model``, as a lazy Dask DataFrame (module docstring).

    ``ddf`` has the columns ``table`` names: a timestamp, a series id (required: the
    shuffle needs it), the model's features, and optionally labels (then a ``label``
    column comes out). ``threads``: onnxruntime threads per task. The model file must be
    readable by the workers at the same path."""
    try:
        import dask.dataframe  # noqa: F401
    except ImportError as exc:
        raise AnomaeError(f"score_dask needs Dask: {install_hint('dask')}") from exc
    if table.rows:
        raise InputError(
            f"{SOURCE}: a Dask DataFrame has no row order across its partitions: scoring it "
            "needs a time column (TableSpec.timestamp), not numbered rows"
        )
    path = str(Path(model).resolve())
    det = Detector.load(path, threads=1)
    columns = list(ddf.columns)
    need = [table.timestamp, table.series, *det.card.features]
    missing = [c for c in need if c is None or c not in columns]
    if table.series is None or missing:
        raise InputError(
            f"{SOURCE}: lacks column(s) {', '.join(repr(c) for c in missing)} (it has: "
            f"{', '.join(map(repr, columns))}); it needs the timestamp, the series id "
            "(TableSpec.series) and the model's features"
        )
    labels = table.label is not None and table.label in columns
    sc = StreamScorer(det, opts, labels)
    meta = (events_frame([]) if events else sc.empty_table()).to_pandas()
    shuffled = ddf.shuffle(on=table.series)
    return shuffled.map_partitions(
        score_partition, path, det.sha256, table, opts, labels, events, threads, meta=meta
    )
