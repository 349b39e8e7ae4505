"""anomae evaluate: the harness end to end on a small SMD-style dataset written here,
and a clean skip where public data is absent."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def _matrix_dataset(root: Path) -> None:
    """Two machines, 3 correlated sensors; test has a correlation break and a level shift."""
    rng = np.random.default_rng(0)
    for d in ("train", "test", "test_label"):
        (root / d).mkdir(parents=True)
    for m in ("m1", "m2"):
        t = np.arange(1600)
        base = np.sin(2 * np.pi * t / 50)[:, None] * np.array([1.0, 0.8, -0.5])
        x = base + 0.05 * rng.normal(size=base.shape)
        label = np.zeros(1600 - 800, int)
        test = x[800:].copy()
        test[300:340, 1] = -test[300:340, 1]  # sensor 2 stops following sensor 1
        test[600:640, 2] += 1.5
        label[300:340] = 1
        label[600:640] = 1
        np.savetxt(root / "train" / f"{m}.txt", x[:800], delimiter=",")
        np.savetxt(root / "test" / f"{m}.txt", test, delimiter=",")
        np.savetxt(root / "test_label" / f"{m}.txt", label, fmt="%d")


def test_evaluate_matrix_dataset(tmp_path: Path) -> None:
    data = tmp_path / "smd"
    _matrix_dataset(data)
    pipe = tmp_path / "bench.toml"
    pipe.write_text(
        textwrap.dedent("""
        [benchmark]
        dataset = "matrix"
        vus_window = 20
        [window]
        length = 16
        train_stride = 2
        [model]
        hidden = [16, 4]
        [noise]
        kind = "gaussian"
        sigma = 0.1
        [train]
        epochs = 15
        lr = 0.003
        progress = false
        [calibrate]
        holdout = 0.2
        # 800 rows: spread blocks cost ten cuts of 15 windows each, which 15 epochs feel
        holdout_from = "tail"
        method = "quantile"
        q = 0.99
        [score]
        min_windows = 2
    """)
    )
    out = tmp_path / "out"
    r = run_cli(["evaluate", str(pipe), "--out", str(out), "--data", str(data)])
    assert r.returncode == 0, r.stderr
    assert "anomae" in r.stdout and "all_anomalous" in r.stdout
    report = json.loads((out / "report.json").read_text())
    s = report["summary"]
    assert report["cases"] == 2
    assert set(s) == {"anomae", "pca", "ksigma", "windowed_gaussian", "random", "all_anomalous"}
    # the references behave as they must, so the harness is wired right
    assert s["all_anomalous"]["far"] == 1.0 and s["all_anomalous"]["mar"] == 0.0
    assert abs(s["random"]["auc_roc"] - 0.5) < 0.1
    # a correlation break is invisible to per-sensor k-sigma but not to the autoencoder
    assert s["anomae"]["vus_pr"] > s["ksigma"]["vus_pr"]
    assert s["anomae"]["auc_roc"] > 0.8
    md = (out / "report.md").read_text()
    assert "| anomae |" in md and "anomae evaluate" in md


def test_evaluate_skips_cleanly_without_data(tmp_path: Path) -> None:
    pipe = tmp_path / "p.toml"
    pipe.write_text('[benchmark]\ndataset = "matrix"\n')  # nothing in ../shared/datasets/matrix
    r = run_cli(["evaluate", str(pipe), "--out", str(tmp_path / "o")])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("skipped: matrix data not found")
    assert not (tmp_path / "o").exists()
    # a folder the user names but that is not there is their error, not a skip
    r = run_cli(
        ["evaluate", str(pipe), "--out", str(tmp_path / "o"), "--data", str(tmp_path / "nowhere")]
    )
    assert r.returncode == 1 and "nowhere" in r.stderr and "Traceback" not in r.stderr


def test_evaluate_needs_a_benchmark_section(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    r = run_cli(["evaluate", str(repo / "pipelines/demo.toml"), "--out", str(tmp_path)])
    assert r.returncode == 1 and "no [benchmark] section" in r.stderr


def test_labelled_evaluation_reads_the_data_columns_and_paths(tmp_path: Path) -> None:
    """``dataset = "labelled"`` reads the user's files with the pipeline's [data] columns,
    from paths relative to the pipeline file."""
    import polars as pl

    rng = np.random.default_rng(1)
    (tmp_path / "exp" / "files").mkdir(parents=True)
    for part, n in (("train", 300), ("test", 200)):
        x = np.sin(np.arange(n) / 7.0)[:, None] + 0.05 * rng.normal(size=(n, 2))
        bad = np.zeros(n, int)
        if part == "test":
            x[120:140] += 2.0
            bad[120:140] = 1
        pl.DataFrame(
            {
                "time": 1_767_571_260_000 + 60_000 * np.arange(n),  # epoch ms
                "machine": ["pump"] * n,
                "a": x[:, 0],
                "b": x[:, 1],
                "is_bad": bad,
            }
        ).write_csv(tmp_path / "exp" / "files" / f"{part}.csv")
    pipe = tmp_path / "exp" / "p.toml"
    pipe.write_text(
        textwrap.dedent("""
        [data]
        timestamp = "time"
        timestamp_unit = "ms"
        series = "machine"
        label = "is_bad"
        [benchmark]
        dataset = "labelled"
        train = "files/train.csv"
        test = "files/test.csv"
        baselines = ["random"]
        [window]
        length = 8
        [model]
        hidden = [4]
        [train]
        epochs = 1
        progress = false
        [calibrate]
        method = "quantile"
        q = 0.9
        """)
    )
    r = run_cli(["evaluate", str(pipe), "--out", str(tmp_path / "o")], cwd=tmp_path.parent)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert len(report["per_case"]["anomae"]) == 1
    assert "pump" in json.dumps(report["per_case"]["anomae"])
