"""TSB-AD's CSV layout (anomae/eval/tsb.py), read into cases and run by `anomae evaluate`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.eval.tsb import load_tsb


def _write(folder: Path, name: str, n: int = 600, train: int = 400, f: int = 3) -> Path:
    rng = np.random.default_rng(len(name))
    x = rng.normal(size=(n, f))
    label = np.zeros(n, np.int64)
    label[500:520] = 1
    x[500:520, 0] += 8.0
    cols = {f"x{j}": x[:, j] for j in range(f)}
    path = folder / f"{name}_tr_{train}_1st_500.csv"
    pl.DataFrame({**cols, "Label": label}).write_csv(path)
    return path


def test_files_become_cases_split_where_their_names_say(tmp_path: Path) -> None:
    _write(tmp_path, "002_Demo_id_2_Sensor")
    _write(tmp_path, "010_Demo_id_10_Sensor", train=300)
    (tmp_path / "notes.csv").write_text("not,a,tsb\n1,2,3\n")  # not named as TSB-AD names
    cases = load_tsb(tmp_path)
    assert [c.name for c in cases] == ["tsb/002_Demo_id_2_Sensor", "tsb/010_Demo_id_10_Sensor"]
    a, b = cases
    assert a.features == ("x0", "x1", "x2") and a.train.shape == (400, 3)
    assert a.test.shape == (200, 3) and int(a.test_label.sum()) == 20
    assert b.train.shape[0] == 300 and b.test.shape[0] == 300
    assert (np.diff(np.concatenate([b.train_timestamps, b.test_timestamps])) > 0).all()


def test_rows_with_a_missing_value_are_dropped_as_tsb_ad_does(tmp_path: Path) -> None:
    path = _write(tmp_path, "001_Demo_id_1_Sensor")
    df = pl.read_csv(path)
    df.with_columns(pl.when(pl.int_range(pl.len()) == 10).then(None).otherwise(pl.col("x1"))
                    .alias("x1")).write_csv(path)  # fmt: skip
    [case] = load_tsb(tmp_path)
    assert case.train.shape[0] == 400 and case.test.shape[0] == 199


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", r"needs feature columns and a 'Label' column"),
        ("a,Label\n1,0\n2,3\n", r"Label row 2 is 3, expected 0 or 1"),
        ("a,Label\n1,0\n2,0\n", r"says 5 training rows but the file has 2 rows"),
        ("a,Label\nx,0\ny,0\nz,0\nw,0\nv,0\nu,0\n", r"feature column\(s\) \['a'\] are not numbers"),
    ],
)
def test_bad_files_are_named_with_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "001_D_id_1_S_tr_5_1st_6.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_tsb(tmp_path)
    with pytest.raises(FileNotFoundError, match="no TSB-AD files"):
        load_tsb(tmp_path / "..")  # a folder without such files


@pytest.mark.slow
def test_anomae_evaluate_runs_a_tsb_folder(tmp_path: Path) -> None:
    from conftest import run_cli

    data = tmp_path / "tsb"
    data.mkdir()
    _write(data, "001_Demo_id_1_Sensor")
    pipe = tmp_path / "p.toml"
    pipe.write_text(
        'recipe = "multivariate"\n[benchmark]\ndataset = "tsb"\nbaselines = ["pca"]\n'
        '[calibrate]\nmethod = "quantile"\nq = 0.95\n[train]\nepochs = 2\n'
    )
    r = run_cli(["evaluate", str(pipe), "--data", str(data), "--out", str(tmp_path / "out")])
    assert r.returncode == 0, r.stderr
    assert "anomae" in r.stdout and "pca" in r.stdout
