"""Cells of feature and label columns as arrays, refusing a bad cell by file, column and row.

A feature cell is a number; empty, NaN, NA, null and none (any case) are a missing reading,
which the model handles (NaN). Text that is not a number, and infinities, are refused with
the cell named; a label is 0/1 or true/false, and missing where unknown (-1).

    >>> import polars as pl
    >>> _values(pl.DataFrame({"t": ["1.5", "NA", " 2"]}), ["t"], "x.csv", True).ravel().tolist()
    [1.5, nan, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from anomae.errors import InputError, _cell, _show

MISSING_TOKENS = ("", "na", "n/a", "nan", "null", "none")
_NUMERIC_HINT = "empty, NaN, NA and null count as missing"


def _numeric(col: pl.Series) -> tuple[pl.Series, pl.Series] | None:
    """Float64 copy of ``col`` (null = missing) and a mask of cells that are not numbers."""
    if col.dtype.is_numeric() or col.dtype in (pl.Boolean, pl.Null):
        values = col.cast(pl.Float64)
        return values, pl.repeat(False, len(col), eager=True)
    if col.dtype != pl.String:
        return None
    text = col.str.strip_chars()
    missing = text.is_null() | text.str.to_lowercase().is_in(MISSING_TOKENS)
    values = text.cast(pl.Float64, strict=False)
    return values, values.is_null() & ~missing


def _not_a_number(
    source: str, col: pl.Series, bad: pl.Series, is_csv: bool, row0: int = 0
) -> str:
    row = int(bad.arg_true()[0])
    return (
        f"{_cell(source, col.name, row0 + row, is_csv)}: value {_show(col[row])} is not a number "
        f"(feature columns must be numeric; {_NUMERIC_HINT})"
    )


def _values(
    frame: pl.DataFrame, features: Sequence[str], source: str, is_csv: bool, row0: int = 0
) -> np.ndarray:
    """``[rows, features]`` float32 (NaN: missing); ``row0``: the frame's first data row in
    its file (a batch of it), for the row an error names."""
    if all(frame[name].dtype in (pl.Float32, pl.Float64) for name in features):
        # float columns (Parquet's usual case) go straight into the array, a column at a
        # time (polars gives null as NaN): 0.4x the CPU of casting them in polars first
        out = np.empty((frame.height, len(features)), np.float32)
        with np.errstate(over="ignore"):  # past float32's range: inf, refused below
            for j, name in enumerate(features):
                out[:, j] = frame[name].to_numpy()
        return _finite(out, features, source, is_csv, row0)
    cols = []
    for name in features:
        parsed = _numeric(frame[name])
        if parsed is None:
            raise InputError(
                f"{source}: column '{name}' has type {frame[name].dtype}; feature columns must "
                "be numeric"
            )
        values, bad = parsed
        if bad.any():
            raise InputError(_not_a_number(source, frame[name], bad, is_csv, row0))
        cols.append(values.fill_null(float("nan")).cast(pl.Float32).alias(name))
    out = np.ascontiguousarray(pl.DataFrame(cols).to_numpy(order="c"), dtype=np.float32)
    return _finite(out, features, source, is_csv, row0)


def _finite(
    out: np.ndarray, features: Sequence[str], source: str, is_csv: bool, row0: int
) -> np.ndarray:
    """``out``, or an error naming its first infinite cell."""
    infinite = np.isinf(out)
    if infinite.any():
        row, j = (int(i) for i in np.unravel_index(int(np.argmax(infinite)), out.shape))
        raise InputError(
            f"{_cell(source, features[j], row0 + row, is_csv)}: value {out[row, j]} is not finite "
            "(leave the cell empty for a missing reading)"
        )
    return out


def _labels(col: pl.Series, source: str, is_csv: bool, row0: int = 0) -> np.ndarray:
    if col.dtype in (pl.Boolean, pl.Null):
        return col.cast(pl.Int8).fill_null(-1).to_numpy()
    if col.dtype == pl.String:
        text = col.str.strip_chars().str.to_lowercase()
        mapping = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}
        mapping |= {t: -1 for t in MISSING_TOKENS}
        labels = text.replace_strict(mapping, default=None, return_dtype=pl.Int8).fill_null(-1)
        bad = text.is_not_null() & ~text.is_in(list(mapping))
    elif col.dtype.is_numeric():
        clean = col.fill_nan(None) if col.dtype.is_float() else col
        labels = clean.cast(pl.Int8, strict=False).fill_null(-1)
        bad = clean.is_not_null() & (clean != 0) & (clean != 1)
    else:
        raise InputError(f"{source}: label column '{col.name}' has type {col.dtype}; use 0/1")
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(
            f"{_cell(source, col.name, row0 + row, is_csv)}: label {_show(col[row])} is not 0/1 or "
            "true/false (1 marks an anomaly; leave the cell empty if unknown)"
        )
    return labels.to_numpy()
