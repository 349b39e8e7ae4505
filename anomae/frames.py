"""DataFrames as input: pandas or polars tables in, the polars table the file readers give.

:func:`anomae.io.read_series` takes DataFrames besides file paths and runs them through the
same checks and messages; this module only turns what the caller holds into a polars
table. A pandas ``DatetimeIndex`` (named or not) becomes the timestamp column when the
frame has no column of that name; pandas object columns that mix types (numbers and
strings, say) arrive as text, so the checks can name the first cell that is not a number.
A frame's name in messages is ``DataFrame`` (``DataFrame 2`` for the second of a list),
and a frame without a series column is one series of that name. Arrays stand for frames
too: a numpy array of one value per row (1-D) or rows x features (2-D) has the columns
``column_1``, ``column_2``, ... (as a text file without a header); a pandas or polars
Series is the one column of its name (``value`` without one), a pandas ``DatetimeIndex``
again the timestamps. An array otherwise has no time column (:func:`untimed`): its rows are
in time order (``anomae.fit`` reads them so by default).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"temp": [20.5, 21.0]},
    ...                   index=pd.date_range("2026-01-01", periods=2, freq="min"))
    >>> as_polars(df, "timestamp").columns
    ['timestamp', 'temp']
    >>> import numpy as np
    >>> as_polars(np.zeros((3, 2)), "timestamp").columns
    ['column_1', 'column_2']
"""

from __future__ import annotations

from typing import Any

import polars as pl

from anomae.errors import InputError

__all__ = ["as_polars", "frame_source", "is_array", "is_frame", "untimed"]


def _pandas(obj: object, name: str) -> bool:
    kind = type(obj)
    return kind.__name__ == name and kind.__module__.startswith("pandas")


def is_array(obj: object) -> bool:
    """Whether ``obj`` is a numpy array or a pandas or polars Series (no time column but a
    pandas Series' ``DatetimeIndex``)."""
    import numpy as np

    return isinstance(obj, np.ndarray | pl.Series) or _pandas(obj, "Series")


def untimed(obj: object) -> bool:
    """Whether ``obj`` is an array without a time column (a pandas Series with a
    ``DatetimeIndex`` has one)."""
    if not is_array(obj):
        return False
    if not _pandas(obj, "Series"):
        return True
    import pandas as pd

    return not isinstance(getattr(obj, "index", None), pd.DatetimeIndex)


def is_frame(obj: object) -> bool:
    """Whether ``obj`` is a table in memory: a polars or pandas DataFrame, or an array
    (:func:`is_array`; pandas is not imported to tell)."""
    return isinstance(obj, pl.DataFrame) or _pandas(obj, "DataFrame") or is_array(obj)


def frame_source(index: int, count: int) -> str:
    """The name of the ``index``-th (0-based) of ``count`` frames in messages."""
    return "DataFrame" if count == 1 else f"DataFrame {index + 1}"


def as_polars(frame: Any, timestamp: str, source: str = "DataFrame") -> pl.DataFrame:
    """``frame`` as a polars DataFrame (a polars frame is returned as it is)."""
    if isinstance(frame, pl.DataFrame):
        return frame
    if is_array(frame):
        return _array(frame, timestamp, source)
    import pandas as pd

    df = frame
    dup = df.columns[df.columns.duplicated()].tolist()
    if dup:
        raise InputError(
            f"{source}: column name(s) {dup} appear more than once; give every column its own name"
        )
    if isinstance(df.index, pd.DatetimeIndex) and timestamp not in df.columns:
        df = df.rename_axis(timestamp).reset_index()
    return pl.DataFrame([_column(str(name), df[name]) for name in df.columns])


def _column(name: str, col: Any) -> pl.Series:
    """One pandas column as a polars Series, without needing pyarrow."""
    import pandas as pd

    if isinstance(col.dtype, pd.DatetimeTZDtype):
        naive = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        return pl.Series(name, naive).dt.replace_time_zone("UTC")
    try:
        out = pl.from_pandas(col)
        return (out if isinstance(out, pl.Series) else out.to_series()).alias(name)
    except (ImportError, TypeError, ValueError, pl.exceptions.PolarsError):
        pass  # extension dtypes (Int64, string, category) and object columns
    missing = col.isna().tolist()
    values = [None if m else v for v, m in zip(col.tolist(), missing, strict=True)]
    try:
        return pl.Series(name, values, strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        # mixed types ("1.5" and 2.0, "err"): text, so the checks name the cell
        return pl.Series(name, [None if v is None else str(v) for v in values], pl.String)


def _array(obj: Any, timestamp: str, source: str) -> pl.DataFrame:
    """An array (:func:`is_array`) as a table: ``column_1``, ... or the Series' name."""
    import numpy as np

    if isinstance(obj, pl.Series):
        return pl.DataFrame([obj.alias(obj.name or "value")])
    if not isinstance(obj, np.ndarray):  # a pandas Series: a frame of its one column
        return as_polars(obj.to_frame(obj.name if obj.name is not None else "value"), timestamp,
                         source)  # fmt: skip
    if obj.ndim not in (1, 2):
        raise InputError(
            f"{source}: an array of {obj.ndim} dimensions; give one value per row (1-D) or "
            "rows x features (2-D)"
        )
    cols = obj.reshape(obj.shape[0], -1)
    return pl.DataFrame({f"column_{j + 1}": cols[:, j] for j in range(cols.shape[1])})
