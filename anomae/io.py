"""Read and validate sensor series from CSV and Parquet files with polars.

Bad input raises :class:`InputError` whose message names the file, the column and the row
(1-based data row, plus the line for CSV, where line 1 is the header) and says how to fix it.
Empty cells, ``NaN``, ``NA`` and ``null`` in feature columns are missing readings, not errors.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pump.csv"
    >>> _ = path.write_text("timestamp,temp,flow,label\\n"
    ...                     "2026-01-01T01:00:00+01:00,20.5,1,0\\n"
    ...                     "2026-01-01T00:01:00Z,,2,1\\n")
    >>> [pump], features = read_series(path)
    >>> pump.name, features, pump.values.tolist(), pump.labels.tolist()
    ('pump', ('temp', 'flow'), [[20.5, 1.0], [nan, 2.0]], [0, 1])
    >>> read_series(path, features=["temp", "pressure"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    anomae.errors.InputError: ...pump.csv: the model needs feature column(s) 'pressure' ...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from anomae.cells import _labels, _not_a_number, _numeric, _values
from anomae.errors import InputError, _cell
from anomae.frames import as_polars, frame_source, is_frame
from anomae.textfile import Dialect, header
from anomae.timestamps import _check_order, _timestamps, check_unit, series_hint

__all__ = ["InputError", "SeriesData", "TableSpec", "fingerprint", "read_series", "read_table"]

# The time of data without a time column (``TableSpec(timestamp="")``): each row's number in
# its file (in a dataset: counted on from the files before it), read as seconds.
ROWS = "#row"
# Columns never taken as features unless named (compared lower-cased): the names public
# anomaly data gives its labels (Yahoo's is_anomaly, TSB-AD's Label, SKAB's anomaly and
# changepoint, attack flags), which a model must not learn from.
LABEL_LIKE = ("label", "labels", "anomaly", "anomalies", "anomalous", "is_anomaly",
              "is_anomalous", "attack", "is_attack", "outlier", "is_outlier", "changepoint",
              "change_point", "ground_truth")  # fmt: skip
# Cells that mean "no reading" in numeric and label columns (compared lower-cased, stripped).


@dataclass(frozen=True)
class TableSpec:
    """Which columns of a table mean what.

    ``series`` names the column holding the series id. When that column is absent the whole
    file is one series named after the file stem, unless ``series_required`` is true; by
    default a series column is required exactly when its name differs from ``"series"``.
    ``features=None`` takes every numeric (or boolean) column except the timestamp, series,
    label and ``exclude`` columns (compared lower-cased; by default :data:`LABEL_LIKE`).
    ``timestamp_unit`` (``s``, ``ms``, ``us``, ``ns``) is the unit of epoch-number
    timestamps; None: seconds, with numbers beyond years 1677-2262 refused (see
    :mod:`anomae.timestamps`). ``timestamp=""`` (or None): the data has no time
    column and its rows are in time order, one a second: each row's time is its number in
    the file (:data:`ROWS`, what the model card records).
    """

    timestamp: str = "timestamp"  # "" or None: rows in order, no time column (ROWS)
    series: str | None = "series"
    features: tuple[str, ...] | None = None
    label: str | None = "label"
    exclude: tuple[str, ...] = LABEL_LIKE
    series_required: bool | None = None
    timestamp_unit: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", self.timestamp or ROWS)
        object.__setattr__(self, "timestamp_unit", check_unit(self.timestamp_unit))
        # Accept lists from callers while keeping the spec hashable.
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "exclude", tuple(self.exclude))

    @property
    def rows(self) -> bool:
        """The data has no time column: rows are numbered (:data:`ROWS`)."""
        return self.timestamp == ROWS

    @property
    def needs_series(self) -> bool:
        if self.series is None:
            return False
        return self.series_required if self.series_required is not None else self.series != "series"


@dataclass
class SeriesData:
    """One series: rows strictly increasing in time, ``row_offset`` pointing into its file."""

    name: str
    source: str
    timestamps: np.ndarray  # int64 ns since epoch, UTC
    values: np.ndarray  # float32 [rows, features], C-contiguous, NaN = missing
    labels: np.ndarray | None  # int8 [rows]: 1 anomaly, 0 normal, -1 unlabelled
    row_offset: np.ndarray  # int64 [rows], 0-based data row in the source file


def read_table(path: str | Path, spec: TableSpec = TableSpec()) -> pl.DataFrame:
    """Read one file, check its timestamp and series columns, parse timestamps.

    Returns the table as read, except that the timestamp column is ``Datetime("ns", "UTC")``.
    """
    frame, is_csv = _read(path, spec, None, "")
    ts = _timestamps(frame[spec.timestamp], str(path), is_csv, spec.timestamp_unit)
    return frame.with_columns(pl.Series(spec.timestamp, ts).cast(pl.Datetime("ns", "UTC")))


def read_series(
    paths: Sequence[str | Path | Any] | str | Path | Any,
    spec: TableSpec = TableSpec(),
    features: Sequence[str] | None = None,
) -> tuple[list[SeriesData], tuple[str, ...]]:
    """Read one or many files into series, in file order then first-appearance order.

    ``features`` (e.g. a model's feature names) fixes which columns are used and their order;
    extra columns are ignored. Otherwise ``spec.features`` or the first file's numeric columns
    decide, and later files must have exactly those. A pandas or polars DataFrame may stand
    for a file (:mod:`anomae.frames`), with the same checks and messages.
    """
    if isinstance(paths, str | Path) or is_frame(paths):
        paths = [paths]
    if not paths:
        raise InputError("no input files given")
    fixed = tuple(features) if features is not None else spec.features
    if fixed is not None and not fixed:
        raise InputError("no feature columns given; name at least one")
    need = "the model needs" if features is not None else "requested"
    names, first = fixed, ""
    owner: dict[str, str] = {}
    out: list[SeriesData] = []
    for i, path in enumerate(paths):
        source = frame_source(i, len(paths)) if is_frame(path) else str(path)
        frame, is_csv = _read(path, spec, fixed, need, source)
        if fixed is None:
            found = _default_features(frame, spec, source, is_csv)
            if names is None:
                names, first = found, source
            elif set(found) != set(names):
                raise InputError(_mismatch(source, first, found, names))
        assert names is not None
        for s in _split(frame, spec, source, is_csv, names):
            if s.name in owner:
                raise InputError(
                    f"series '{s.name}' appears in both {owner[s.name]} and {source}; a series "
                    "must come from one file because windows never cross files (rename the "
                    "series in one file, or merge the files into one)"
                )
            owner[s.name] = source
            out.append(s)
    assert names is not None
    return out, names


def fingerprint(series: Sequence[SeriesData], features: Sequence[str]) -> str:
    """``sha256:`` + 16 hex digits over feature names, series names and values (NaN-stable)."""
    h = hashlib.sha256(json.dumps(list(features)).encode())
    for s in series:
        # Name and shape delimit each series, so moving rows between series changes the hash.
        h.update(json.dumps([s.name, *s.values.shape]).encode())
        values = np.ascontiguousarray(s.values, dtype="<f4")
        missing = np.isnan(values)
        if missing.any():
            # NaNs from different readers may carry different payload bits.
            values = np.where(missing, np.float32(np.nan), values)
        h.update(values.tobytes())
    return "sha256:" + h.hexdigest()[:16]


def _names(columns: Sequence[str]) -> str:
    shown = ", ".join(f"'{c}'" for c in columns[:30])
    return shown + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")


def _read(
    path: Any, spec: TableSpec, features: Sequence[str] | None, need: str, source: str = ""
) -> tuple[pl.DataFrame, bool]:
    """Check the file (or frame) and its header, then read the columns needed (all if no
    ``features``)."""
    if is_frame(path):
        table = as_polars(path, spec.timestamp, source)
        wanted = _check_header(source, table.columns, spec, features, need)
        table = _non_empty(table if wanted is None else table.select(wanted), source)
        return numbered(table, spec.rows), False
    p, source = Path(path), str(path)
    if p.is_dir():
        raise InputError(f"{source}: is a directory, not a file")
    if not p.is_file():
        raise InputError(f"{source}: file does not exist (check the path)")
    columns, dialect = header(p)
    # Structural checks use the header alone, so a 10M-row file fails fast.
    wanted = _check_header(source, columns, spec, features, need)
    frame = _non_empty(_read_frame(p, dialect, columns, spec, wanted), source)
    # errors name a text file's line beside the row where a header line comes first
    return numbered(frame, spec.rows), dialect is not None and dialect.header


def numbered(frame: Any, rows: bool, first: int = 0) -> Any:
    """``frame`` (a polars DataFrame or LazyFrame) with its rows numbered from ``first`` in
    the :data:`ROWS` column when ``rows`` (the data has no time column: ``TableSpec.rows``)."""
    if not rows:
        return frame
    return frame.with_row_index(ROWS, offset=first).with_columns(pl.col(ROWS).cast(pl.Int64))


def _check_header(
    source: str, columns: list[str], spec: TableSpec, features: Sequence[str] | None, need: str
) -> list[str] | None:
    """The columns to read (None: all), after checking the header names them."""
    if ROWS in columns:
        raise InputError(
            f"{source}: has a column named '{ROWS}', the name anomae gives row numbers; "
            "rename it"
        )
    if spec.timestamp not in columns and not spec.rows:
        raise InputError(
            f"{source}: no timestamp column '{spec.timestamp}'; columns are: {_names(columns)} "
            "(name the right one with --timestamp-column; pipelines: [data] timestamp; "
            "anomae.fit: timestamp=). Rows in time order without a time column: say so with "
            "--timestamp-column '' ([data] timestamp = \"\", timestamp=None): each row is "
            "then one second, numbered in the file, and a budget of false events per day "
            "becomes the per-window 0.99 quantile (no day to count in)"
        )
    if spec.needs_series and spec.series not in columns:
        raise InputError(
            f"{source}: no series column '{spec.series}'; columns are: {_names(columns)} (name "
            "the right one with --series-column, pipelines: [data] series; or leave it unset "
            "to read the file as one series)"
        )
    wanted = None
    if features is not None:
        missing = [f for f in features if f not in columns]
        if missing:
            lacks = "that the file lacks" if need == "the model needs" else "not found"
            raise InputError(
                f"{source}: {need} feature column(s) {_names(missing)} {lacks}; the file has: "
                f"{_names(columns)}"
            )
        keys = [spec.timestamp, spec.series, spec.label, *features]
        wanted = list(dict.fromkeys(c for c in keys if c is not None and c in columns))
    return wanted


def _non_empty(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    if frame.height == 0:
        raise InputError(f"{source}: no data rows (only a header); the file needs at least one row")
    return frame


def _read_frame(
    p: Path, dialect: Dialect | None, columns: list[str], spec: TableSpec, wanted: list[str] | None
) -> pl.DataFrame:
    try:
        if dialect is None:
            return pl.read_parquet(p, columns=wanted)
        # Ids like "007" must stay strings, and we parse timestamps ourselves.
        keys = (spec.timestamp, spec.series)
        strings = {c: pl.String for c in keys if c in columns and (wanted is None or c in wanted)}
        # by name in a header; a file without one is read whole, then selected
        kw = {**dialect.options(), "columns": wanted if dialect.header else None}
        try:
            frame = pl.read_csv(p, schema_overrides=strings, infer_schema_length=10_000, **kw)
        except pl.exceptions.ComputeError:
            # A bad value after the rows used for type inference stops the typed parse; read
            # strings so that _numeric can name the row and value.
            frame = pl.read_csv(p, infer_schema=False, **kw)
        return frame if wanted is None or dialect.header else frame.select(wanted)
    except pl.exceptions.PolarsError as err:
        kind = "PARQUET" if dialect is None else "CSV"
        raise InputError(f"{p}: cannot read as {kind}: {_first_line(err)}") from err


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _mismatch(source: str, first: str, names: tuple[str, ...], chosen: tuple[str, ...]) -> str:
    extra = [n for n in names if n not in chosen]
    lacking = [n for n in chosen if n not in names]
    parts = ([f"lacks {_names(lacking)}"] if lacking else []) + (
        [f"has extra {_names(extra)}"] if extra else []
    )
    return (
        f"{source}: numeric columns differ from {first}: {source} {' and '.join(parts)} "
        "(all files must have the same feature columns; exclude or list features explicitly)"
    )


def _default_features(
    frame: pl.DataFrame, spec: TableSpec, source: str, is_csv: bool
) -> tuple[str, ...]:
    skip = {spec.timestamp, spec.series, spec.label}
    excluded = {e.lower() for e in spec.exclude}
    names = []
    for name in frame.columns:
        taken = name not in skip and name.lower() not in excluded
        parsed = _numeric(frame[name]) if taken else None
        if parsed is None:
            continue
        values, bad = parsed
        n_bad = int(bad.sum())
        if n_bad:
            # A mostly-numeric text column is a sensor with typos ("1,5", "err"): report it
            # rather than silently drop the sensor. Mostly-text columns are ids or notes.
            if values.count() >= n_bad:
                raise InputError(_not_a_number(source, frame[name], bad, is_csv))
            continue
        names.append(name)
    if not names:
        raise InputError(
            f"{source}: no numeric feature columns; columns are: {_names(frame.columns)} "
            "(timestamp, series, label and excluded columns are never features)"
        )
    return tuple(names)


def _split(
    frame: pl.DataFrame, spec: TableSpec, source: str, is_csv: bool, features: Sequence[str]
) -> list[SeriesData]:
    ts = _timestamps(frame[spec.timestamp], source, is_csv, spec.timestamp_unit)
    values = _values(frame, features, source, is_csv)
    labels = None
    if spec.label is not None and spec.label in frame.columns:
        labels = _labels(frame[spec.label], source, is_csv)
    if spec.series is not None and spec.series in frame.columns:
        ids = frame[spec.series].cast(pl.String)
        if ids.has_nulls():
            row = int(ids.is_null().arg_true()[0])
            raise InputError(
                f"{_cell(source, spec.series, row, is_csv)}: series id is empty "
                "(every row needs one, or drop the column to read the file as one series)"
            )
        groups = (
            ids.to_frame("id")
            .with_row_index("row")
            .group_by("id", maintain_order=True)
            .agg(pl.col("row"))
        )
        order = groups["row"].explode().to_numpy().astype(np.int64)
        bounds = np.cumsum(groups["row"].list.len().to_numpy())[:-1]
        parts = list(zip(groups["id"].to_list(), np.split(order, bounds), strict=True))
    else:
        name = Path(source).name.removesuffix(".gz")
        parts = [(Path(name).stem, None)]
    out = []
    for name, rows in parts:
        if rows is None or len(parts) == 1:
            rows = np.arange(frame.height, dtype=np.int64)
            s_ts, s_values, s_labels = ts, values, labels
        else:
            s_ts, s_values = ts[rows], values[rows]
            s_labels = labels[rows] if labels is not None else None
        try:
            _check_order(name, s_ts, rows, source, is_csv)
        except InputError as exc:
            if len(parts) > 1 or rows.size != frame.height:
                raise
            skip = {spec.timestamp, spec.label, *(spec.features or ())}
            raise InputError(f"{exc}{series_hint(frame, skip, ts)}") from None
        out.append(SeriesData(name, source, s_ts, s_values, s_labels, rows))
    return out

