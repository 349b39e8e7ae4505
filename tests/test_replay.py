"""``anomae replay``: files to the monitor's readings (anomae/replay.py; the command's own
tests are in tests/cli/test_cli_replay.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import run_cli

from anomae.io import TableSpec, read_series
from anomae.monitor.readings import ReadingParser
from anomae.monitor.sources.base import Raw
from anomae.replay import readings, replay

CSV = """timestamp,machine,temp,rpm,label
2026-01-01T00:00:00Z,b,1.5,900,0
2026-01-01T00:00:00Z,a,2.25,,0
2026-01-01T00:01:30Z,a,0.1,1000.5,1
2026-01-01T00:01:00Z,b,-3e-8,901,0
"""


def test_rows_merge_in_time_order_and_parse_back_exactly(tmp_path: Path) -> None:
    src = tmp_path / "two.csv"
    src.write_text(CSV.replace("00:01:00Z,b", "00:02:00Z,b"))
    spec = TableSpec(series="machine")
    series, feats = read_series(src, spec)
    lines = list(readings(series, feats, chunk_rows=3))  # chunks do not change the order
    got = [json.loads(x) for x in lines]
    assert [(x["series"], x["ts"], x["seq"]) for x in got] == [
        ("b", "2026-01-01T00:00:00Z", 0), ("a", "2026-01-01T00:00:00Z", 0),
        ("a", "2026-01-01T00:01:30Z", 1), ("b", "2026-01-01T00:02:00Z", 1),
    ]  # fmt: skip
    assert got[1]["values"] == {"temp": 2.25, "rpm": None} and "label" not in got[1]["values"]
    parsed = ReadingParser(feats).parse([Raw(x.encode()) for x in lines])
    by_series = {s.name: s for s in series}
    for i, name in enumerate(parsed.series):
        s, row = by_series[name], got[i]["seq"]
        assert parsed.ts[i] * 1e9 == s.timestamps[row]
        np.testing.assert_array_equal(
            np.asarray(parsed.values[i], np.float32), s.values[row]
        )  # float32 values survive the text exactly, NaN as null


def test_missing_series_column_is_named(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text(CSV)
    with pytest.raises(ValueError, match="'host'"):
        replay([src], sys.stdout, TableSpec(series="host"))


@pytest.mark.slow
def test_replay_into_the_monitor_equals_anomae_score(
    small_demo: dict[str, Path], tmp_path: Path
) -> None:
    """Batch == stream: `anomae replay FILE | anomae monitor --source -` scores the windows
    `anomae score FILE` scores, with the same values."""
    model = tmp_path / "model.onnx"
    quick = ["--window", "16", "--hidden", "32,8", "--epochs", "2", "--train-stride", "4"]
    r = run_cli(["train", str(small_demo["train"]), "-o", str(model), *quick, "--no-progress"])
    assert r.returncode == 0, r.stderr
    feed, sink = tmp_path / "feed.jsonl", tmp_path / "sink.jsonl"
    r = run_cli(["replay", str(small_demo["test"]), "-o", str(feed)])
    assert r.returncode == 0, r.stderr
    with open(feed, "rb") as stdin:
        m = subprocess.run(
            [sys.executable, "-m", "anomae.cli", "monitor", str(model), "--source", "-",
             "--sink", str(sink), "--listen", "127.0.0.1:0"],
            stdin=stdin, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert m.returncode == 0, m.stderr
    scores = tmp_path / "scores.parquet"
    r = run_cli(["score", str(model), str(small_demo["test"]), "-o", str(scores)])
    assert r.returncode == 0, r.stderr
    batch = pl.read_parquet(scores)
    recs = [json.loads(x) for x in sink.read_text().splitlines()]
    stream = pl.DataFrame([x for x in recs if x["type"] == "window"]).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC")
        .cast(pl.Datetime("ns", "UTC")).alias("timestamp")
    )  # fmt: skip
    assert stream.height == batch.height > 0
    both = batch.join(stream, on=["series", "timestamp"], how="inner", suffix="_stream")
    assert both.height == batch.height  # the same windows, window for window
    np.testing.assert_allclose(both["score_stream"], both["score"], rtol=1e-5, atol=1e-7)
