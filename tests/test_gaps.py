"""One gap rule for batch and stream: on a 1-minute series with six 17-33-minute gaps,
``anomae score`` and an ``anomae monitor`` replay (both taking the gap limit from the model
card) give the same windows, window for window, and the same events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import run_cli

from anomae.io import read_series
from anomae.spec import WindowSpec
from anomae.windows import gap_segments, segment_window_ends

pytestmark = pytest.mark.slow
TRAIN_FLAGS = ["--window", "16", "--hidden", "32,8", "--epochs", "3", "--train-stride", "2"]
TRAIN_FLAGS += ["--method", "quantile", "--q", "0.99"]  # alarms enough to compare events
GAPS_MIN = (17, 21, 25, 33, 19, 29)  # six gaps per series, in minutes


@pytest.fixture(scope="module")
def model(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gaps-model") / "model.onnx"
    r = run_cli(["train", str(small_demo["train"]), "-o", str(path), *TRAIN_FLAGS, "--no-progress"])
    assert r.returncode == 0, r.stderr
    return path


def with_gaps(test: Path, out: Path) -> Path:
    """The test period with six gaps cut into each series (rows removed, not blanked)."""
    df = pl.read_parquet(test)
    parts = []
    for name, part in df.group_by("series", maintain_order=True):
        n = part.height
        keep = np.ones(n, bool)
        for k, minutes in enumerate(GAPS_MIN):
            start = (k + 1) * n // (len(GAPS_MIN) + 1) + 7 * (name[0] == "m2")
            keep[start : start + minutes - 1] = False  # minutes - 1 rows gone: a dt of minutes
        parts.append(part.filter(pl.Series(keep)))
    path = out / "irregular.parquet"
    pl.concat(parts).write_parquet(path)
    return path


def replay_lines(path: Path, out: Path) -> Path:
    """The readings as the monitor's JSON lines, series interleaved in time (epoch seconds)."""
    df = pl.read_parquet(path).sort("timestamp", "series")
    feats = [c for c in df.columns if c not in ("timestamp", "series", "label", "anomaly")]
    df = df.with_columns((pl.col("timestamp").dt.epoch("us") / 1e6).alias("ts"))
    lines = out / "irregular.jsonl"
    with open(lines, "w") as f:
        for r in df.iter_rows(named=True):
            vals = {k: (None if r[k] is None or r[k] != r[k] else r[k]) for k in feats}
            f.write(json.dumps({"series": r["series"], "ts": r["ts"], "values": vals}) + "\n")
    return lines


def test_batch_and_monitor_agree_window_for_window_across_gaps(
    model: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    card = json.loads(run_cli(["inspect", str(model), "--json"]).stdout)
    assert card["interval_s"] == 60.0 and card["max_gap_s"] == 600.0  # 10 x median interval
    data = with_gaps(small_demo["test"], tmp_path)
    scores, ev = tmp_path / "scores.parquet", tmp_path / "events.csv"
    r = run_cli(["score", str(model), str(data), "-o", str(scores), "--events", str(ev)])
    assert r.returncode == 0, r.stderr
    sink = tmp_path / "out.jsonl"
    with open(replay_lines(data, tmp_path), "rb") as stdin:
        r = subprocess.run(
            [sys.executable, "-m", "anomae.cli", "monitor", str(model), "--source", "-"]
            + ["--sink", str(sink), "--listen", "127.0.0.1:0"],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    listening = next(json.loads(x) for x in r.stderr.splitlines() if '"listening"' in x)
    assert listening["max_gap_seconds"] == 600.0  # the card's, with no option given
    stopped = json.loads(r.stderr.strip().splitlines()[-1])
    assert stopped["msg"] == "stopped" and stopped["invalid"] == stopped["dropped"] == 0

    # what the rule should give: each segment between gaps windowed on its own
    series, _ = read_series([data], features=card["features"])
    spec = WindowSpec(card["window"]["length"], card["window"]["stride"])
    expected = sum(
        segment_window_ends(gap_segments(s.timestamps, 600.0), spec).size for s in series
    )
    assert all(gap_segments(s.timestamps, 600.0).size == len(GAPS_MIN) + 2 for s in series)
    batch = pl.read_parquet(scores)
    recs = [json.loads(x) for x in sink.read_text().splitlines()]
    win = pl.DataFrame([x for x in recs if x["type"] == "window"]).with_columns(
        pl.col("ts")
        .str.to_datetime(time_zone="UTC")
        .cast(pl.Datetime("ns", "UTC"))
        .alias("timestamp")
    )
    assert batch.height == win.height == expected
    both = batch.join(win, on=["series", "timestamp"], how="inner", suffix="_stream")
    assert both.height == batch.height  # the same windows, window for window
    np.testing.assert_allclose(both["score_stream"], both["score"], rtol=1e-5, atol=1e-7)
    assert (both["is_anomaly_stream"] == both["is_anomaly"]).mean() > 0.999
    streamed = [x for x in recs if x["type"] == "event"]
    batch_ev = pl.read_csv(ev)
    assert len(streamed) == batch_ev.height > 0
    got = {(x["series"], x["start"][:19], x["n_windows"]) for x in streamed}
    want = {
        (s, str(st).replace(" ", "T")[:19], n)
        for s, st, n in batch_ev.select("series", "start", "n_windows").rows()
    }
    assert got == want


def test_an_explicit_max_gap_seconds_overrides_the_card_in_both(
    model: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    data = with_gaps(small_demo["test"], tmp_path)
    with open(replay_lines(data, tmp_path), "rb") as stdin:
        r = subprocess.run(
            [sys.executable, "-m", "anomae.cli", "monitor", str(model), "--source", "-"]
            + ["--listen", "127.0.0.1:0", "--max-gap-seconds", "1e9"],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    listening = next(json.loads(x) for x in r.stderr.splitlines() if '"listening"' in x)
    assert listening["max_gap_seconds"] == 1e9
    # and for anomae score, 0 windows straight across the gaps, as before the rule
    scores = tmp_path / "scores.parquet"
    r = run_cli(["score", str(model), str(data), "-o", str(scores), "--max-gap-seconds", "0"])
    assert r.returncode == 0, r.stderr
    rows = pl.read_parquet(data).group_by("series").len()["len"].to_list()
    assert pl.read_parquet(scores).height == sum(n - 16 + 1 for n in rows)
