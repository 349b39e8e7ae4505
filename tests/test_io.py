"""Tests for anomae.io: every bad input names file, column and row; good inputs agree."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.io import InputError, SeriesData, TableSpec, fingerprint, read_series, read_table

T0 = "2026-01-01T00:00:00"


def ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


def minutes(n: int) -> str:
    return f"2026-01-01T00:{n:02d}:00"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def good_csv(rows: int = 3) -> str:
    return "timestamp,x,y\n" + "".join(f"{minutes(i)},{i},{i * 2}\n" for i in range(rows))


def late_bad_value() -> str:
    # 10_000 rows is what the reader infers types from; the bad value comes after them.
    rows = "".join(f"{i},{i}.5\n" for i in range(1, 10_002))
    return "timestamp,x\n" + rows + "10002,oops\n"


def unsorted_series() -> str:
    rows = [("m1", 0), ("m2", 1), ("m1", 2), ("m2", 3), ("m1", 4), ("m2", 6), ("m2", 5)]
    return "timestamp,series,x\n" + "".join(f"{minutes(t)},{s},1\n" for s, t in rows)


def parquet_text_feature(path: Path) -> None:
    pl.DataFrame({"timestamp": [0, 1, 2], "x": ["1", "2", "abc"]}).write_parquet(path)


# (id, file name, content or writer or None for no file, spec, features, expected fragments)
BAD: list[tuple[str, str, object, TableSpec, list[str] | None, list[str]]] = [
    ("missing-file", "nope.csv", None, TableSpec(), None, ["does not exist"]),
    ("extension", "data.xlsx", "a,b\n", TableSpec(), None, ["'.xlsx'", ".csv", ".txt", ".pq"]),
    ("corrupt-parquet", "bad.parquet", b"\x00garbage" * 40, TableSpec(), None, ["PARQUET"]),
    ("nul-bytes-csv", "bin.csv", b"timestamp,x\n\x00\x01\x02", TableSpec(), None, ["UTF-8"]),
    ("ragged-csv", "rag.csv", f"timestamp,x\n{T0},1,2,3\n", TableSpec(), None, ["CSV"]),
    ("zero-bytes", "empty.csv", "", TableSpec(), None, ["empty", "0 bytes"]),
    ("header-only", "head.csv", "timestamp,x\n", TableSpec(), None, ["no data rows"]),
    (
        "no-timestamp",
        "t.csv",
        f"time,x\n{T0},1\n",
        TableSpec(),
        None,
        ["timestamp column 'timestamp'", "'time', 'x'", "--timestamp-column"],
    ),
    (
        "custom-timestamp-missing",
        "t.csv",
        good_csv(),
        TableSpec(timestamp="ts"),
        None,
        ["timestamp column 'ts'", "'timestamp', 'x', 'y'"],
    ),
    (
        "explicit-series-missing",
        "s.csv",
        good_csv(),
        TableSpec(series="machine"),
        None,
        ["series column 'machine'", "'timestamp', 'x', 'y'"],
    ),
    (
        "spec-features-missing",
        "f.csv",
        good_csv(),
        TableSpec(features=("x", "z")),
        None,
        ["feature column(s) 'z' not found", "'timestamp', 'x', 'y'"],
    ),
    (
        "model-features-missing",
        "m.csv",
        good_csv(),
        TableSpec(),
        ["pressure", "x", "flow"],
        ["the model needs feature column(s) 'pressure', 'flow'", "has: 'timestamp', 'x', 'y'"],
    ),
    (
        "non-numeric",
        "n.csv",
        f"timestamp,x,y\n{minutes(0)},1,2\n{minutes(1)},abc,3\n",
        TableSpec(),
        None,
        ["column 'x', row 2 (line 3)", 'value "abc" is not a number'],
    ),
    (
        "non-numeric-selected",
        "n.csv",
        f"timestamp,x,y\n{minutes(0)},1,2\n{minutes(1)},2,1;5\n",
        TableSpec(),
        ["y"],
        ["column 'y', row 2 (line 3)", '"1;5"'],
    ),
    (
        "non-numeric-after-inference",
        "late.csv",
        late_bad_value(),
        TableSpec(),
        None,
        ["column 'x', row 10002 (line 10003)", '"oops"'],
    ),
    (
        "non-numeric-parquet",
        "p.parquet",
        parquet_text_feature,
        TableSpec(),
        ["x"],
        ["column 'x', row 3:", '"abc"'],
    ),
    (
        "no-numeric-features",
        "text.csv",
        f"timestamp,site\n{T0},north\n",
        TableSpec(),
        None,
        ["no numeric feature columns", "'site'"],
    ),
    (
        "empty-timestamp",
        "e.csv",
        f"timestamp,x\n{minutes(0)},1\n,2\n",
        TableSpec(),
        None,
        ["column 'timestamp', row 2 (line 3)", "timestamp is empty"],
    ),
    (
        "unparseable-timestamp",
        "u.csv",
        f"timestamp,x\n{minutes(0)},1\n01/02/2026,2\n",
        TableSpec(),
        None,
        ["column 'timestamp', row 2 (line 3)", '"01/02/2026"', "ISO-8601"],
    ),
    (
        "epoch-milliseconds",
        "ms.csv",
        "timestamp,x\n1767225600000,1\n",
        TableSpec(),
        None,
        ["column 'timestamp', row 1 (line 2)", "milliseconds"],
    ),
    (
        "unsorted",
        "u.csv",
        unsorted_series(),
        TableSpec(),
        None,
        [
            "series 'm2': timestamp 2026-01-01T00:05:00 at row 7 (line 8) is not after "
            "2026-01-01T00:06:00 at row 6 (line 7)",
            "sort the file or drop duplicates",
        ],
    ),
    (
        "duplicate-timestamp",
        "d.csv",
        f"timestamp,x\n{minutes(0)},1\n{minutes(1)},2\n{minutes(1)},3\n",
        TableSpec(),
        None,
        ["series 'd'", "at row 3 (line 4) is not after", "strictly increasing"],
    ),
    (
        "bad-label",
        "l.csv",
        f"timestamp,x,label\n{minutes(0)},1,0\n{minutes(1)},2,2\n",
        TableSpec(),
        None,
        ["column 'label', row 2 (line 3)", 'label "2" is not 0/1'],
    ),
    (
        "bad-label-text",
        "l.csv",
        f"timestamp,x,label\n{minutes(0)},1,0\n{minutes(1)},2,yes\n",
        TableSpec(),
        None,
        ["column 'label', row 2 (line 3)", '"yes"'],
    ),
    (
        "empty-series-id",
        "s.csv",
        f"timestamp,series,x\n{minutes(0)},a,1\n{minutes(1)},,2\n",
        TableSpec(),
        None,
        ["column 'series', row 2 (line 3)", "series id is empty"],
    ),
    (
        "infinite-value",
        "i.csv",
        f"timestamp,x,y\n{minutes(0)},1,2\n{minutes(1)},3,inf\n",
        TableSpec(),
        None,
        ["column 'y', row 2 (line 3)", "not finite"],
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "spec", "features", "expected"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_input_names_file_and_place(
    tmp_path: Path,
    name: str,
    content: object,
    spec: TableSpec,
    features: list[str] | None,
    expected: list[str],
) -> None:
    path = tmp_path / name
    if isinstance(content, str | bytes):
        write(path, content)
    elif callable(content):
        content(path)
    with pytest.raises(InputError) as info:
        read_series(path, spec, features=features)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_input_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        read_series(tmp_path / "nope.parquet")


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        read_series(tmp_path)


def test_same_series_in_two_files_names_both(tmp_path: Path) -> None:
    body = f"timestamp,series,x\n{minutes(0)},m1,1\n"
    a, b = write(tmp_path / "a.csv", body), write(tmp_path / "b.csv", body)
    with pytest.raises(InputError) as info:
        read_series([a, b])
    assert "series 'm1'" in str(info.value)
    assert str(a) in str(info.value) and str(b) in str(info.value)


def test_files_with_different_numeric_columns_are_rejected(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", good_csv())
    b = write(tmp_path / "b.csv", f"timestamp,x,z\n{T0},1,2\n")
    with pytest.raises(InputError) as info:
        read_series([a, b])
    assert "lacks 'y'" in str(info.value) and "has extra 'z'" in str(info.value)


TYPED = pl.DataFrame(
    {
        "timestamp": [datetime(2026, 1, 1, 0, m, tzinfo=UTC) for m in range(5)],
        "series": ["m1", "m2", "m1", "m2", "m1"],
        "temp": [20.5, None, 21.0, 19.0, float("nan")],
        "flow": [1, 2, 3, 4, 5],
        "label": [0, 0, 1, None, 0],
        "anomaly": [0, 0, 1, 0, 0],
        "site": ["n", "s", "n", "s", "n"],
    }
)
TYPED_CSV = (
    "timestamp,series,temp,flow,label,anomaly,site\n"
    "2026-01-01T00:00:00Z,m1,20.5,1,0,0,n\n"
    "2026-01-01T00:01:00Z,m2,,2,0,0,s\n"
    "2026-01-01T00:02:00Z,m1,21.0,3,1,1,n\n"
    "2026-01-01T00:03:00Z,m2,19.0,4,,0,s\n"
    "2026-01-01T00:04:00Z,m1,NaN,5,0,0,n\n"
)


def assert_same(a: list[SeriesData], b: list[SeriesData]) -> None:
    assert [s.name for s in a] == [s.name for s in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.timestamps, y.timestamps)
        np.testing.assert_array_equal(x.values, y.values)
        np.testing.assert_array_equal(x.row_offset, y.row_offset)
        assert (x.labels is None) == (y.labels is None)
        if x.labels is not None:
            np.testing.assert_array_equal(x.labels, y.labels)


@pytest.fixture
def both(tmp_path: Path) -> tuple[Path, Path]:
    csv = write(tmp_path / "plant.csv", TYPED_CSV)
    parquet = tmp_path / "plant.parquet"
    TYPED.write_parquet(parquet)
    return csv, parquet


def test_csv_and_parquet_give_equal_series(both: tuple[Path, Path]) -> None:
    (from_csv, f1), (from_parquet, f2) = read_series(both[0]), read_series(both[1])
    assert f1 == f2 == ("temp", "flow")
    assert_same(from_csv, from_parquet)
    m1, m2 = from_csv
    assert (m1.name, m2.name) == ("m1", "m2")
    assert m1.source == str(both[0])
    assert m1.row_offset.tolist() == [0, 2, 4] and m2.row_offset.tolist() == [1, 3]
    assert m1.timestamps.dtype == np.int64 and m1.timestamps[1] == ns("2026-01-01T00:02:00")
    assert m1.values.dtype == np.float32 and m1.values.flags.c_contiguous
    assert m1.values.shape == (3, 2)
    assert m2.labels is not None and m2.labels.dtype == np.int8
    assert m2.labels.tolist() == [0, -1]  # null label means unlabelled


def test_fingerprint_is_stable_across_formats_and_sees_one_value(both: tuple[Path, Path]) -> None:
    (a, fa), (b, fb) = read_series(both[0]), read_series(both[1])
    assert fingerprint(a, fa) == fingerprint(b, fb)
    assert fingerprint(a, fa).startswith("sha256:") and len(fingerprint(a, fa)) == 7 + 16
    changed = write(both[0].with_name("changed.csv"), TYPED_CSV.replace("19.0", "19.5"))
    c, fc = read_series(changed)
    assert fingerprint(c, fc) != fingerprint(a, fa)
    assert fingerprint(a, ("flow", "temp")) != fingerprint(a, fa)


def test_fingerprint_ignores_nan_payload() -> None:
    values = np.array([[1.0, np.nan]], dtype=np.float32)
    odd = values.copy()
    odd.view(np.uint32)[0, 1] = 0x7FC00001  # another quiet NaN
    assert not np.array_equal(values.view(np.uint32), odd.view(np.uint32))

    def one(v: np.ndarray) -> list[SeriesData]:
        return [SeriesData("s", "f", np.zeros(1, np.int64), v, None, np.zeros(1, np.int64))]

    assert fingerprint(one(values), ["a", "b"]) == fingerprint(one(odd), ["a", "b"])
    assert fingerprint(one(values), ["a", "b"]) != fingerprint(one(values + 1), ["a", "b"])


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["1767225600", "1767225660"], [0, 60]),
        (["1767225600.5", "1767225601.25"], [0.5, 1.25]),
        (["2026-01-01T02:00:00+02:00", "2026-01-01T00:00:30Z"], [0, 30]),
        (["2025-12-31T23:00:00-01:00", "2026-01-01 00:00:01"], [0, 1]),
        (["2026-01-01T00:00:00.000000001", "2026-01-01T00:01"], [1e-9, 60]),
        (["2026-01-01", "2026-01-02"], [0, 86400]),
    ],
    ids=[
        "epoch-int",
        "epoch-float",
        "rfc3339-offsets",
        "negative-offset-and-space",
        "frac",
        "date",
    ],
)
def test_timestamp_formats_become_utc_nanoseconds(
    tmp_path: Path, cells: list[str], expected: list[float]
) -> None:
    path = write(tmp_path / "t.csv", "timestamp,x\n" + "".join(f"{c},1\n" for c in cells))
    [s], _ = read_series(path)
    want = [ns("2026-01-01T00:00:00") + round(e * 1e9) for e in expected]
    assert s.timestamps.tolist() == want


def test_parquet_timestamp_types(tmp_path: Path) -> None:
    berlin = pl.Series([datetime(2026, 1, 1, 1, 0), datetime(2026, 1, 1, 1, 1)]).dt
    frames = {
        "zoned": berlin.replace_time_zone("Europe/Berlin"),
        "naive-ms": pl.Series([datetime(2026, 1, 1, 0, 0), datetime(2026, 1, 1, 0, 1)]).cast(
            pl.Datetime("ms")
        ),
        "epoch-float": pl.Series([1767225600.0, 1767225660.0]),
    }
    for name, ts in frames.items():
        path = tmp_path / f"{name}.parquet"
        pl.DataFrame({"timestamp": ts, "x": [1.0, 2.0]}).write_parquet(path)
        [s], _ = read_series(path)
        assert s.timestamps.tolist() == [ns(T0), ns("2026-01-01T00:01:00")], name


def test_missing_cells_become_nan(tmp_path: Path) -> None:
    cells = ["", "NaN", "nan", "NA", "null", " 7 "]
    body = "".join(f"{minutes(i)},{c},1\n" for i, c in enumerate(cells))
    [s], _ = read_series(write(tmp_path / "m.csv", "timestamp,x,y\n" + body))
    assert np.isnan(s.values[:5, 0]).all() and s.values[5, 0] == 7.0
    assert s.values[:, 1].tolist() == [1.0] * 6


def test_default_features_skip_reserved_and_text_columns(both: tuple[Path, Path]) -> None:
    _, features = read_series(both[0], TableSpec(exclude=("anomaly", "flow")))
    assert features == ("temp",)
    _, features = read_series(both[0], TableSpec(label=None, exclude=()))
    assert features == ("temp", "flow", "label", "anomaly")


def test_label_like_columns_are_never_default_features(tmp_path: Path) -> None:
    """Public data's label columns (Yahoo's is_anomaly, TSB-AD's Label, SKAB's changepoint,
    attack flags) are left out unless named; ``exclude=()`` takes them."""
    p = write(tmp_path / "pub.csv", "timestamp,value,is_anomaly,Label,changepoint,Attack\n"
              + "".join(f"{minutes(i)},{i}.5,0,0,0,{i % 2}\n" for i in range(3)))  # fmt: skip
    _, features = read_series(p)
    assert features == ("value",)
    _, features = read_series(p, TableSpec(exclude=()))
    assert features == ("value", "is_anomaly", "Label", "changepoint", "Attack")
    _, features = read_series(p, features=["value", "Attack"])  # named: taken
    assert features == ("value", "Attack")


def test_features_argument_orders_and_ignores_extras(both: tuple[Path, Path]) -> None:
    series, features = read_series(both[1], features=["flow", "temp"])
    assert features == ("flow", "temp")
    assert series[0].values[:, 0].tolist() == [1.0, 3.0, 5.0]
    assert series[0].values.flags.c_contiguous


def test_spec_features_select_columns(both: tuple[Path, Path]) -> None:
    series, features = read_series(both[0], TableSpec(features=("flow",)))
    assert features == ("flow",) and series[0].values.shape == (3, 1)


@pytest.mark.parametrize("name", ["pump-7.csv", "pump-7.csv.gz", "pump-7.parquet", "pump-7.pq"])
def test_no_series_column_means_one_series_named_after_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(good_csv().encode()))
    elif name.endswith(".csv"):
        write(path, good_csv())
    else:
        pl.read_csv(good_csv().encode()).write_parquet(path)
    [s], features = read_series(path)
    assert s.name == "pump-7" and features == ("x", "y")
    assert s.values[:, 1].tolist() == [0.0, 2.0, 4.0] and s.labels is None


def test_series_column_is_optional_only_under_its_default_name() -> None:
    assert not TableSpec().needs_series
    assert TableSpec(series="machine").needs_series
    assert not TableSpec(series="machine", series_required=False).needs_series
    assert not TableSpec(series=None).needs_series


def test_several_files_keep_file_then_appearance_order(tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", unsorted_series().replace("05:00,m2", "08:00,m2"))
    b = write(tmp_path / "b.csv", f"timestamp,series,x\n{T0},007,1\n{T0},m0,2\n")
    series, _ = read_series([a, str(b)])
    assert [(s.name, s.source) for s in series] == [
        ("m1", str(a)),
        ("m2", str(a)),
        ("007", str(b)),
        ("m0", str(b)),
    ]
    assert series[1].row_offset.tolist() == [1, 3, 5, 6]


def test_labels_accept_bools_and_text(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    pl.DataFrame(
        {"timestamp": [0, 1, 2], "x": [1, 2, 3], "label": [True, None, False]}
    ).write_parquet(path)
    labels = read_series(path)[0][0].labels
    assert labels is not None and labels.tolist() == [1, -1, 0]
    text = write(tmp_path / "l.csv", "timestamp,x,label\n0,1,true\n1,2,False\n2,3,\n3,4,1\n")
    labels = read_series(text)[0][0].labels
    assert labels is not None and labels.tolist() == [1, 0, -1, 1]


def test_read_table_parses_timestamps_to_utc(both: tuple[Path, Path]) -> None:
    frame = read_table(both[0])
    assert frame.schema["timestamp"] == pl.Datetime("ns", "UTC")
    assert frame.columns == TYPED.columns
    assert frame["timestamp"].to_physical()[0] == ns(T0)


@pytest.mark.parametrize("make", [lambda p: write(p, good_csv()), lambda p: None])
def test_read_table_checks_structure(tmp_path: Path, make: Callable[[Path], object]) -> None:
    path = tmp_path / "t.csv"
    make(path)
    with pytest.raises(InputError, match="timestamp column 'when'|does not exist"):
        read_table(path, TableSpec(timestamp="when"))


def test_one_series_going_back_in_time_names_the_series_column(tmp_path: Path) -> None:
    rows = "".join(f"{minutes(m)},{mid},{m % 3},{m}.5\n" for mid in ("a", "b") for m in range(4))
    path = write(tmp_path / "fleet.csv", "timestamp,machine_id,mode,temp\n" + rows)
    with pytest.raises(InputError) as err:
        read_series(path)
    assert "strictly increasing" in str(err.value)
    assert str(err.value).endswith(
        "name their column with --series-column machine_id (candidates: machine_id; "
        "pipelines: [data] series)"
    )
    [a, b], _ = read_series(path, TableSpec(series="machine_id"))
    assert (a.name, b.name) == ("a", "b")
    # duplicates with no column to split by: no hint
    dup = write(tmp_path / "dup.csv", f"timestamp,temp\n{minutes(0)},1\n{minutes(0)},2\n")
    with pytest.raises(InputError) as err:
        read_series(dup)
    assert "--series-column" not in str(err.value)
