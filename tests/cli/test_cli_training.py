"""``anomae train`` (anomae/cli/training.py), in subprocesses."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import TRAIN_FLAGS, run_cli

pytestmark = pytest.mark.slow


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


def test_the_code_is_sized_to_the_data_unless_widths_are_given(
    small_demo: dict[str, Path], tmp_path: Path
) -> None:
    from anomae.modelfile import read_card

    flags = list(TRAIN_FLAGS)
    i = flags.index("--hidden")
    del flags[i : i + 2]  # the recipe's default code
    base = ["train", str(small_demo["train"]), *flags, "--epochs", "1", "--method", "quantile"]
    for extra, hidden, code in (
        ([], [6], "features"),  # one unit per feature that varies (6)
        (["--hidden", "32,4"], [32, 4], "fixed"),
        (["--hidden", "32,4", "--code", "features"], [32, 6], "features"),
    ):
        out = tmp_path / f"m{len(extra)}.onnx"
        r = run_cli([*base, "-o", str(out), *extra])
        assert r.returncode == 0, r.stderr
        card = read_card(out)
        arch = card.architecture
        assert (list(arch["hidden"]), arch["code"]) == (hidden, code)
        # anomae train alarms with the multivariate recipe's post-rule
        assert card.alarm["post_rule"]["max_gap"] == 16, card.alarm


def test_period_lengthens_the_window_to_the_training_rows_period(tmp_path: Path) -> None:
    import numpy as np

    from anomae.modelfile import read_card

    t = np.arange(3000)
    noise = np.random.default_rng(0).normal(0, 0.05, 3000)
    data = tmp_path / "wave.csv"
    pl.DataFrame({"timestamp": t * 60, "x": np.sin(2 * np.pi * t / 40) + noise}).write_csv(data)
    base = ["train", str(data), "--epochs", "1", "--method", "quantile", "--window", "8"]
    r = run_cli([*base, "-o", str(tmp_path / "p.onnx"), "--period"])
    assert r.returncode == 0, r.stderr
    assert "period of the training rows: 40; window 40 rows" in r.stdout
    assert read_card(tmp_path / "p.onnx").window.length == 40
    r = run_cli([*base, "-o", str(tmp_path / "n.onnx")])  # without --period: --window
    assert r.returncode == 0 and "period of" not in r.stdout, r.stderr
    assert read_card(tmp_path / "n.onnx").window.length == 8


def test_train_and_inspect_rows_without_time(tmp_path: Path) -> None:
    import numpy as np

    t = np.arange(3000)
    data = tmp_path / "rows.csv"
    pl.DataFrame({"a": np.sin(t / 9), "b": np.cos(t / 5)}).write_csv(data)
    out = tmp_path / "m.onnx"
    r = run_cli(["train", str(data), "-o", str(out), "--epochs", "1"])
    assert r.returncode == 1 and "--timestamp-column ''" in r.stderr and not out.exists()
    r = run_cli(["train", str(data), "-o", str(out), "--epochs", "1", "--timestamp-column", ""])
    assert r.returncode == 0, r.stderr
    assert "by quantile {q=0.99}" in r.stdout  # a budget per day has no day to count in
    shown = run_cli(["inspect", str(out)]).stdout
    assert "no time column (rows in order, one a second)" in shown
