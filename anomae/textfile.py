"""Which files anomae reads, and how it reads delimited text: separator and header.

Tables come as Parquet (``.parquet``, ``.pq``) or delimited text: CSV (``.csv``), TSV
(``.tsv``) and other text (``.txt``, ``.dat``, as public benchmark data often comes: one
value per line, or comma-separated rows without a header), each also gzipped (``.gz``).
A folder's files are its Parquet, CSV and TSV files (:data:`FOLDER_SUFFIXES`); ``.txt`` and
``.dat`` files are read when named, so a folder's ``README.txt`` is not taken for data.

How a text file is read (:func:`sniff`, from its first lines): the separator is the comma
for a ``.csv`` whose first line holds one and the tab for a ``.tsv``; otherwise the first of
comma, tab, semicolon, pipe and space that splits every one of the first lines into the same
number (two or more) of fields, else none (one column). A file whose first line is all
numbers has no header (unless they number the columns, 0, 1, 2, ... as pandas writes
unnamed ones): its columns are named ``column_1``, ``column_2``, ... (so
``--features column_2``, and ``--timestamp-column ''`` for rows without time). Values
separated by runs of spaces are refused, with how to rewrite them.

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "ucr.txt").write_text("0.51\\n0.73\\n-0.62\\n")
    >>> d = sniff(folder / "ucr.txt"); d, d.names
    (Dialect(separator=',', header=False, width=1), ('column_1',))
    >>> _ = (folder / "smd.txt").write_text("0.1,0.2,7\\n0.3,0.1,7\\n")
    >>> sniff(folder / "smd.txt").names
    ('column_1', 'column_2', 'column_3')
    >>> _ = (folder / "plant.tsv").write_text("timestamp\\tflow\\n2026-01-01\\t3.5\\n")
    >>> sniff(folder / "plant.tsv")
    Dialect(separator='\\t', header=True, width=0)
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from anomae.errors import InputError

TEXT_SUFFIXES = tuple(s + z for s in (".csv", ".tsv", ".txt", ".dat") for z in ("", ".gz"))
PARQUET_SUFFIXES = (".parquet", ".pq")
SUFFIXES = TEXT_SUFFIXES + PARQUET_SUFFIXES
FOLDER_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", *PARQUET_SUFFIXES)
_SEPARATORS = (",", "\t", ";", "|", " ")
_HEAD_BYTES = 65_536
_HEAD_LINES = 20


@dataclass(frozen=True)
class Dialect:
    """How a text file is read: ``separator``, whether its first line is a ``header``, and
    (without one) ``width``, the number of columns of its first line."""

    separator: str = ","
    header: bool = True
    width: int = 0

    @property
    def names(self) -> tuple[str, ...] | None:
        """The columns' names without a header (``column_1``, ...); None with one."""
        return None if self.header else tuple(f"column_{i + 1}" for i in range(self.width))

    def options(self) -> dict[str, Any]:
        """polars' ``read_csv``/``scan_csv`` keywords for this dialect."""
        return {"separator": self.separator, "has_header": self.header, "new_columns": self.names}


def kind(path: Path) -> str:
    """``"csv"`` (delimited text) or ``"parquet"`` by the name's suffix; an
    :class:`~anomae.errors.InputError` naming the suffixes read otherwise."""
    name = path.name.lower()
    if name.endswith(TEXT_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(
        f"{path}: unsupported file type '{path.suffix or path.name}'; supported: "
        + ", ".join(SUFFIXES)
    )


def _head(path: Path) -> list[str]:
    """The first non-empty lines of ``path`` (decompressed), the last cut one left out."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read(_HEAD_BYTES)
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read as CSV: {err}") from err
    lines = raw.decode("utf-8", errors="replace").splitlines()
    if len(raw) == _HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # cut by the read
    return [ln.rstrip("\r") for ln in lines if ln.strip()][:_HEAD_LINES]


def _number(field: str) -> bool:
    try:
        float(field.strip().strip("\"'"))
    except ValueError:
        return False
    return True


def _numbered(fields: list[str]) -> bool:
    """Whether ``fields`` read 0, 1, 2, ... or 1, 2, 3, ...: column numbers (a header such
    as pandas writes for unnamed columns), not a row of data."""
    try:
        got = [int(f.strip().strip("\"'")) for f in fields]
    except ValueError:
        return False
    return len(got) > 1 and got in (list(range(len(got))), list(range(1, len(got) + 1)))


def _separator(lines: list[str]) -> str:
    stripped = [ln.strip() for ln in lines]
    for sep in _SEPARATORS:
        counts = {ln.count(sep) for ln in stripped}
        if len(counts) == 1 and counts != {0}:
            return sep
    return ","  # none splits the lines alike: one column (or a ragged file, refused later)


def sniff(path: Path) -> Dialect:
    """The dialect of the text file ``path`` (see the module's rules)."""
    lines = _head(path)
    if not lines:
        return Dialect()  # empty: the readers say so
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv") and "," in lines[0]:
        sep = ","
    elif name.endswith(".tsv"):
        sep = "\t"
    else:
        sep = _separator(lines)
    first = lines[0]
    if sep == " " and any("  " in ln or ln != ln.strip() for ln in lines):
        raise InputError(
            f"{path}: values separated by runs of spaces; anomae reads one separator between "
            f"values: rewrite it with one comma between values, e.g. sed -E 's/^ +//; "
            f"s/ +/,/g' {path.name} > {Path(name).stem}.csv"
        )
    fields = first.split(sep)
    header = not all(_number(f) for f in fields) or _numbered(fields)
    if not header and len(lines) == 1 and len(fields) > 100:
        raise InputError(
            f"{path}: one line of {len(fields)}+ values; anomae reads one row per time step "
            "(one value per line for a single series): rewrite it with one value per line"
        )
    return Dialect(sep, header, 0 if header else len(fields))


def text_columns(path: Path, dialect: Dialect) -> list[str]:
    """The column names of the text file ``path`` read with ``dialect`` (its header, or
    ``column_1``, ...), without reading its rows."""
    if dialect.names is not None:
        return list(dialect.names)
    return pl.read_csv(path, n_rows=0, infer_schema=False, separator=dialect.separator).columns


def header(path: Path) -> tuple[list[str], Dialect | None]:
    """The column names of the existing file ``path`` and how it is read (None: Parquet),
    without reading its rows; an :class:`~anomae.errors.InputError` naming the file when it
    is empty, a text file with NUL bytes, or unreadable. What every reader checks first
    (:func:`anomae.io.read_series`, :func:`anomae.dataset.plan_dataset`)."""
    is_text = kind(path) == "csv"
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); it needs a header and rows")
    try:
        if not is_text:
            return list(pl.read_parquet_schema(path)), None
        with path.open("rb") as fh:
            head = fh.read(4096)
        if b"\0" in head and not head.startswith(b"\x1f\x8b"):  # gzip is fine
            raise InputError(f"{path}: not a text CSV file (NUL bytes); save it as UTF-8 CSV")
        dialect = sniff(path)
        return text_columns(path, dialect), dialect
    except pl.exceptions.NoDataError as err:
        raise InputError(f"{path}: the file is empty; it needs a header and rows") from err
    except (pl.exceptions.PolarsError, OSError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        what = "CSV" if is_text else "PARQUET"
        raise InputError(f"{path}: cannot read as {what}: {first}") from err


def columns_of(path: Path) -> list[str]:
    """The column names of ``path``, Parquet or text."""
    return header(path)[0]
