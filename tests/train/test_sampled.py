"""``anomae train --max-windows``: the same model as without a limit when the data has no
more windows; a sample of N windows, read in batches from a folder of day files, trained
and calibrated on held-out segments when it has more."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.detector import Detector
from tests.conftest import run_cli

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

ARGS = ["--epochs", "2", "--hidden", "4", "--window", "8", "--method", "quantile", "--q",
        "0.99", "--threads", "1", "--no-progress"]  # fmt: skip


def _train(data: list[str], out: Path, *extra: str) -> str:
    r = run_cli(["train", *data, "-o", str(out), *ARGS, *extra])
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_limit_above_the_window_count_changes_nothing(
    small_demo: dict[str, Path], tmp_path: Path
) -> None:
    train = [str(small_demo["train"])]
    _train(train, tmp_path / "a.onnx")
    said = _train(train, tmp_path / "b.onnx", "--max-windows", "1000000")
    assert "sampled" not in said
    a, b = Detector.load(tmp_path / "a.onnx"), Detector.load(tmp_path / "b.onnx")
    assert a.card.scaler == b.card.scaler and a.card.threshold == b.card.threshold
    assert a.card.data_fingerprint == b.card.data_fingerprint
    x = pl.read_parquet(small_demo["test"]).select(a.card.features).to_numpy()[:2000]
    assert np.array_equal(a.score_series(x.astype(np.float32)).score,
                          b.score_series(x.astype(np.float32)).score)  # fmt: skip


def test_sample_from_a_folder(small_demo: dict[str, Path], tmp_path: Path) -> None:
    df = pl.read_parquet(small_demo["train"])
    day = pl.col("timestamp").dt.date().cast(pl.String)
    for (d,), part in df.with_columns(day.alias("d")).group_by("d"):
        p = tmp_path / "lake" / f"date={d}" / "part-0.parquet"
        p.parent.mkdir(parents=True)
        part.drop("d", "date", strict=False).write_parquet(p)
    said = _train([str(tmp_path / "lake")], tmp_path / "m.onnx", "--max-windows", "600")
    assert "sampled 600 of" in said
    card = json.loads(run_cli(["inspect", str(tmp_path / "m.onnx"), "--json"]).stdout)
    training = card["training"]
    assert training["n_train_windows"] + training["n_val_windows"] == 600
    assert card["threshold"]["method"] == "quantile" and card["threshold"]["value"] > 0
    r = run_cli(["score", str(tmp_path / "m.onnx"), str(small_demo["test"]), "-o",
                 str(tmp_path / "s.parquet")])  # fmt: skip
    assert r.returncode == 0, r.stderr
    # every window fits, but series span the day files (read_series refuses that): sampled
    said = _train([str(tmp_path / "lake")], tmp_path / "all.onnx", "--max-windows", "10000000")
    assert "sampled" in said
