"""Feature and label cells as arrays, bad cells named by file, column and row."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from anomae.cells import _labels, _values
from anomae.errors import InputError


@pytest.mark.parametrize(
    ("cells", "want"),
    [(["1.5", "NA", " 2"], [1.5, math.nan, 2.0]),
     (["", "null", "None"], [math.nan] * 3),
     ([1, None, 3], [1.0, math.nan, 3.0]),
     ([True, False, None], [1.0, 0.0, math.nan])],
)  # fmt: skip
def test_numbers_and_missing_cells(cells: list[object], want: list[float]) -> None:
    got = _values(pl.DataFrame({"t": cells}), ["t"], "x.csv", True).ravel().tolist()
    assert [g if g == g else "nan" for g in got] == [w if w == w else "nan" for w in want]


@pytest.mark.parametrize(
    ("cells", "message"),
    [(["1", "1,5"], "x.csv: column 't', row 2 (line 3): value \"1,5\" is not a number"),
     ([1.0, float("inf")], "x.csv: column 't', row 2 (line 3): value inf is not finite"),
     ([1.0, -1e39], "x.csv: column 't', row 2 (line 3): value -inf is not finite")],
)  # fmt: skip
def test_bad_cells_are_named(cells: list[object], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _values(pl.DataFrame({"t": cells}), ["t"], "x.csv", True)


def test_labels_are_0_1_true_false_or_missing() -> None:
    col = pl.Series("label", ["1", "0", "true", "", "NA"])
    assert _labels(col, "x.csv", True).tolist() == [1, 0, 1, -1, -1]
    with pytest.raises(InputError, match=r"row 2 \(line 3\): label \"2\" is not 0/1"):
        _labels(pl.Series("label", [0, 2]), "x.csv", True)


def test_float_labels_as_in_skab() -> None:
    # SKAB's anomaly column is 0.0/1.0: polars 2 refuses is_in([0, 1]) on floats
    col = pl.Series("label", [0.0, 1.0, float("nan"), None])
    assert _labels(col, "x.csv", True).tolist() == [0, 1, -1, -1]
    with pytest.raises(InputError, match=r"label \"0.5\" is not 0/1"):
        _labels(pl.Series("label", [0.0, 0.5]), "x.csv", True)


@pytest.mark.parametrize("dtype", [pl.Float64, pl.Float32])
def test_float_columns_as_the_cast_path_makes_them(dtype: pl.DataType) -> None:
    """Float columns go straight into the array; the numbers are those of the path that
    casts in polars (an integer column sends the frame down it), nulls and NaN both NaN."""
    rng = np.random.default_rng(0)
    x = rng.normal(scale=1e3, size=(1000, 3))
    x[rng.random(x.shape) < 0.1] = np.nan
    frame = pl.DataFrame({f"f{j}": x[:, j] for j in range(3)}).cast(dtype)
    frame = frame.with_columns(pl.when(pl.col("f1") > 500).then(None).otherwise(pl.col("f1")))
    fast = _values(frame, ["f0", "f1", "f2"], "x.parquet", False)
    cast = _values(frame.with_columns(i=pl.lit(0)), ["f0", "f1", "f2", "i"], "x.parquet", False)
    assert fast.dtype == np.float32 and fast.flags.c_contiguous
    assert np.array_equal(fast, cast[:, :3], equal_nan=True)
    assert np.isnan(fast[:, 1]).sum() == frame["f1"].is_null().sum() + frame["f1"].is_nan().sum()
