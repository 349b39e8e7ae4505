"""Scoring into a folder of partitions (anomae.score_dir): the same rows and events as one
file; a run killed after some partitions (their files and the manifest as a kill leaves
them) finished by --resume without rescoring them; manifests of another model, partition
count or changed inputs refused. On a real LocalCluster (process workers): the same files
and manifest as the single process in both layouts, a failed task leaving a manifest that
--resume (with --dask) continues from (skips without Dask, fails with
ANOMAE_REQUIRE_SERVERS=1)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from anomae.atomic import OutputError
from anomae.errors import InputError
from anomae.score import score_files
from anomae.score_dir import MANIFEST, score_to_folder
from tests.conftest import run_cli
from tests.test_score_cluster import _need_dask, client, lake, model

__all__ = ["client"]

KEYS = ["series", "timestamp"]


def _read(folder: Path, name: str) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted(folder.glob(f"group=*/{name}"))])


def test_folder_equals_one_file_and_resumes(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake")
    score_files(mdl, [data], tmp_path / "s.parquet", tmp_path / "e.parquet")
    out = tmp_path / "out"
    s = score_to_folder(mdl, [data], out, partitions=4, batch_rows=500)
    assert s.n_windows == pl.read_parquet(tmp_path / "s.parquet").height
    assert _read(out, "scores.parquet").sort(KEYS).equals(
        pl.read_parquet(tmp_path / "s.parquet").sort(KEYS))  # fmt: skip
    assert _read(out, "events.parquet").sort(["series", "start"]).equals(
        pl.read_parquet(tmp_path / "e.parquet").sort(["series", "start"]))  # fmt: skip
    assert pl.scan_parquet(out / "group=*" / "scores.parquet").collect().height == s.n_windows

    # as a kill after partitions 0 and 1 leaves it: 2 and 3 not in the manifest, one half
    # written (a temporary), one old
    man = json.loads((out / MANIFEST).read_text())
    for k in ("2", "3"):
        del man["done"][k]
    (out / MANIFEST).write_text(json.dumps(man))
    (out / "group=2" / "scores.parquet").unlink()
    (out / "group=3" / ".scores.parquet.999999.abcd.tmp").write_bytes(b"half")
    kept = {k: os.stat(out / f"group={k}" / "scores.parquet").st_mtime_ns for k in (0, 1)}
    r = run_cli(["score", str(mdl), str(data), "-o", f"{out}/", "--partitions", "4", "--resume"])
    assert r.returncode == 0, r.stderr
    assert kept == {k: os.stat(out / f"group={k}" / "scores.parquet").st_mtime_ns for k in (0, 1)}
    assert _read(out, "scores.parquet").sort(KEYS).equals(
        pl.read_parquet(tmp_path / "s.parquet").sort(KEYS))  # fmt: skip
    assert sorted(json.loads((out / MANIFEST).read_text())["done"]) == ["0", "1", "2", "3"]
    assert not list(out.rglob("*.tmp"))


def test_resume_refuses_another_model_or_changed_inputs(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    other = model(tmp_path / "other.onnx", ("a", "b", "c"), length=4)
    data = lake(tmp_path / "lake", series=3, days=2)
    out = tmp_path / "out"
    score_to_folder(mdl, [data], out, partitions=2)
    before = (out / MANIFEST).read_bytes()
    with pytest.raises(InputError, match="written by another model"):
        score_to_folder(other, [data], out, partitions=2, resume=True)
    with pytest.raises(InputError, match="written with 2 partitions"):
        score_to_folder(mdl, [data], out, partitions=3, resume=True)
    with pytest.raises(InputError, match="holds a scoring run"):
        score_to_folder(mdl, [data], out, partitions=2)
    f = next(data.rglob("*.parquet"))
    pl.read_parquet(f).head(100).write_parquet(f)
    with pytest.raises(InputError, match="the inputs changed"):
        score_to_folder(mdl, [data], out, partitions=2, resume=True)
    assert (out / MANIFEST).read_bytes() == before  # refused: nothing touched
    r = run_cli(["score", str(other), str(data), "-o", f"{out}/", "--partitions", "2",
                 "--resume"])  # fmt: skip
    assert r.returncode == 1 and "another model" in r.stderr
    # --force starts over, with another partition count: the old partitions go
    score_to_folder(other, [data], out, partitions=3, force=True)
    assert sorted(p.name for p in out.glob("group=*")) == ["group=0", "group=1", "group=2"]


def test_resume_needs_a_folder(tmp_path: Path) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake", series=2, days=1)
    r = run_cli(["score", str(mdl), str(data), "-o", str(tmp_path / "s.parquet"), "--resume"])
    assert r.returncode == 2 and "folder" in r.stderr


def _files(folder: Path) -> dict[str, pl.DataFrame]:
    return {str(p.relative_to(folder)): pl.read_parquet(p) for p in folder.rglob("*.parquet")}


def _manifest(folder: Path) -> dict[str, Any]:
    return {k: v for k, v in json.loads((folder / MANIFEST).read_text()).items() if k != "inputs"}


@pytest.mark.parametrize("by", ["group", "date"])
def test_dask_folder_equals_single_process(tmp_path: Path, client: Any, by: str) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake")
    score_to_folder(mdl, [data], tmp_path / "one", partitions=4, batch_rows=500, partition_by=by)
    s = score_to_folder(mdl, [data], tmp_path / "many", partitions=4, batch_rows=500,
                        partition_by=by, client=client)  # fmt: skip
    one, many = _files(tmp_path / "one"), _files(tmp_path / "many")
    assert sorted(one) == sorted(many) and len(one) >= 8
    for name, df in one.items():
        assert df.equals(many[name]), name  # the same rows in the same order
    assert _manifest(tmp_path / "one") == _manifest(tmp_path / "many")
    assert sorted(_manifest(tmp_path / "many")["done"]) == ["0", "1", "2", "3"]
    assert s.n_windows == sum(df.height for n, df in many.items() if "scores" in n) > 0
    assert not list((tmp_path / "many").rglob("*.tmp"))


def test_dask_failed_task_then_resume(tmp_path: Path, client: Any) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake")
    want = tmp_path / "one"
    score_to_folder(mdl, [data], want, partitions=4, partition_by="date")
    out = tmp_path / "out"
    # group 3 (m04, m06) cannot put its file in place: a folder where its file goes
    day = sorted(p.name for p in want.glob("date=*"))[-1]
    (out / day / "scores-3.parquet").mkdir(parents=True)
    with pytest.raises(OutputError):
        score_to_folder(mdl, [data], out, partitions=4, partition_by="date", client=client)
    done = json.loads((out / MANIFEST).read_text())["done"]
    assert done and "3" not in done
    listed = {f: os.stat(out / f).st_mtime_ns for k in done for f in done[k]["files"]}
    (out / day / "scores-3.parquet").rmdir()
    s = score_to_folder(mdl, [data], out, partitions=4, partition_by="date", resume=True,
                        client=client)  # fmt: skip
    assert s.outputs["resumed"] == str(len(done))
    assert listed == {f: os.stat(out / f).st_mtime_ns for f in listed}  # not rescored
    a, b = _files(want), _files(out)
    assert sorted(a) == sorted(b) and all(a[n].equals(b[n]) for n in a)
    assert not list(out.rglob("*.tmp"))


def test_cli_dask_resume_skips_finished_groups(tmp_path: Path) -> None:
    _need_dask()
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake", series=5, days=2)
    out = tmp_path / "out"
    score_to_folder(mdl, [data], out, partitions=3)
    want = _files(out)
    # as a kill after group 0 leaves it: 1 and 2 not in the manifest, 2's scores gone
    man = json.loads((out / MANIFEST).read_text())
    for k in ("1", "2"):
        del man["done"][k]
    (out / MANIFEST).write_text(json.dumps(man))
    (out / "group=2" / "scores.parquet").unlink()
    kept = os.stat(out / "group=0" / "scores.parquet").st_mtime_ns
    r = run_cli(["score", str(mdl), str(data), "-o", f"{out}/", "--partitions", "3", "--resume",
                 "--dask", "local:2"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert kept == os.stat(out / "group=0" / "scores.parquet").st_mtime_ns
    got = _files(out)
    assert sorted(got) == sorted(want) and all(got[n].equals(want[n]) for n in want)
    assert sorted(json.loads((out / MANIFEST).read_text())["done"]) == ["0", "1", "2"]
    bad = run_cli(["score", str(mdl), str(data), "-o", f"{out}/", "--dask", "local:2",
                   "--dask-groups", "2", "--force"])  # fmt: skip
    assert bad.returncode == 2 and "--partitions" in bad.stderr
