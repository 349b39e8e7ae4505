"""Datasets for batch scoring: files, globs, folders and hive-partitioned Parquet, read in
bounded batches, with a series free to span files.

:func:`expand_inputs` turns each input into files: a file as given, a glob pattern
(``lake/*/*.parquet``), or a folder (every ``.csv``, ``.tsv``, ``.parquet`` and ``.pq``
below it, the text ones also gzipped, in path order: :mod:`anomae.textfile`; names
starting with ``.`` or ``_`` are skipped, like ``_SUCCESS`` and anomae's own temporaries).
A folder named ``key=value`` on the way to a file (hive partitioning:
``series=pump-1/date=2026-11-01/part-0.parquet``) gives the file a constant string column
``key`` when the file lacks one.

:func:`plan_dataset` makes one cheap pass over the timestamp and series columns of every
file (never the feature values): it checks the headers (the model's features are in every
file; when one lacks some, the error names a file that has them), parses the timestamps
and checks each series is strictly increasing within each file (the checks and messages
of :func:`anomae.io.read_series`), and notes per (file, series) the first and last
timestamp. A series may span files when each file holds a later stretch of it: rows of a
series that overlap in time across two files are refused, naming the series and both files
(they are not sorted: that would need the rows of both in memory). Files are then read in
an order that keeps every series in time order across its files (first timestamp, then
path, among those free to go), so a window crosses file boundaries exactly as if the
files were one; files that hold two series in opposite orders are refused. Data without a
time column (``TableSpec(timestamp="")``) is numbered: each row's time is its number, the
files' rows counted on in the order given, so a series spanning files continues in it.

The pass reads the timestamp and series columns ``PLAN_ROWS`` rows at a time (an error is
reported after re-reading the file's two columns whole, to name its row in the file);
:func:`anomae.batches.read_batches` then reads a file ``batch_rows`` rows at a time (a
gzipped text file, which polars cannot scan, is read whole): memory does not grow with the
files.
"""

from __future__ import annotations

import glob
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from anomae.errors import InputError, _cell
from anomae.io import ROWS, TableSpec, _check_header, _names, numbered
from anomae.textfile import FOLDER_SUFFIXES, Dialect, header
from anomae.timestamps import _check_order, _iso, _timestamps

PLAN_ROWS = 524_288  # rows of timestamps and series ids checked at a time: ~20 MB


@dataclass(frozen=True)
class FilePlan:
    """One input file: kind, rows, columns, hive constants, and per series in it the first
    and last timestamp (int64 ns) and row count."""

    path: Path
    text: Dialect | None  # how a text file is read; None: Parquet
    rows: int
    columns: tuple[str, ...]
    constants: dict[str, str]
    spans: dict[str, tuple[int, int, int]]
    ends: frozenset[str] = frozenset()  # series whose last file this is
    row0: int = 0  # data without time (TableSpec.rows): the number of the file's first row

    @property
    def is_csv(self) -> bool:
        """Whether errors name a line beside the row (text with a header line)."""
        return self.text is not None and self.text.header


@dataclass
class Dataset:
    """Files in reading order; ``labels``: every file has the label column."""

    files: list[FilePlan]
    rows: int = 0
    n_series: int = 0
    labels: bool = False
    sources: list[str] = field(default_factory=list)


def _hidden(part: str) -> bool:
    return part.startswith((".", "_"))


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files named by ``inputs`` (files, globs, folders), each once, in the order given
    (a glob's and a folder's files in path order)."""
    if not inputs:
        raise InputError("no input files given")
    out: dict[Path, None] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.name.lower().endswith(FOLDER_SUFFIXES)
                and not any(_hidden(x) for x in f.relative_to(p).parts)
            )
            if not found:
                raise InputError(
                    f"{p}: folder holds no {', '.join(FOLDER_SUFFIXES)} files (hidden and _ "
                    "names are skipped; .txt and .dat files are read when named)"
                )
        elif not p.exists() and glob.has_magic(str(item)):
            found = sorted(Path(f) for f in glob.glob(str(item), recursive=True)
                           if Path(f).is_file())  # fmt: skip
            if not found:
                raise InputError(f"{item}: the pattern matches no files")
        else:
            found = [p]
        out.update(dict.fromkeys(found))
    return list(out)


def hive_values(path: Path) -> dict[str, str]:
    """``key=value`` folders on the way to ``path`` (the innermost wins)."""
    out: dict[str, str] = {}
    for part in path.parent.parts:
        key, eq, value = part.partition("=")
        if eq and key and not _hidden(key):
            out[key] = value
    return out


def _lazy(fp: FilePlan, columns: Sequence[str]) -> pl.LazyFrame:
    """The file's ``columns`` (those in it; hive constants for the rest; :data:`ROWS`: each
    row's number, from ``fp.row0``) as strings for text."""
    inside = [c for c in columns if c in fp.columns]
    if fp.text is not None:
        opts = fp.text.options()
        if fp.path.name.lower().endswith(".gz"):
            picked = (inside or None) if fp.text.header else None
            lf = pl.read_csv(fp.path, columns=picked, infer_schema=False, **opts).lazy()
        else:
            lf = pl.scan_csv(fp.path, infer_schema=False, **opts)
    else:
        lf = pl.scan_parquet(fp.path)
    if ROWS in columns:  # numbered before any select, slice or filter: a row keeps it
        lf = numbered(lf, True, fp.row0)
        inside.append(ROWS)
    lf = lf.select(inside)
    extra = [pl.lit(fp.constants[c]).alias(c) for c in columns if c not in inside]
    return lf.with_columns(extra).select(list(columns)) if extra else lf


def _scan(
    path: Path, spec: TableSpec, features: Sequence[str], first: dict[str, str], row0: int = 0
) -> FilePlan:
    if not path.is_file():
        raise InputError(f"{path}: file does not exist (check the path)")
    columns, text = header(path)
    constants = {k: v for k, v in hive_values(path).items() if k not in columns}
    source = str(path)
    missing = [f for f in features if f not in columns]
    if missing and first:
        has = {src: set(cols.split("\0")) for src, cols in first.items()}
        other = next((src for src, cols in has.items() if set(missing) <= cols), "")
        if other:
            raise InputError(
                f"{source}: lacks feature column(s) {_names(missing)} that {other} has; the "
                f"files of a dataset must all have the model's features (the file has: "
                f"{_names(columns)})"
            )
    _check_header(source, [*columns, *constants], spec, features, "the model needs")
    if not first:
        first[source] = "\0".join(columns)
    keys = [spec.timestamp] + ([spec.series] if spec.series in (*columns, *constants) else [])
    fp = FilePlan(path, text, 0, tuple(columns), constants, {}, row0=row0)
    cols = [k for k in keys if k is not None]
    try:
        spans, rows = _spans_in_batches(fp, cols, spec, source, fp.is_csv)
    except InputError:
        _spans(_lazy(fp, cols).collect(), cols, spec, source, fp.is_csv)  # the row in the file
        raise
    return FilePlan(path, text, rows, tuple(columns), constants, spans, row0=row0)


def _spans_in_batches(
    fp: FilePlan, keys: list[str], spec: TableSpec, source: str, is_csv: bool
) -> tuple[dict[str, tuple[int, int, int]], int]:
    """:func:`_spans` ``PLAN_ROWS`` rows at a time (an error's row is then counted in the
    batch: the caller re-reads the file whole to name it)."""
    spans: dict[str, tuple[int, int, int]] = {}
    rows = 0
    for frame in _frames(fp, _lazy(fp, keys), PLAN_ROWS):
        if frame.height == 0:
            continue
        got, n = _spans(frame, keys, spec, source, is_csv)
        for name, (lo, hi, k) in got.items():
            was = spans.get(name)
            if was is not None and lo <= was[1]:
                raise InputError(f"{source}: series '{name}' is not in time order")
            spans[name] = (lo, hi, k) if was is None else (was[0], hi, was[2] + k)
        rows += n
    if rows == 0:
        raise InputError(f"{source}: no data rows (only a header); the file needs at least one row")
    return spans, rows


def _spans(
    frame: pl.DataFrame, keys: list[str], spec: TableSpec, source: str, is_csv: bool
) -> tuple[dict[str, tuple[int, int, int]], int]:
    """Per series in ``frame`` its first and last timestamp and rows, checked in order."""
    if frame.height == 0:
        raise InputError(f"{source}: no data rows (only a header); the file needs at least one row")
    ts = _timestamps(frame[spec.timestamp], source, is_csv, spec.timestamp_unit)
    if len(keys) == 1:
        name = Path(Path(source).name.removesuffix(".gz")).stem
        _check_order(name, ts, np.arange(ts.size), source, is_csv)
        spans = {name: (int(ts[0]), int(ts[-1]), int(ts.size))}
    else:
        ids = frame[keys[1]].cast(pl.String)
        if ids.has_nulls():
            row = int(ids.is_null().arg_true()[0])
            raise InputError(
                f"{_cell(source, keys[1], row, is_csv)}: series id is empty "
                "(every row needs one, or drop the column to read the file as one series)"
            )
        agg = (
            pl.DataFrame({"id": ids, "ts": ts})
            .group_by("id", maintain_order=True)
            .agg(
                pl.col("ts").first().alias("lo"),
                pl.col("ts").last().alias("hi"),
                pl.len().alias("n"),
                (pl.col("ts").diff() <= 0).any().alias("bad"),
            )
        )
        bad = agg.filter(pl.col("bad"))
        if bad.height:
            name = bad["id"][0]
            rows = (ids == name).arg_true().to_numpy().astype(np.int64)
            _check_order(name, ts[rows], rows, source, is_csv)
        spans = {
            i: (lo, hi, n)
            for i, lo, hi, n in zip(agg["id"], agg["lo"], agg["hi"], agg["n"], strict=True)
        }
    return spans, int(ts.size)


def plan_dataset(
    inputs: Sequence[str | Path], spec: TableSpec, features: Sequence[str]
) -> Dataset:
    """Check every file of ``inputs`` and order them (module docstring)."""
    first: dict[str, str] = {}
    files: list[FilePlan] = []
    for p in expand_inputs(inputs):  # without time, rows count on from the file before
        row0 = files[-1].row0 + files[-1].rows if files and spec.rows else 0
        files.append(_scan(p, spec, features, first, row0))
    by_series: dict[str, list[tuple[int, int, int]]] = {}
    for i, fp in enumerate(files):
        for name, (lo, hi, _) in fp.spans.items():
            by_series.setdefault(name, []).append((lo, hi, i))
    after: dict[int, set[int]] = {i: set() for i in range(len(files))}
    for name, parts in by_series.items():
        parts.sort()
        for (lo_a, hi_a, a), (lo_b, hi_b, b) in zip(parts, parts[1:], strict=False):
            if lo_b <= hi_a:
                raise InputError(
                    f"series '{name}': its rows in {files[a].path} ({_iso(np.int64(lo_a))} "
                    f"to {_iso(np.int64(hi_a))}) and in {files[b].path} "
                    f"({_iso(np.int64(lo_b))} to {_iso(np.int64(hi_b))}) "
                    "overlap in time; a series may span files only when each holds a later "
                    "stretch of it (drop the duplicate rows, or name the series apart)"
                )
            after[a].add(b)
    order = _file_order(files, after, by_series)
    last = {name: parts[-1][2] for name, parts in by_series.items()}
    ends: dict[int, set[str]] = {}
    for name, i in last.items():
        ends.setdefault(i, set()).add(name)
    planned = [
        replace(f, ends=frozenset(ends.get(i, ())))
        for i, f in ((i, files[i]) for i in order)
    ]
    labels = spec.label is not None and all(
        spec.label in (*f.columns, *f.constants) for f in files
    )
    return Dataset(planned, sum(f.rows for f in files), len(by_series), labels,
                   [str(f.path) for f in planned])  # fmt: skip


def _file_order(
    files: list[FilePlan], after: dict[int, set[int]], by_series: dict[str, list]
) -> list[int]:
    """Files so that each comes after those holding earlier stretches of its series."""
    need = {i: 0 for i in after}
    for succ in after.values():
        for j in succ:
            need[j] += 1
    key = {i: (min(lo for lo, _, _ in f.spans.values()), str(f.path)) for i, f in enumerate(files)}
    ready = [(key[i], i) for i, n in need.items() if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for j in after[i]:
            need[j] -= 1
            if need[j] == 0:
                heapq.heappush(ready, (key[j], j))
    if len(order) < len(files):
        left = {i for i in need if need[i] > 0}
        a, b = sorted(left)[:2]
        two = [n for n, parts in by_series.items() if {p[2] for p in parts} >= {a, b}][:2]
        raise InputError(
            f"{files[a].path} and {files[b].path} hold series in opposite time order (e.g. "
            f"{', '.join(repr(n) for n in two)}); one pass cannot keep every series in time "
            "order: split the files by time, or by series"
        )
    return order


def _frames(
    fp: FilePlan, lf: pl.LazyFrame, batch_rows: int, where: pl.Expr | None = None
) -> Iterator[pl.DataFrame]:
    """``lf`` ``batch_rows`` file rows at a time, filtered. Parquet by slices: collect_batches
    reads ahead of a slow consumer, up to a whole file (372 vs 130 MB for 3.3M rows)."""
    keep = (lambda f: f) if where is None else (lambda f: f.filter(where))  # noqa: E731
    if fp.text is not None:
        return keep(lf).collect_batches(chunk_size=batch_rows)
    n = fp.rows or pl.scan_parquet(fp.path).select(pl.len()).collect().item()
    return (keep(lf.slice(i, batch_rows)).collect() for i in range(0, n, batch_rows))
