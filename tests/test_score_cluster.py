"""Scoring on Dask workers against the single process, on a real LocalCluster with process
workers: the same rows (scores bitwise) and events, on generated day-partitioned data with
gaps, missing values and labels, on the demo data and on SKAB (when present); the filtered
(push-down) read. Without Dask the tests skip,
unless ANOMAE_REQUIRE_SERVERS=1 (CI), where they fail."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from anomae.batches import read_batches
from anomae.dataset import plan_dataset
from anomae.errors import InputError
from anomae.graph import Layer, build_graph
from anomae.io import TableSpec
from anomae.modelfile import write_model
from anomae.score import ScoreOptions, score_files
from anomae.score_cluster import group_of, parse_address, score_files_dask
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
from tests.conftest import run_cli

SKAB = Path("/work/shared/datasets/skab")


def _need_dask() -> None:
    try:
        import dask.dataframe  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        if os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1":
            pytest.fail("dask[distributed] is not installed (ANOMAE_REQUIRE_SERVERS=1)")
        pytest.skip("dask not installed (pip install -e '.[dask]')")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    _need_dask()
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as c:  # fmt: skip
        yield c


def model(path: Path, features: tuple[str, ...], length: int = 6, stride: int = 1) -> Path:
    rng = np.random.default_rng(1)
    window = WindowSpec(length, stride)
    th = Threshold(1.0, "quantile", per_series={"m01": 0.8})
    card = ModelCard(features, window, Scaler((0.0,) * len(features), (1.0,) * len(features)),
                     threshold=th, interval_s=60.0, max_gap_s=600.0)  # fmt: skip
    n = length * len(features)
    w = (rng.normal(0, 0.3, (n, n)) + np.eye(n) * 0.5).astype(np.float32)
    write_model(build_graph([Layer("MatMul", [w])], "flat", features, window, card.scaler),
                card, path)  # fmt: skip
    return path


def lake(folder: Path, series: int = 7, days: int = 3, per: int = 300) -> Path:
    """Day files, every series in each, rows interleaved, gaps, NaN, labels, bursts."""
    rng = np.random.default_rng(0)
    names = [f"m{i:02d}" for i in range(series)]
    for d in range(days):
        ts = 1_780_000_000 + d * 86_400 + np.arange(per) * 60
        ts[per // 2 :] += 3600 * (d % 2)  # a gap in some days
        x = rng.normal(size=(per * series, 3))
        x[rng.random(x.shape) < 0.03] = np.nan
        x[rng.random(per * series) < 0.02] *= 6
        df = pl.DataFrame({
            "timestamp": np.repeat(ts, series) * 10**9, "series": np.tile(names, per),
            "a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
            "label": (rng.random(per * series) < 0.02).astype(np.int8),
        }).with_columns(pl.col("timestamp").cast(pl.Datetime("ns", "UTC")))  # fmt: skip
        p = folder / f"date=d{d}" / "part-0.parquet"
        p.parent.mkdir(parents=True)
        df.write_parquet(p, row_group_size=500)
    return folder


def _same(a: Path, b: Path, keys: list[str]) -> None:
    x, y = pl.read_parquet(a).sort(keys), pl.read_parquet(b).sort(keys)
    assert x.height > 0 and x.columns == y.columns
    assert x.equals(y), "outputs differ"


def _both(tmp: Path, mdl: Path, data: list[Path], client: Any, **kw: Any) -> tuple[Path, Path]:
    one, many = tmp / "one", tmp / "many"
    s1 = score_files(mdl, data, one / "s.parquet", one / "e.parquet", batch_rows=777,
                     part_rows=1000, **kw)  # fmt: skip
    s2 = score_files_dask(mdl, data, many / "s.parquet", many / "e.parquet", client=client,
                          groups=3, batch_rows=500, part_rows=900, **kw)  # fmt: skip
    assert (s1.n_series, s1.n_rows, s1.n_windows, s1.n_anomalous, s1.n_events) == (
        s2.n_series, s2.n_rows, s2.n_windows, s2.n_anomalous, s2.n_events)  # fmt: skip
    assert s1.n_events > 0 and s1.n_anomalous > 0
    _same(one / "s.parquet", many / "s.parquet", ["series", "timestamp"])
    _same(one / "e.parquet", many / "e.parquet", ["series", "start"])
    return one, many


def test_dask_equals_single_process(tmp_path: Path, client: Any) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake")
    _, many = _both(tmp_path, mdl, [data], client)
    meta = pl.read_parquet_metadata(many / "s.parquet")
    assert meta["anomae.run_id"] == pl.read_parquet_metadata(many / "e.parquet")["anomae.run_id"]
    assert sorted(p.name for p in many.iterdir()) == ["e.parquet", "s.parquet"]  # no parts left
    # the likelihood keeps per-series state across files: still the same numbers
    from anomae.likelihood import Likelihood

    lik = ScoreOptions(likelihood=Likelihood(warmup=20, short=3, long=50))
    _both(tmp_path / "lik", mdl, [data], client, opts=lik)


def test_dask_on_the_demo(tmp_path: Path, client: Any, small_demo: dict[str, Path]) -> None:
    test = small_demo["test"]
    feats = tuple(c for c in pl.read_parquet_schema(test)
                  if c not in ("timestamp", "series", "label", "anomaly"))  # fmt: skip
    _both(tmp_path, model(tmp_path / "m.onnx", feats, length=8), [test], client)


def test_dask_on_skab(tmp_path: Path, client: Any) -> None:
    if not SKAB.is_dir():
        pytest.skip("SKAB not in /work/shared/datasets")
    files = sorted((SKAB / "valve1").glob("*.csv"))[:6]
    for f in files:
        df = pl.read_csv(f, separator=";").rename({"datetime": "timestamp", "anomaly": "label"})
        df = df.drop("changepoint").with_columns(pl.lit(f"valve1-{f.stem}").alias("series"))
        df.write_parquet(tmp_path / f"{f.stem}.parquet")
    feats = tuple(c for c in df.columns if c not in ("timestamp", "label", "series"))
    data = sorted(tmp_path.glob("*.parquet"))
    mdl = model(tmp_path / "m.onnx", feats, length=10)
    _both(tmp_path, mdl, data, client, opts=ScoreOptions(threshold=30.0))


def test_cli_local_cluster(tmp_path: Path) -> None:
    _need_dask()
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake", series=4, days=2)
    out = tmp_path / "out"
    r = run_cli(["score", str(mdl), str(data), "-o", str(out / "s.csv"), "--events",
                 str(out / "e.csv"), "--dask", "local:2", "--dask-groups", "3"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    r1 = run_cli(["score", str(mdl), str(data), "-o", str(tmp_path / "s1.csv")])
    assert r1.returncode == 0, r1.stderr
    keys = ["series", "timestamp"]
    one = pl.read_csv(tmp_path / "s1.csv").sort(keys)
    assert pl.read_csv(out / "s.csv").sort(keys).equals(one)
    x = tmp_path / "x.csv"
    bad = run_cli(["score", str(mdl), str(data), "-o", str(x), "--dask", "local:0"])
    assert bad.returncode == 1 and "local:N" in bad.stderr and not x.exists()


def test_filtered_read_pushes_the_series_down(tmp_path: Path) -> None:
    data = lake(tmp_path / "lake", series=5, days=1)
    spec = TableSpec()
    fp = plan_dataset([data], spec, ("a", "b", "c")).files[0]
    whole = [s for chunks, _ in read_batches(fp, spec, ("a", "b", "c"), True, 400) for s in chunks]
    only = {"m01", "m03"}
    got = [s for chunks, _ in read_batches(fp, spec, ("a", "b", "c"), True, 400, only)
           for s in chunks]  # fmt: skip
    assert {s.name for s in got} == only
    for name in only:
        a = np.concatenate([s.values for s in whole if s.name == name])
        b = np.concatenate([s.values for s in got if s.name == name])
        assert np.array_equal(a, b, equal_nan=True)
    plan = pl.scan_parquet(fp.path).filter(pl.col("series").is_in(sorted(only))).explain()
    assert "SELECTION" in plan or "selection" in plan.lower()  # the filter reaches the scan


def test_filtered_read_names_the_bad_row_in_the_file(tmp_path: Path) -> None:
    rows = ["timestamp,series,a"] + [f"{60 * i},{'xy'[i % 2]},{i}" for i in range(1, 40)]
    rows[31] = rows[31].rsplit(",", 1)[0] + ",oops"  # data row 31: series y
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    spec = TableSpec()
    fp = plan_dataset([tmp_path / "d.csv"], spec, ("a",)).files[0]
    with pytest.raises(InputError) as err:
        for _ in read_batches(fp, spec, ("a",), False, 8, {"y"}):
            pass
    assert "row 31" in str(err.value) and "oops" in str(err.value)


@pytest.mark.parametrize("bad", ["local:", "local:0", "local:two"])
def test_bad_local_address(bad: str) -> None:
    with pytest.raises(InputError, match="local:N"):
        parse_address(bad)


def test_groups_are_stable_and_cover_every_series() -> None:
    names = [f"pump-{i}" for i in range(200)]
    g = [group_of(n, 4) for n in names]
    assert set(g) == {0, 1, 2, 3} and g == [group_of(n, 4) for n in names]


def test_a_failed_task_fails_the_run_and_keeps_the_old_output(tmp_path: Path, client: Any) -> None:
    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    rows = ["timestamp,series,a,b,c"] + [f"{60 * i},{'xyz'[i % 3]},{i},1,2" for i in range(1, 90)]
    rows[40] = rows[40].replace(",1,2", ",oops,2")  # data row 40: series 'y'
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "s.parquet"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match=r"row 40 \(line 41\).*oops"):
        score_files_dask(mdl, [tmp_path / "d.csv"], out, client=client, groups=3, force=True,
                         batch_rows=16)  # fmt: skip
    assert out.read_bytes() == b"old"


def test_worker_detector_refuses_another_model_and_caches(tmp_path: Path) -> None:
    from anomae.detector import Detector, DetectorError
    from anomae.score_cluster import worker_detector

    path = model(tmp_path / "m.onnx", ("a", "b"))
    sha = Detector.load(path).sha256
    first = worker_detector(str(path), sha)
    assert worker_detector(str(path), sha) is first  # loaded once per worker process
    with pytest.raises(DetectorError, match="not the caller's"):
        worker_detector(str(path), "0" * 64)


def test_a_dask_task_makes_its_own_calls_and_a_single_process_group_side_by_side() -> None:
    from anomae.detector import usable_cores
    from anomae.score_cluster import GroupTask

    task = GroupTask("m.onnx", "0" * 64, [], frozenset(), TableSpec(), ScoreOptions(), False,
                     "out", threads=1)  # fmt: skip
    assert task.session() == (0, 1)  # Dask's one thread: no worker threads of its own
    side = GroupTask(**{**task.__dict__, "threads": 0, "side_by_side": True})
    assert side.session() == (usable_cores(), 1)
    gpu = GroupTask(**{**task.__dict__, "device": "cuda", "threads": 4, "side_by_side": True})
    assert gpu.session() == (1, 4)


def test_core_shares_split_the_cores_evenly_and_disjointly() -> None:
    from anomae.score_cluster import core_shares

    assert core_shares([0, 1], 2) == [[0], [1]]
    assert core_shares([2, 3, 5, 7, 8, 9, 11], 3) == [[2, 3, 5], [7, 8], [9, 11]]
    assert core_shares([0, 1, 2, 3], 1) == [[0, 1, 2, 3]]
    assert core_shares([0, 1], 3) is None  # workers would share a core: none bound


def test_local_workers_are_bound_to_their_own_cores() -> None:
    _need_dask()
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux and at least 2 cores")
    from anomae.score_cluster import dask_client

    cores = sorted(os.sched_getaffinity(0))
    with dask_client("local:2") as c:
        # every thread of each worker process, the ones started later too
        def threads_affinity() -> list[list[int]]:
            import threading

            seen: list[list[int]] = []
            t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))
            t.start()
            t.join()
            return [sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir(
                "/proc/self/task")] + seen  # fmt: skip

        got = sorted(c.run(threads_affinity).values())
    shares = [sorted({core for a in per for core in a}) for per in got]
    assert all(len({tuple(a) for a in per}) == 1 for per in got)  # one mask per process
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == cores
