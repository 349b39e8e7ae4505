"""The user journeys through the ``anomae`` command, end to end, in subprocesses."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import blocked_imports, run_cli

pytestmark = pytest.mark.slow


def test_train_calibrate_score_inspect(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    card = json.loads(run_cli(["inspect", str(trained), "--json"]).stdout)
    assert card["threshold"]["method"] == "events"  # the default: one false event a week
    assert card["threshold"]["false_events_per_day"] == pytest.approx(1 / 7)
    assert card["alarm"]["post_rule"] == card["threshold"]["post_rule"]
    assert card["window"] == {"length": 16, "stride": 1}
    assert card["training"]["noise"]["kind"] == "masking"
    assert card["parity"]["max_rel_diff"] < 1e-4

    recal = tmp_path / "recal.onnx"
    r = run_cli(
        [
            "calibrate",
            str(trained),
            str(small_demo["train"]),
            "--method",
            "quantile",
            "--q",
            "0.9",
            "-o",
            str(recal),
        ]
    )
    assert r.returncode == 0, r.stderr
    card2 = json.loads(run_cli(["inspect", str(recal), "--json"]).stdout)
    assert card2["threshold"]["params"] == {"q": 0.9}
    assert card2["threshold"]["value"] < card["threshold"]["value"]

    out, events = tmp_path / "scores.parquet", tmp_path / "events.csv"
    r = run_cli(
        ["score", str(trained), str(small_demo["test"]), "-o", str(out), "--events", str(events)]
    )
    assert r.returncode == 0, r.stderr
    df = pl.read_parquet(out)
    assert df.columns[:7] == [
        "series",
        "timestamp",
        "score",
        "score_normalised",
        "is_anomaly",
        "in_event",
        "coverage",
    ]
    assert set(df["series"].unique()) == {"m1", "m2"}
    test = pl.read_parquet(small_demo["test"])
    per_series = test.group_by("series").len()
    assert df.height == int((per_series["len"] - 15).sum())  # stride 1, window 16
    th = card["threshold"]["value"]
    assert (df["is_anomaly"] == (df["score"] / th > 1)).all()
    ev = pl.read_csv(events)
    assert ev.columns == [
        "series",
        "start",
        "end",
        "peak",
        "peak_score_normalised",
        "duration_s",
        "n_windows",
        "top_features",
    ]
    assert ev.height >= 1 and (ev["n_windows"] >= 3).all()
    # the anomalies are where the labels are: scores rank labelled windows higher
    from anomae.eval.metrics import auc_roc

    assert auc_roc(df["score"].to_numpy(), df["label"].to_numpy()) > 0.7


def test_score_works_with_torch_blocked(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    env = blocked_imports(tmp_path / "block", "torch")  # any import of torch fails
    out = tmp_path / "s.parquet"
    r = run_cli(["score", str(trained), str(small_demo["test"]), "-o", str(out)], env=env)
    assert r.returncode == 0, r.stderr
    assert out.is_file()
    r = run_cli(
        [
            "calibrate",
            str(trained),
            str(small_demo["train"]),
            "--method",
            "quantile",
            "--q",
            "0.99",
            "-o",
            str(tmp_path / "recal.onnx"),
        ],
        env=env,
    )
    assert r.returncode == 0, r.stderr
    r = run_cli(["inspect", str(tmp_path / "recal.onnx")], env=env)
    assert r.returncode == 0 and "quantile" in r.stdout, r.stderr
    import subprocess

    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import anomae, anomae.cli, anomae.detector, anomae.score, "
            "anomae.calibrate, anomae.io, anomae.windows, anomae.events, anomae.eval.evaluate, "
            "sys; "
            "import torch",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert "torch is blocked" in probe.stderr  # the block works, and only torch tripped it
    r = run_cli(["train", str(small_demo["train"]), "-o", str(tmp_path / "x.onnx")], env=env)
    assert r.returncode == 1 and "pip install 'anomae[train]'" in r.stderr


# exit status 1: bad data, a bad model, a failed run; 2: a bad command line (click's)
@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (["score", "{missing_model}", "{test}", "-o", "{out}"], "does not exist", 1),
        (["score", "{garbage}", "{test}", "-o", "{out}"], "cannot load this file", 1),
        (["score", "{model}", "{test}", "-o", "{out}", "--device", "tpu"], "unknown device", 1),
        (["calibrate", "{model}", "{test}", "--method", "quantile", "--q", "1.5"], "in (0, 1)", 2),
        (["calibrate", "{model}", "{test}", "--q", "0.9"], "not a parameter of method 'events'", 2),
        (["score", "{model}", "{test}", "-o", "{out}", "--off", "2"], "must be in [0, 1]", 2),
        (["run", "{bad_toml}", "--out", "{outdir}"], "unknown key(s) ['hiden']", 1),
    ],
)
def test_cli_errors_are_one_clear_line(
    args: list[str],
    message: str,
    status: int,
    trained: Path,
    small_demo: dict[str, Path],
    tmp_path: Path,
) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    bad_toml = tmp_path / "p.toml"
    bad_toml.write_text('[data]\ntrain = "x.parquet"\n[model]\nhiden = [4]\n')
    fill = {
        "missing_model": str(tmp_path / "nope.onnx"),
        "garbage": str(garbage),
        "model": str(trained),
        "test": str(small_demo["test"]),
        "out": str(tmp_path / "o.parquet"),
        "bad_toml": str(bad_toml),
        "outdir": str(tmp_path / "run"),
    }
    r = run_cli([a.format(**fill) for a in args])
    assert r.returncode == status, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_the_model_remembers_its_columns(small_demo: dict[str, Path], tmp_path: Path) -> None:
    """Trained on a file with its own column names and epoch-millisecond times, the model
    scores and calibrates such files without the column options repeated."""

    def renamed(path: Path, out: Path) -> Path:
        df = pl.read_parquet(path).drop("anomaly", strict=False)
        df.with_columns(pl.col("timestamp").dt.epoch("ms")).rename(
            {"timestamp": "time", "series": "machine_id"}
        ).write_csv(out)
        return out

    train = renamed(small_demo["train"], tmp_path / "train.csv")
    test = renamed(small_demo["test"], tmp_path / "test.csv")
    model = tmp_path / "m.onnx"
    flags = ["--window", "8", "--hidden", "8", "--epochs", "1", "--no-progress"]
    cols = ["--timestamp-column", "time", "--timestamp-unit", "ms"]
    r = run_cli(["train", str(train), "-o", str(model), *flags, *cols[:2]])
    assert r.returncode == 1 and "--timestamp-unit ms" in r.stderr  # epoch ms refused
    r = run_cli(["train", str(train), "-o", str(model), *flags, *cols])
    assert r.returncode == 1 and "--series-column machine_id" in r.stderr  # one series?
    r = run_cli(
        ["train", str(train), "-o", str(model), *flags, *cols, "--series-column", "machine_id"]
    )
    assert r.returncode == 0, r.stderr
    card = json.loads(run_cli(["inspect", str(model), "--json"]).stdout)
    assert card["columns"] == {
        "timestamp": "time",
        "series": "machine_id",
        "label": "label",
        "timestamp_unit": "ms",
    }
    text = run_cli(["inspect", str(model)]).stdout
    assert "columns      timestamp 'time' (epoch ms), series 'machine_id', label 'label'" in text

    out = tmp_path / "scores.csv"
    r = run_cli(["score", str(model), str(test), "-o", str(out)])
    assert r.returncode == 0, r.stderr
    assert "columns from the model card: timestamp 'time', series 'machine_id'" in r.stderr
    scores = pl.read_csv(out)
    assert set(scores["series"]) == {"m1", "m2"}
    assert scores["timestamp"][0].endswith("Z")
    r = run_cli(["calibrate", str(model), str(train), "--method", "quantile", "--q", "0.99"])
    assert r.returncode == 0, r.stderr
    # an option given wins over the card
    r = run_cli(["score", str(model), str(test), "-o", str(out), "--force", "--series-column", "x"])
    assert r.returncode == 1 and "no series column 'x'" in r.stderr
