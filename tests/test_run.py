"""``anomae run`` as a library call (anomae/run.py): what the run records, ``anomae score`` uses."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from anomae.modelfile import read_card  # noqa: E402


def _pipeline(tmp_path: Path, small_demo: dict[str, Path], sections: str) -> Path:
    """A quick pipeline on the small demo data (16-row windows, 2 epochs) plus ``sections``."""
    import textwrap

    pipe = tmp_path / "p.toml"
    pipe.write_text(
        textwrap.dedent(f"""
        [data]
        train = "{small_demo["train"]}"
        test = "{small_demo["test"]}"
        [window]
        length = 16
        train_stride = 4
        [model]
        hidden = [16, 4]
        [train]
        epochs = 2
        progress = false
    """)
        + textwrap.dedent(sections)
    )
    return pipe


@pytest.mark.slow
def test_score_applies_the_runs_alarm_policy(small_demo: dict[str, Path], tmp_path: Path) -> None:
    """`anomae run` stores the post-rule it scored with (events calibration chose its
    min_windows) in the model card; `anomae score` on that model finds the same events,
    and explicit options override the card, visibly."""
    import json

    import polars as pl
    from conftest import run_cli

    from anomae.run import run_pipeline

    pipe = _pipeline(
        tmp_path,
        small_demo,
        """
        [calibrate]
        min_windows = [2, 3]
        [score]
        min_windows = 3
        max_gap = 16
    """,
    )
    report = run_pipeline(pipe, tmp_path / "run")
    th = report["threshold"]
    assert th["method"] == "events" and th["false_events_per_day"] == pytest.approx(1 / 7)
    lo, hi = th["expected_false_events_per_day_ci"]
    assert lo <= th["expected_false_events_per_day"] <= hi
    chosen = th["post_rule"]
    assert chosen["min_windows"] in (2, 3) and chosen["max_gap"] == 16
    assert set(th["params"]["threshold_by_min_windows"]) == {"2", "3"}
    card = read_card(tmp_path / "run" / "model.onnx")
    assert card.alarm == {"post_rule": chosen} == report["alarm"]

    events = tmp_path / "e.csv"
    model = str(tmp_path / "run" / "model.onnx")
    score = ["score", model, str(small_demo["test"]), "-o", str(tmp_path / "s.parquet")]
    score += ["--events", str(events), "--no-progress"]
    r = run_cli(score)
    assert r.returncode == 0, r.stderr
    assert f"min_windows={chosen['min_windows']} (card), max_gap=16 (card)" in r.stderr
    assert pl.read_csv(events).height == report["scoring"]["n_events"]

    r = run_cli([*score, "--max-gap", "0", "--force"])
    assert r.returncode == 0, r.stderr
    assert "max_gap=0 (option)" in r.stderr and "off=1.0 (card)" in r.stderr

    text = run_cli(["inspect", model]).stdout
    assert "expected false events" in text and "alarm        post-rule {cooldown=0" in text
    assert json.loads(run_cli(["inspect", model, "--json"]).stdout)["alarm"]["post_rule"] == chosen


@pytest.mark.slow
def test_export_int8_scores_with_the_int8_model(
    small_demo: dict[str, Path], tmp_path: Path
) -> None:
    """``[export] quantize = "int8"``: the run quantises on its held-out rows, writes
    model.int8.onnx of this model.onnx, scores the test data with it, and says so."""
    import hashlib

    from anomae.report import summary_text
    from anomae.run import run_pipeline

    pipe = _pipeline(
        tmp_path,
        small_demo,
        """
        [export]
        quantize = "int8"
    """,
    )
    report = run_pipeline(pipe, tmp_path / "run")
    q = report["int8"]
    assert q["written"], q.get("refused")
    int8 = tmp_path / "run" / "model.int8.onnx"
    assert q["path"] == str(int8) == report["scoring"]["model"]
    fp32 = hashlib.sha256((tmp_path / "run" / "model.onnx").read_bytes()).hexdigest()
    assert read_card(int8).quantization["source_sha256"] == fp32
    assert q["gate"]["passed"] and q["gate"]["n_series"] == 2 * 2  # 2 held-out blocks each
    text = summary_text(report)
    assert f"  int8       {int8} written: dynamic, " in text
    assert "windows by the int8 model in" in text


@pytest.mark.slow
def test_a_calibration_file_of_its_own_is_what_the_budget_is_checked_on(
    small_demo: dict[str, Path], tmp_path: Path
) -> None:
    # 10 hours a series: its held-out blocks cannot resolve one false event a week, but the
    # [data] calibration file can, and that is what the threshold is calibrated on
    import polars as pl

    from anomae.calibrate import CalibrationError
    from anomae.run import run_pipeline

    short = tmp_path / "short.parquet"
    df = pl.read_parquet(small_demo["train"])
    df.filter(pl.int_range(pl.len()).over("series") < 600).write_parquet(short)
    pipe = _pipeline(tmp_path, small_demo, "")
    text = pipe.read_text().replace(str(small_demo["train"]), str(short))
    pipe.write_text(text)
    with pytest.raises(CalibrationError, match="needs at least 0.70 series-days"):
        run_pipeline(pipe, tmp_path / "refused")
    assert not (tmp_path / "refused" / "model.onnx").exists()
    pipe.write_text(text.replace("[data]\n", f'[data]\ncalibration = "{small_demo["train"]}"\n'))
    report = run_pipeline(pipe, tmp_path / "run")
    assert report["threshold"]["method"] == "events"


@pytest.mark.slow
def test_a_run_trains_and_reports_the_period_window(tmp_path: Path) -> None:
    import textwrap

    import numpy as np
    import polars as pl

    from anomae.run import run_pipeline

    t = np.arange(4000)
    wave = np.sin(2 * np.pi * t / 30) + np.random.default_rng(0).normal(0, 0.05, 4000)
    data = tmp_path / "wave.csv"
    pl.DataFrame({"timestamp": t * 60, "x": wave}).write_csv(data)
    pipe = tmp_path / "p.toml"
    pipe.write_text(textwrap.dedent(f"""
        recipe = "univariate"
        [data]
        train = "{data}"
        [window]
        period = true
        [train]
        epochs = 1
    """))
    report = run_pipeline(pipe, tmp_path / "run")
    assert report["training"]["period"] == 30
    assert report["model"]["window"]["length"] == 30
    assert read_card(tmp_path / "run" / "model.onnx").window.length == 30


@pytest.mark.slow
def test_a_run_on_rows_without_time_rates_no_false_events_per_day(tmp_path: Path) -> None:
    import textwrap

    import numpy as np
    import polars as pl

    from anomae.run import run_pipeline

    t = np.arange(5000)
    x = np.column_stack([np.sin(t / 9), np.cos(t / 5)])
    x += np.random.default_rng(0).normal(0, 0.05, x.shape)
    label = np.zeros(5000, np.int8)
    label[4500:4520] = 1
    x[4500:4520] += 3.0
    frame = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": label})
    frame[:4000].drop("label").write_csv(tmp_path / "train.csv")
    frame[4000:].write_csv(tmp_path / "test.csv")
    pipe = tmp_path / "p.toml"
    pipe.write_text(textwrap.dedent(f"""
        recipe = "multivariate"
        [data]
        train = "{tmp_path / "train.csv"}"
        test = "{tmp_path / "test.csv"}"
        timestamp = ""
        [train]
        epochs = 1
    """))
    report = run_pipeline(pipe, tmp_path / "run")
    assert report["threshold"]["method"] == "quantile"
    assert "false_events" in report["metrics"] and "false_events_per_day" not in report["metrics"]


@pytest.mark.slow
def test_a_run_with_recipe_auto_takes_the_recipe_for_the_features_read(tmp_path: Path) -> None:
    import textwrap

    import numpy as np
    import polars as pl

    from anomae.report import summary_text
    from anomae.run import run_pipeline

    t = np.arange(3000)
    x = np.sin(t / 11) + np.random.default_rng(0).normal(0, 0.05, t.size)
    pl.DataFrame({"timestamp": t * 60, "x": x}).write_csv(tmp_path / "one.csv")
    pl.DataFrame({"timestamp": t * 60, "x": x, "y": np.cos(t / 7)}).write_csv(tmp_path / "two.csv")
    for name, recipe, window in (("one", "univariate", 16), ("two", "multivariate", 8)):
        pipe = tmp_path / f"{name}.toml"
        pipe.write_text(textwrap.dedent(f"""
            recipe = "auto"
            [data]
            train = "{tmp_path / f"{name}.csv"}"
            [train]
            epochs = 1
            [calibrate]
            method = "quantile"
        """))
        report = run_pipeline(pipe, tmp_path / f"run-{name}")
        assert report["model"]["recipe"] == recipe
        assert report["model"]["window"]["length"] == window
        assert (report["config"]["likelihood"] is not None) == (recipe == "univariate")
        assert f"recipe {recipe} (auto)" in summary_text(report)
