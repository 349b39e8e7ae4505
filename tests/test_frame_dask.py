"""anomae.score_dask: a user's Dask DataFrame, shuffled in any row order, scored on a real
LocalCluster with process workers: the same rows (scores bitwise) and events as the single
process (skips without Dask, fails with ANOMAE_REQUIRE_SERVERS=1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from anomae.errors import InputError
from anomae.score import score_files
from tests.test_score_cluster import client, lake, model

__all__ = ["client"]


def test_score_dask_frame_equals_single_process(tmp_path: Path, client: Any) -> None:
    import dask.dataframe as dd

    import anomae

    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    data = lake(tmp_path / "lake", series=5, days=2)
    frame = pl.concat([pl.read_parquet(p) for p in sorted(data.rglob("*.parquet"))])
    ddf = dd.from_pandas(frame.sample(fraction=1.0, shuffle=True, seed=0).to_pandas(),
                        npartitions=4)  # fmt: skip
    got = pl.from_pandas(anomae.score_dask(mdl, ddf).compute()).sort(["series", "timestamp"])
    ev = pl.from_pandas(anomae.score_dask(mdl, ddf, events=True).compute())
    ev = ev.sort(["series", "start"])
    score_files(mdl, [data], tmp_path / "s.parquet", tmp_path / "e.parquet")
    want = pl.read_parquet(tmp_path / "s.parquet").sort(["series", "timestamp"])
    assert got.height == want.height > 0
    for c in want.columns:
        assert got[c].cast(want[c].dtype).equals(want[c]), c
    assert ev.height == pl.read_parquet(tmp_path / "e.parquet").height > 0


def test_score_dask_names_missing_columns(tmp_path: Path, client: Any) -> None:
    import dask.dataframe as dd

    import anomae

    mdl = model(tmp_path / "m.onnx", ("a", "b", "c"))
    ddf = dd.from_pandas(pl.DataFrame({"timestamp": [1], "series": ["x"], "a": [1.0]})
                        .to_pandas(), npartitions=1)  # fmt: skip
    with pytest.raises(InputError, match="lacks column\\(s\\) 'b', 'c'"):
        anomae.score_dask(mdl, ddf)
    from anomae.io import TableSpec

    with pytest.raises(InputError, match="needs a time column"):  # rows have no order here
        anomae.score_dask(mdl, ddf, TableSpec(timestamp=""))
