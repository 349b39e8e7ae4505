"""DataFrames into read_series: pandas and polars tables give the series a file gives, and a
bad frame gets the file's InputError naming the frame, column and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from anomae.errors import InputError
from anomae.frames import as_polars, is_frame, untimed
from anomae.io import read_series

IDX = pd.date_range("2026-01-01", periods=5, freq="min")


def _pandas(df: pl.DataFrame) -> pd.DataFrame:
    """polars -> pandas without pyarrow (not a dependency)."""
    return pd.DataFrame({c: df[c].to_numpy() for c in df.columns})


def test_frames_read_as_the_file_reads(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "timestamp": ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"],
            "series": ["a", "b", "a"],
            "temp": [1.0, None, 3.0],
            "flow": [1, 2, 3],
            "label": [0, 1, 0],
        }
    ).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC"))
    path = tmp_path / "x.parquet"
    df.write_parquet(path)
    want, want_f = read_series(path)
    for frame in (df, _pandas(df)):
        got, got_f = read_series(frame)
        assert got_f == want_f == ("temp", "flow")
        assert [s.name for s in got] == ["a", "b"]
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g.timestamps, w.timestamps)
            np.testing.assert_array_equal(g.values, w.values)
            np.testing.assert_array_equal(g.labels, w.labels)
            assert g.source == "DataFrame"


def test_a_pandas_datetime_index_is_the_timestamp_column() -> None:
    tz = pd.date_range("2026-01-01T01:00", periods=5, freq="min", tz="Europe/Paris")
    for index in (IDX, IDX.rename("when"), tz):
        [s], features = read_series(pd.DataFrame({"temp": np.arange(5.0)}, index=index))
        assert features == ("temp",) and s.name == "DataFrame"
        assert s.timestamps[0] == np.datetime64("2026-01-01T00:00", "ns").astype(np.int64)
        assert np.diff(s.timestamps).tolist() == [60 * 10**9] * 4


def test_each_frame_of_a_list_is_named_and_a_series() -> None:
    a = pd.DataFrame({"temp": np.arange(5.0)}, index=IDX)
    series, _ = read_series([a, a * 2])
    assert [s.name for s in series] == ["DataFrame 1", "DataFrame 2"]
    assert series[1].values[:, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"temp": [1.0, 2, 3, 4, 5], "flow": [1, 2, "err", 4, 5]}, index=IDX),
            "DataFrame: column 'flow', row 3: value \"err\" is not a number",
        ),
        (
            pd.DataFrame({"temp": [1.0, 2, np.inf, 4, 5]}, index=IDX),
            "DataFrame: column 'temp', row 3: value inf is not finite",
        ),
        (
            pd.DataFrame({"temp": [1.0, 2, 3, 4, 5]}),
            "DataFrame: no timestamp column 'timestamp'; columns are: 'temp' (name the right "
            "one with --timestamp-column; pipelines: [data] timestamp; anomae.fit: "
            "timestamp=). Rows in time order without a time column: say so with "
            "--timestamp-column '' ([data] timestamp = \"\", timestamp=None)",
        ),
        (
            pd.DataFrame({"temp": [1.0, 2, 3, 4, 5]}, index=IDX[[0, 1, 3, 2, 4]]),
            "timestamp 2026-01-01T00:02:00 at row 4 is not after 2026-01-01T00:03:00 at row 3",
        ),
        (
            pd.DataFrame({"temp": [1.0, 2, 3, 4, 5], "label": [0, 1, 7, 0, 0]}, index=IDX),
            "DataFrame: column 'label', row 3: label \"7\" is not 0/1",
        ),
        (
            pd.DataFrame([[1.0, 2.0]] * 5, columns=["temp", "temp"], index=IDX),
            "DataFrame: column name(s) ['temp'] appear more than once",
        ),
        (
            pl.DataFrame({"timestamp": IDX.to_numpy(), "temp": ["1", "2", "x", "4", "5"]}),
            "DataFrame: column 'temp', row 3: value \"x\" is not a number",
        ),
        (
            pd.DataFrame({"temp": []}, index=pd.DatetimeIndex([])),
            "DataFrame: no data rows",
        ),
    ],
)
def test_bad_frames_name_frame_column_and_row(frame: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        read_series(frame)
    assert message in str(err.value)


def test_the_model_features_must_be_in_the_frame() -> None:
    frame = pd.DataFrame({"temp": np.arange(5.0)}, index=IDX)
    with pytest.raises(InputError, match="DataFrame 2: the model needs feature column"):
        read_series([frame, frame.rename(columns={"temp": "t"})], features=["temp"])


def test_is_frame_tells_frames_from_paths_and_lists() -> None:
    assert is_frame(pd.DataFrame()) and is_frame(pl.DataFrame())
    assert not is_frame("x.csv") and not is_frame([pd.DataFrame()])
    assert as_polars(pl.DataFrame({"a": [1]}), "timestamp").columns == ["a"]


def test_arrays_are_tables_with_numbered_columns_and_no_time() -> None:
    x = np.arange(12.0).reshape(6, 2)
    assert as_polars(x, "timestamp").to_dict(as_series=False) == {
        "column_1": [0.0, 2.0, 4.0, 6.0, 8.0, 10.0], "column_2": [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]
    }  # fmt: skip
    assert as_polars(x[:, 0], "timestamp").columns == ["column_1"]
    assert as_polars(pd.Series([1.0, 2.0], name="flow"), "timestamp").columns == ["flow"]
    assert as_polars(pl.Series([1.0, 2.0]), "timestamp").columns == ["value"]
    timed = pd.Series([1.0] * 5, index=IDX, name="flow")
    assert as_polars(timed, "timestamp").columns == ["timestamp", "flow"]
    assert [untimed(a) for a in (x, pl.Series([1.0]), pd.Series([1.0]), timed, pd.DataFrame())] \
        == [True, True, True, False, False]  # fmt: skip
    with pytest.raises(InputError, match="an array of 3 dimensions; give one value per row"):
        as_polars(np.zeros((2, 2, 2)), "timestamp")
    # read as a file without a header and without time
    from anomae.io import TableSpec

    (s,), feats = read_series(x, TableSpec(timestamp=""))
    assert feats == ("column_1", "column_2") and np.array_equal(s.values, x.astype(np.float32))
    series, _ = read_series([x, x[:3]], TableSpec(timestamp=""))  # one series each
    assert [s.name for s in series] == ["DataFrame 1", "DataFrame 2"]
