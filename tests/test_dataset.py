"""Datasets: inputs expanded (files, globs, folders, hive partitions), the pre-pass checks
(features, overlaps across files, order), batches with file row numbers, and `anomae score`
over a day-partitioned dataset equal to scoring the same rows as one file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.batches import read_batches
from anomae.dataset import expand_inputs, hive_values, plan_dataset
from anomae.errors import InputError
from anomae.io import TableSpec, read_series
from anomae.score import ScoreOptions, score_files
from tests.reference_score import reference_score_all
from tests.test_stream_score import FEATURES, assert_same, detector, sort_windows

T0 = 1_700_000_000


def _day(folder: Path, day: int, series: list[str], n: int, seed: int, csv: bool = False,
         drop: tuple[str, ...] = ()) -> Path:  # fmt: skip
    rng = np.random.default_rng(seed)
    parts = []
    for s in series:
        x = rng.normal(size=(n, 3))
        parts.append(pl.DataFrame({"timestamp": T0 + day * n * 60 + np.arange(n) * 60,
                                   "series": [s] * n, "a": x[:, 0], "b": x[:, 1],
                                   "c": x[:, 2]}))  # fmt: skip
    df = pl.concat(parts).sort("timestamp", maintain_order=True).drop(list(drop))
    p = folder / f"date=2026-11-{day + 1:02d}" / ("part-0.csv" if csv else "part-0.parquet")
    p.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(p) if csv else df.write_parquet(p)
    return p


def test_expand_files_globs_folders_and_hive(tmp_path: Path) -> None:
    a = _day(tmp_path / "lake", 0, ["m1"], 5, 0)
    b = _day(tmp_path / "lake", 1, ["m1"], 5, 1)
    (tmp_path / "lake" / "_SUCCESS").write_text("")
    (tmp_path / "lake" / ".part.tmp").write_text("")
    assert expand_inputs([tmp_path / "lake"]) == [a, b]
    assert expand_inputs([str(tmp_path / "lake" / "*" / "*.parquet"), a]) == [a, b]
    with pytest.raises(InputError, match="matches no files"):
        expand_inputs([str(tmp_path / "nope" / "*.parquet")])
    with pytest.raises(InputError, match="folder holds no"):
        expand_inputs([tmp_path / "lake" / "empty"] if (tmp_path / "lake" / "empty").mkdir()
                      is None else [])  # fmt: skip
    assert hive_values(Path("x/series=p1/date=2026-11-01/part.parquet")) == {
        "series": "p1", "date": "2026-11-01"}  # fmt: skip


def test_hive_series_column_from_the_folder(tmp_path: Path) -> None:
    for s in ["p1", "p2"]:
        p = tmp_path / f"series={s}" / "data.parquet"
        p.parent.mkdir()
        pl.DataFrame({"timestamp": T0 + np.arange(4) * 60, "a": [1.0] * 4, "b": [2.0] * 4,
                      "c": [3.0] * 4}).write_parquet(p)  # fmt: skip
    ds = plan_dataset([tmp_path], TableSpec(), FEATURES)
    assert [sorted(f.spans) for f in ds.files] == [["p1"], ["p2"]]
    chunks, n = next(read_batches(ds.files[0], TableSpec(), FEATURES, False, 10))
    assert [c.name for c in chunks] == ["p1"] and n == 4


def test_series_across_days_equal_one_file_scoring(tmp_path: Path) -> None:
    """Three days, three machines in every file, read 100 rows at a time; and the same as
    CSV: identical to scoring the concatenated rows whole."""
    det = detector(tmp_path, 5, 2)
    files = [_day(tmp_path / "lake", d, ["m1", "m2", "m3"], 300, d) for d in range(3)]
    _day(tmp_path / "csv", 0, ["m1", "m2", "m3"], 300, 0, csv=True)
    _day(tmp_path / "csv", 1, ["m1", "m2", "m3"], 300, 1, csv=True)
    _day(tmp_path / "csv", 2, ["m1", "m2", "m3"], 300, 2, csv=True)
    opts = ScoreOptions(progress=False, chunk_windows=16)
    whole = pl.concat([pl.read_parquet(f) for f in files])
    series, _ = read_series([whole], features=FEATURES)
    want, want_e, _ = reference_score_all(det, series, opts)
    for src, out in [(tmp_path / "lake", "s.parquet"), (tmp_path / "csv", "s.csv")]:
        s = score_files(det.path, [src], tmp_path / out, tmp_path / f"e-{out}", opts=opts,
                        batch_rows=100)  # fmt: skip
        assert s.n_rows == 2700 and s.n_series == 3
        if out.endswith(".parquet"):
            got = pl.read_parquet(tmp_path / out)
            assert_same(sort_windows(got), sort_windows(want))
            ev = pl.read_parquet(tmp_path / f"e-{out}")
            assert_same(ev.sort(["series", "start"]), want_e.sort(["series", "start"]))
        else:
            got = pl.read_csv(tmp_path / out)
            assert got.height == want.height
            # CSV holds the float32 scores' shortest text: read back as float32, bitwise
            back = got.sort(["series", "timestamp"])["score"].cast(pl.Float32).to_numpy()
            assert np.array_equal(back, sort_windows(want)["score"].to_numpy())


def test_features_disagree_names_both_files(tmp_path: Path) -> None:
    a = _day(tmp_path, 0, ["m1"], 5, 0)
    b = _day(tmp_path, 1, ["m1"], 5, 1, drop=("b",))
    with pytest.raises(InputError) as err:
        plan_dataset([a, b], TableSpec(), FEATURES)
    assert str(b) in str(err.value) and str(a) in str(err.value) and "'b'" in str(err.value)


def test_overlap_across_files_names_series_and_both_files(tmp_path: Path) -> None:
    a = _day(tmp_path, 0, ["m1", "m2"], 10, 0)
    b = tmp_path / "late.parquet"
    pl.read_parquet(a).filter(pl.col("series") == "m2").tail(2).write_parquet(b)
    with pytest.raises(InputError) as err:
        plan_dataset([a, b], TableSpec(), FEATURES)
    msg = str(err.value)
    assert "series 'm2'" in msg and str(a) in msg and str(b) in msg and "overlap" in msg


def test_files_read_in_time_order_per_series_and_opposite_orders_refused(tmp_path: Path) -> None:
    late = _day(tmp_path, 1, ["m1", "m2"], 5, 1)
    early = _day(tmp_path, 0, ["m1", "m2"], 5, 0)
    ds = plan_dataset([late, early], TableSpec(), FEATURES)
    assert [f.path for f in ds.files] == [early, late]
    assert ds.files[1].ends == {"m1", "m2"} and not ds.files[0].ends
    x, y = tmp_path / "x.parquet", tmp_path / "y.parquet"
    d0, d1 = pl.read_parquet(early), pl.read_parquet(late)
    pl.concat([d0.filter(pl.col("series") == "m1"), d1.filter(pl.col("series") == "m2")]
              ).write_parquet(x)  # fmt: skip
    pl.concat([d1.filter(pl.col("series") == "m1"), d0.filter(pl.col("series") == "m2")]
              ).write_parquet(y)  # fmt: skip
    with pytest.raises(InputError, match="opposite time order"):
        plan_dataset([x, y], TableSpec(), FEATURES)


@pytest.mark.parametrize("series_column", [True, False])
def test_plan_in_batches_equals_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, series_column: bool
) -> None:
    import anomae.dataset as ds

    n = 50
    names = ["x", "y", "z"] if series_column else ["x"]
    ts = np.repeat(np.arange(n) * 60, len(names))
    cols = {"timestamp": ts, "a": np.arange(ts.size, dtype=float)}
    if series_column:
        cols["series"] = np.tile(names, n)
    pl.DataFrame(cols).write_csv(tmp_path / "d.csv")
    whole = plan_dataset([tmp_path / "d.csv"], TableSpec(), ("a",)).files[0]
    monkeypatch.setattr(ds, "PLAN_ROWS", 7)
    batched = plan_dataset([tmp_path / "d.csv"], TableSpec(), ("a",)).files[0]
    assert batched.spans == whole.spans and batched.rows == whole.rows == ts.size
    # a row out of order in a later batch: named by its row in the file, not in the batch
    bad = pl.DataFrame(cols).with_columns(
        pl.when(pl.int_range(pl.len()) == 40).then(0).otherwise(pl.col("timestamp"))
        .alias("timestamp"))  # fmt: skip
    bad.write_csv(tmp_path / "d.csv")
    with pytest.raises(InputError, match=r"row 41 \(line 42\)"):
        plan_dataset([tmp_path / "d.csv"], TableSpec(), ("a",))


def _no_time(folder: Path, day: int, series: list[str], n: int, seed: int) -> Path:
    """:func:`_day`'s file without its time column (rows interleaved in time order)."""
    src = _day(folder / "src", day, series, n, seed)
    p = folder / "lake" / src.parent.name / "part-0.csv"
    p.parent.mkdir(parents=True, exist_ok=True)
    pl.read_parquet(src).drop("timestamp").write_csv(p)
    return p


def test_rows_without_time_are_numbered_and_counted_on_across_files(tmp_path: Path) -> None:
    """``TableSpec(timestamp="")``: each row's time is its number (seconds), the second
    file's counted on from the first's; batch scoring, read in pieces of 7 rows, equals
    scoring the rows whole in memory."""
    rows = TableSpec(timestamp="")
    assert rows.rows and rows.timestamp == "#row" and not TableSpec().rows
    files = [_no_time(tmp_path, d, ["m1", "m2"], 40, d) for d in range(2)]
    one, _ = read_series([files[0]], rows, FEATURES)
    # rows interleave m1, m2: each series' times are its rows' numbers in the file
    assert [s.name for s in one] == ["m1", "m2"]
    assert (one[0].timestamps == np.arange(0, 80, 2) * 10**9).all()
    assert (one[1].timestamps == np.arange(1, 80, 2) * 10**9).all()
    ds = plan_dataset([tmp_path / "lake"], rows, FEATURES)
    assert [f.row0 for f in ds.files] == [0, 80]
    assert ds.files[1].spans["m2"] == (81 * 10**9, 159 * 10**9, 40)
    det = detector(tmp_path, 5, 2)
    whole = pl.concat([pl.read_csv(f) for f in files])
    series, _ = read_series([whole], rows, FEATURES)
    opts = ScoreOptions(progress=False, chunk_windows=16)
    want, want_e, _ = reference_score_all(det, series, opts)
    s = score_files(det.path, [tmp_path / "lake"], tmp_path / "s.parquet",
                    tmp_path / "e.parquet", rows, opts=opts, batch_rows=7)  # fmt: skip
    assert s.n_rows == 160
    got = pl.read_parquet(tmp_path / "s.parquet")
    assert_same(sort_windows(got), sort_windows(want))
    assert 150 < got["timestamp"].dt.epoch("s").max() <= 159  # the second file's numbers


def test_rows_without_time_refuse_a_column_of_that_name(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    pl.DataFrame({"#row": [1, 2], "a": [1.0, 2.0], "b": [1.0, 2.0], "c": [1.0, 2.0]}).write_csv(p)
    with pytest.raises(InputError, match="a column named '#row'"):
        read_series([p], TableSpec(timestamp=""))
    pl.read_csv(p).drop("#row").write_csv(p)
    with pytest.raises(InputError, match="--timestamp-column ''"):
        read_series([p], TableSpec())  # no time column: the message says how to go without
