"""A folder output partitioned by day (anomae.folder_parts): the rows and events of the
single file, each score in the UTC day of its timestamp and each event in the day it
starts (an event across midnight included), read back with hive partitioning; numeric
timestamps without a unit and a partition key that is also a column refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.errors import InputError
from anomae.folder_parts import check_key
from anomae.io import TableSpec
from anomae.score import ScoreOptions, score_files
from anomae.score_dir import MANIFEST, score_to_folder
from tests.conftest import run_cli
from tests.test_score_cluster import lake, model

KEYS = ["series", "timestamp"]
DAY = pl.col("timestamp").dt.date()


def _midnight(folder: Path) -> Path:
    """Two series, a row a minute from 22:00 to 02:00 UTC, a burst across midnight."""
    ts = np.datetime64("2026-03-01T22:00", "ns") + np.arange(240) * np.timedelta64(60, "s")
    rng = np.random.default_rng(3)
    frames = []
    for name in ("p1", "p2"):
        x = rng.normal(0, 0.1, (240, 3))
        if name == "p1":
            x[110:130] += 40.0  # 23:50 to 00:10
        frames.append(pl.DataFrame({"timestamp": ts, "series": name, "a": x[:, 0],
                                    "b": x[:, 1], "c": x[:, 2]}))  # fmt: skip
    folder.mkdir()
    pl.concat(frames).write_parquet(folder / "d.parquet")
    return folder


def test_date_partitions_hold_the_single_files_rows(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake")
    score_files(mdl, [data], tmp_path / "s.parquet", tmp_path / "e.parquet")
    out = tmp_path / "out"
    s = score_to_folder(mdl, [data], out, partitions=3, partition_by="date", part_rows=700)
    scores = pl.scan_parquet(out / "date=*" / "scores-*.parquet", hive_partitioning=True).collect()
    assert scores.columns == [*pl.read_parquet(tmp_path / "s.parquet").columns, "date"]
    assert scores.height == s.n_windows
    assert scores["date"].cast(pl.Date).equals(scores.select(DAY)["timestamp"].alias("date"))
    assert scores.drop("date").sort(KEYS).equals(pl.read_parquet(tmp_path / "s.parquet").sort(KEYS))
    events = pl.scan_parquet(out / "date=*" / "events-*.parquet", hive_partitioning=True).collect()
    assert events["date"].cast(pl.Date).equals(events["start"].dt.date().alias("date"))
    assert events.drop("date").sort(["series", "start"]).equals(
        pl.read_parquet(tmp_path / "e.parquet").sort(["series", "start"]))  # fmt: skip
    assert len({p.name for p in out.glob("date=*")}) >= 4  # the days cross UTC midnight
    man = json.loads((out / MANIFEST).read_text())
    listed = sorted(f for rec in man["done"].values() for f in rec["files"])
    assert man["partition_by"] == "date"
    assert listed == sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))


def test_an_event_across_midnight_goes_to_its_start_day(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = _midnight(tmp_path / "data")
    out = tmp_path / "out"
    score_to_folder(mdl, [data], out, partitions=1, partition_by="date",
                    opts=ScoreOptions(threshold=50.0))  # fmt: skip
    ev = pl.read_parquet(out / "date=2026-03-01" / "events-0.parquet")
    across = ev.filter(pl.col("end").dt.date() > pl.col("start").dt.date())
    assert across.height == 1 and across["series"][0] == "p1"
    later = pl.read_parquet(out / "date=2026-03-02" / "events-0.parquet")
    assert later.filter(pl.col("series") == "p1").height == 0
    assert sorted(p.name for p in out.glob("date=*")) == ["date=2026-03-01", "date=2026-03-02"]


def test_numeric_timestamps_need_a_unit_for_dates(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    rows = ["timestamp,series,a,b,c"] + [f"{i},x,{i % 7},1,2" for i in range(50)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    pl.read_csv(tmp_path / "d.csv").write_parquet(tmp_path / "d.parquet")
    out = tmp_path / "out"
    for f in ("d.csv", "d.parquet"):
        with pytest.raises(InputError, match="holds numbers, not dates.*--timestamp-unit"):
            score_to_folder(mdl, [tmp_path / f], out, partitions=2, partition_by="date")
        assert not out.exists()
    score_to_folder(mdl, [tmp_path / "d.csv"], out, partitions=2, partition_by="date",
                    table=TableSpec(timestamp_unit="s"))  # fmt: skip
    assert [p.name for p in out.glob("date=*")] == ["date=1970-01-01"]
    r = run_cli(["score", str(mdl), str(tmp_path / "d.csv"), "-o", f"{tmp_path}/o2/",
                 "--partition-by", "date"])  # fmt: skip
    assert r.returncode == 1 and "--timestamp-unit" in r.stderr


def test_a_partition_key_that_is_a_column_is_refused() -> None:
    with pytest.raises(InputError, match="column 'date'.*shadow"):
        check_key("date", ["series", "timestamp", "date"], "out/")
    check_key("date", ["series", "timestamp"], "out/")


def test_partition_by_refusals(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake", series=2, days=1)
    out = tmp_path / "out"
    score_to_folder(mdl, [data], out, partitions=2)
    with pytest.raises(InputError, match="written with --partition-by group"):
        score_to_folder(mdl, [data], out, partitions=2, partition_by="date", resume=True)
    r = run_cli(["score", str(mdl), str(data), "-o", str(tmp_path / "s.parquet"),
                 "--partition-by", "date"])  # fmt: skip
    assert r.returncode == 2 and "folder" in r.stderr
    # --force with the other layout: the group= partitions go once the run is complete
    score_to_folder(mdl, [data], out, partitions=2, partition_by="date", force=True)
    assert not list(out.glob("group=*")) and list(out.glob("date=*"))
