"""The user journeys through the ``anomae`` command, end to end, in subprocesses."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from conftest import blocked_imports, run_cli

pytestmark = pytest.mark.slow
TRAIN_FLAGS = [
    "--window",
    "16",
    "--hidden",
    "32,8",
    "--epochs",
    "12",
    "--lr",
    "0.003",
    "--train-stride",
    "2",
    "--noise",
    "masking",
    "--no-progress",
]


@pytest.fixture(scope="module")
def trained(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = tmp_path_factory.mktemp("model") / "model.onnx"
    r = run_cli(["train", str(small_demo["train"]), "-o", str(model), *TRAIN_FLAGS])
    assert r.returncode == 0, r.stderr
    assert "threshold" in r.stdout and model.is_file()
    return model


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


def test_score_with_the_likelihood_alarm_policy(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    from anomae.likelihood import Likelihood, likelihood_scores

    out = tmp_path / "scores.parquet"
    args = ["score", str(trained), str(small_demo["test"]), "-o", str(out), "--likelihood"]
    r = run_cli([*args, "--likelihood-epsilon", "1e-4", "--likelihood-warmup", "50"])
    assert r.returncode == 0, r.stderr
    df = pl.read_parquet(out)
    spec = Likelihood(epsilon=1e-4, warmup=50)
    for part in df.partition_by("series", maintain_order=True):  # one history per series
        name = part["series"][0]
        want = likelihood_scores(part["score"].to_numpy(), spec).astype("float32")
        got = part["score_normalised"].to_numpy()
        assert got.tobytes() == want.tobytes(), name
        assert part["score_normalised"][:50].is_nan().all()
    assert (df["is_anomaly"] == (df["score_normalised"].fill_nan(0) > 1)).all()
    r = run_cli([*args, "--likelihood-epsilon", "2"])
    assert r.returncode == 2 and "epsilon must be in (0, 1)" in r.stderr
    # unset options take the model card's policy, else the library's defaults, as --help says
    from anomae.cli import score

    lk = Likelihood()
    for k in ("epsilon", "short", "long", "warmup", "season_s"):
        opt = next(p for p in score.params if p.name == f"likelihood_{k}")
        assert opt.default is None and f"else {getattr(lk, k):g}]" in str(opt.help), k


def test_bad_input_keeps_existing_output(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"yesterday's scores")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,series,temp\n2026-01-01T00:00:00,m1,1.0\n")
    r = run_cli(["score", str(trained), str(bad), "-o", str(out), "--force"])
    assert r.returncode == 1
    assert "bad.csv" in r.stderr and "lacks" in r.stderr
    assert out.read_bytes() == b"yesterday's scores"
    assert list(tmp_path.glob(".scores.parquet.*")) == []


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


def test_run_pipeline_end_to_end(small_demo: dict[str, Path], tmp_path: Path) -> None:
    pipe = tmp_path / "p.toml"
    pipe.write_text(
        textwrap.dedent(f"""
        [data]
        train = "{small_demo["train"]}"
        test = "{small_demo["test"]}"
        [window]
        length = 16
        train_stride = 2
        [model]
        kind = "conv"
        hidden = [16, 8]
        channels = [8, 16]
        [noise]
        kind = "gaussian"
        sigma = 0.1
        [sparsity]
        kind = "l1"
        beta = 0.0001
        [train]
        epochs = 2
        progress = false
        [calibrate]
        method = "quantile"
        q = 0.99
    """)
    )
    out = tmp_path / "run"
    r = run_cli(["run", str(pipe), "--out", str(out)])
    assert r.returncode == 0, r.stderr
    for name in ("model.onnx", "scores.parquet", "events.csv", "report.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["threshold"]["params"] == {"q": 0.99}
    assert report["model"]["parity"]["max_rel_diff"] < 1e-4
    assert set(report["metrics"]["recall_by_kind"]) >= {"spike", "stuck", "drift"}
    assert "labelled anomalies detected" in r.stdout
    # what the model adds: each baseline through the same calibration and post-rules
    assert set(report["baselines"]) == {"ksigma", "pca", "windowed_gaussian"}
    assert report["baselines"]["pca"]["windows"] == report["metrics"]["windows"]
    assert "windowed_gaussian" in r.stdout and "false/day" in r.stdout


@pytest.mark.parametrize(
    ("args", "method", "check"),
    [
        (
            ["--method", "pot", "--q", "0.01", "--init-quantile", "0.9"],
            "pot",
            lambda th: th["params"]["q"] == 0.01 and "gamma" in th["params"],
        ),
        (["--method", "ksigma", "--k", "4"], "ksigma", lambda th: th["params"]["k"] == 4),
        (["--method", "mad"], "mad", lambda th: th["expected_far"] is not None),
        # 1 false alarm per day at 1-minute sampling and stride 1: rate 1/1440 per window
        (
            ["--method", "fpr", "--alarms-per-day", "1"],
            "fpr",
            lambda th: abs(th["expected_far"] - 1 / 1440) < 1e-9,
        ),
        (
            ["--false-events-per-day", "1", "--search-min-windows", "1,3"],
            "events",
            lambda th: (
                th["expected_false_events_per_day"] == 1
                and th["post_rule"]["min_windows"] in (1, 3)
            ),
        ),
        (
            ["--method", "quantile", "--q", "0.99", "--per-feature"],
            "quantile",
            lambda th: len(th["per_feature"]) == 6,
        ),
    ],
)
def test_calibration_methods(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path, args: list[str], method: str, check
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.onnx"
    r = run_cli(["calibrate", str(trained), str(small_demo["train"]), "-o", str(out), *args])
    assert r.returncode == 0, r.stderr
    assert "expected false-alarm rate" in r.stdout
    th = json.loads(run_cli(["inspect", str(out), "--json"]).stdout)["threshold"]
    assert th["method"] == method
    lo, hi = th["expected_far_ci"]
    assert lo <= hi
    assert check(th)


def test_f1_calibration_needs_anomalies(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "m.onnx"
    r = run_cli(
        ["calibrate", str(trained), str(small_demo["train"]), "--method", "f1", "-o", str(out)]
    )
    assert r.returncode == 1 and "label-free method" in r.stderr
    assert not out.exists()
    r = run_cli(
        ["calibrate", str(trained), str(small_demo["test"]), "--method", "f1", "-o", str(out)]
    )
    assert r.returncode == 0, r.stderr
    th = json.loads(run_cli(["inspect", str(out), "--json"]).stdout)["threshold"]
    assert th["method"] == "f1" and 0 < th["params"]["f1"] <= 1


def test_failed_train_keeps_the_old_model(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    old = tmp_path / "model.onnx"
    old.write_bytes(trained.read_bytes())
    args = ["train", str(small_demo["train"]), "-o", str(old), *TRAIN_FLAGS, "--epochs", "1"]
    r = run_cli([*args, "--method", "quantile"])
    assert r.returncode == 1 and "model.onnx: already exists; pass --force" in r.stderr
    r = run_cli([*args, "--method", "f1", "--force"])  # fails after training: no labels
    assert r.returncode == 1 and "label-free method" in r.stderr, r.stderr
    assert "features (6): " in r.stdout
    assert old.read_bytes() == trained.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_train_refuses_identifier_columns(small_demo: dict[str, Path], tmp_path: Path) -> None:
    df = pl.read_parquet(small_demo["train"])
    ids = {name: i + 100 for i, name in enumerate(sorted(df["series"].unique()))}
    data = tmp_path / "with_id.parquet"
    df.with_columns(pl.col("series").replace_strict(ids).alias("machine_id")).write_parquet(data)
    r = run_cli(["train", str(data), "-o", str(tmp_path / "m.onnx"), *TRAIN_FLAGS])
    assert r.returncode == 1
    assert "'machine_id' (integer and constant within every series)" in r.stderr
    assert "--features " in r.stderr and "machine_id" not in r.stderr.split("--features ")[1]
    assert not (tmp_path / "m.onnx").exists()


def test_calibrate_in_place_keeps_mode_and_symlink(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    real = tmp_path / "store" / "model-v1.onnx"
    real.parent.mkdir()
    real.write_bytes(trained.read_bytes())
    real.chmod(0o644)
    link = tmp_path / "model.onnx"
    link.symlink_to(real)
    r = run_cli(
        ["calibrate", str(link), str(small_demo["train"]), "--method", "quantile", "--q", "0.9"]
    )
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real.stat().st_mode & 0o777) == 0o644
    card = json.loads(run_cli(["inspect", str(real), "--json"]).stdout)
    assert card["threshold"]["params"] == {"q": 0.9}


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_score_refuses_unusable_threshold(
    value: str, trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "s.parquet"
    args = [str(trained), str(small_demo["test"]), "-o", str(out), "--threshold", value]
    r = run_cli(["score", *args])
    assert r.returncode == 2 and "not a usable threshold" in r.stderr
    assert not out.exists()


def test_score_never_writes_over_its_input(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "x.csv"
    data.write_bytes(small_demo["test_csv"].read_bytes())
    r = run_cli(["score", str(trained), str(data), "-o", str(data), "--force"])
    assert r.returncode == 1 and "x.csv: is also an input" in r.stderr
    assert data.read_bytes() == small_demo["test_csv"].read_bytes()


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
