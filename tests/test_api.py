"""The Python API end to end: fit on pandas and polars frames, calibrate, score as the CLI
does, save and load (without torch), and the errors a caller sees."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from conftest import blocked_imports, run_cli
from polars.testing import assert_frame_equal

import anomae
from anomae.api import AnomalyModel, _pipeline, _sections, recipe_path
from anomae.errors import InputError

pytest.importorskip("torch")

QUANTILE = {"method": "quantile", "q": 0.99}


def _pandas(df: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({c: df[c].to_numpy() for c in df.columns})


@pytest.fixture(scope="module")
def frames(small_demo: dict[str, Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_parquet(small_demo["train"]), pl.read_parquet(small_demo["test"])


@pytest.fixture(scope="module")
def model(frames: tuple[pl.DataFrame, pl.DataFrame]) -> AnomalyModel:
    return anomae.fit(frames[0], epochs=2, seed=1, calibration=QUANTILE)


def test_keywords_replace_the_recipes_keys_and_the_rest_is_the_recipe() -> None:
    recipe = tomllib.loads(recipe_path("multivariate").read_text())
    pipe = _pipeline(
        "multivariate", _sections({"window": 16, "epochs": 3}, {"sigma": 0.05}), "test"
    )
    assert pipe.window.length == 16 and pipe.train["epochs"] == 3 and pipe.noise["sigma"] == 0.05
    assert pipe.model == recipe["model"] and pipe.noise["kind"] == recipe["noise"]["kind"]
    assert pipe.calibrate.method == recipe["calibrate"]["method"]
    assert pipe.train["batch_size"] == recipe["train"]["batch_size"]
    assert _pipeline("univariate", {}, "test").likelihood is not None
    from anomae.pipeline import load_pipeline

    skab = load_pipeline(Path(__file__).resolve().parent.parent / "pipelines" / "skab.toml")
    assert _pipeline(skab, {}, "test") is skab  # a Pipeline as it is, or with keys replaced
    tuned = _pipeline(skab, _sections({"epochs": 2}, {}), "test")
    assert tuned.train["epochs"] == 2 and tuned.calibrate == skab.calibrate
    assert tuned.benchmark == skab.benchmark and tuned.window == skab.window
    # the recipe sizes its code to the data; widths asked for are trained as given
    assert recipe["model"]["code"] == "features"
    assert _sections({"hidden": [16, 4]}, {})["model"] == {"hidden": [16, 4], "code": "fixed"}
    both = _sections({"hidden": [16, 4]}, {"code": "features"})["model"]
    assert both == {"hidden": [16, 4], "code": "features"}
    with pytest.raises(TypeError, match="unknown setting 'sigmaa'"):
        _sections({}, {"sigmaa": 1})
    with pytest.raises(ValueError, match="recipe 'nope' is neither"):
        _pipeline("nope", {}, "test")


@pytest.mark.slow
def test_fit_takes_the_recipe_for_the_datas_shape(
    frames: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    one = frames[0].select("series", "timestamp", "temp_in")
    model = anomae.fit(one, epochs=1)  # recipe "auto": one feature, the univariate recipe
    assert model.window == 16 and model.card.alarm.get("likelihood"), model.card.alarm
    assert model.threshold is not None and model.card.threshold.method == "ksigma"
    # its own method: the univariate recipe's k does not follow
    model = anomae.fit(one, epochs=1, calibration=QUANTILE)
    assert model.card.threshold.params == {"q": 0.99}
    model = anomae.fit(one, epochs=1, recipe="multivariate", calibration=QUANTILE)
    assert model.window == 8 and not model.card.alarm.get("likelihood")
    # settings are checked before the data is read where the recipe is known without it
    from anomae.errors import PipelineError

    for kw in ({"recipe": "multivariate"}, {"features": ["a"]}):
        with pytest.raises(PipelineError, match="window length must be >= 1"):
            anomae.fit("missing.csv", window=0, **kw)
    with pytest.raises(InputError, match="missing.csv: file does not exist"):
        anomae.fit("missing.csv", window=0)  # auto, no features: the data says which recipe


@pytest.mark.slow
def test_fit_on_an_array_reads_rows_in_order_without_time() -> None:
    import numpy as np

    x = np.sin(np.arange(2000) / 7.0)
    x[1500:1504] += 4.0
    model = anomae.fit(x, epochs=1, calibration=QUANTILE)
    assert model.features == ("column_1",) and model.card.columns["timestamp"] == "#row"
    windows, events = model.score(x)
    assert windows.height == 2000 - model.window + 1
    hit = events.filter(pl.col("start").dt.epoch("s") <= 1503, pl.col("end").dt.epoch("s") >= 1500)
    assert hit.height == 1, events  # row n is second n
    named = anomae.fit(pd.Series(x, name="flow"), epochs=1, calibration=QUANTILE)
    assert named.features == ("flow",)
    fleet = anomae.fit([x, x[::-1].copy()], epochs=1, calibration=QUANTILE)  # one series each
    assert fleet.card.columns["timestamp"] == "#row"


@pytest.mark.slow
def test_fit_on_pandas_equals_fit_on_polars(
    frames: tuple[pl.DataFrame, pl.DataFrame], model: AnomalyModel
) -> None:
    train, test = frames
    from_pandas = anomae.fit(_pandas(train), epochs=2, seed=1, calibration=QUANTILE)
    assert from_pandas.threshold == model.threshold
    assert model.features == tuple(
        c for c in train.columns if c not in ("timestamp", "series", "label", "anomaly")
    )
    assert_frame_equal(from_pandas.score(_pandas(test))[0], model.score(test)[0])
    assert model.card.threshold is not None and model.card.threshold.method == "quantile"


@pytest.mark.slow
def test_fit_takes_the_recipes_calibration(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    recipe = tomllib.loads(recipe_path("multivariate").read_text())
    m = anomae.fit(frames[0], epochs=1)
    assert m.card.threshold is not None
    assert m.card.threshold.method == recipe["calibrate"]["method"]
    assert m.window == recipe["window"]["length"]


@pytest.mark.slow
def test_scores_equal_the_cli(
    model: AnomalyModel, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    path = model.save(tmp_path / "m.onnx")
    out, events = tmp_path / "s.parquet", tmp_path / "e.parquet"
    r = run_cli(
        ["score", str(path), str(small_demo["test"]), "-o", str(out), "--events", str(events)]
    )
    assert r.returncode == 0, r.stderr
    windows, ev = model.score(pl.read_parquet(small_demo["test"]))
    assert_frame_equal(windows, pl.read_parquet(out))
    assert_frame_equal(ev, pl.read_parquet(events))
    # the same from the file path, and as pandas
    assert_frame_equal(model.score(small_demo["test"])[0], windows)
    w_pd, e_pd = model.score(small_demo["test"], as_pandas=True)
    assert isinstance(w_pd, pd.DataFrame) and list(w_pd.columns) == windows.columns
    assert len(w_pd) == windows.height and len(e_pd) == ev.height


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "params", "cli"),
    [
        ("quantile", {"q": 0.995}, ["--q", "0.995"]),
        ("ksigma", {"k": 4.0}, ["--k", "4"]),
        ("mad", {}, []),
        ("events", {"false_events_per_day": 0.5}, ["--false-events-per-day", "0.5"]),
    ],
)
def test_calibrate_rewrites_the_card_as_the_cli_does(
    frames: tuple[pl.DataFrame, pl.DataFrame],
    small_demo: dict[str, Path],
    tmp_path: Path,
    method: str,
    params: dict[str, float],
    cli: list[str],
) -> None:
    from anomae.modelfile import read_card

    m = AnomalyModel(anomae.fit(frames[0], epochs=1, seed=2, calibration=QUANTILE).to_bytes())
    before = m.save(tmp_path / "before.onnx")
    assert m.calibrate(small_demo["train"], method, **params) is m
    r = run_cli(["calibrate", str(before), str(small_demo["train"]), "--method", method, *cli])
    assert r.returncode == 0, r.stderr
    want = read_card(before)
    assert m.card.threshold == want.threshold and m.card.alarm == want.alarm
    assert m.card.threshold is not None and m.card.threshold.method == method
    saved = anomae.load(m.save(tmp_path / "after.onnx"))
    assert saved.threshold == m.threshold


@pytest.mark.slow
def test_calibrate_refuses_a_wrong_parameter(model: AnomalyModel, frames: tuple) -> None:
    with pytest.raises(ValueError, match="k is not a parameter of method 'quantile'"):
        model.calibrate(frames[0], "quantile", k=3.0)
    with pytest.raises(ValueError, match="unknown key"):
        model.calibrate(frames[0], "quantile", qq=0.9)


@pytest.mark.slow
def test_save_and_load_round_trip(
    model: AnomalyModel, frames: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    path = model.save(tmp_path / "model.onnx")
    loaded = anomae.load(path)
    assert path.read_bytes() == model.to_bytes() == loaded.to_bytes()
    assert loaded.card == model.card and loaded.threshold == model.threshold
    assert_frame_equal(loaded.score(frames[1])[0], model.score(frames[1])[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp files
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(anomae.DetectorError, match="model.onnx"):
        anomae.load(path)


@pytest.mark.slow
def test_load_and_score_without_torch(
    model: AnomalyModel, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    path = model.save(tmp_path / "model.onnx")
    env = blocked_imports(tmp_path / "block", "torch")
    code = (
        "import sys, anomae\n"
        "anomae.fit\n"
        f"m = anomae.load({str(path)!r})\n"
        f"w, e = m.score({str(small_demo['test'])!r})\n"
        "m.calibrate(" + repr(str(small_demo["train"])) + ", 'quantile', q=0.9)\n"
        "assert 'torch' not in sys.modules\n"
        "print(w.height, m.card.threshold.method)\n"
        "try:\n"
        "    anomae.fit(" + repr(str(small_demo["train"])) + ")\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    import os

    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith(" quantile")
    assert "pip install 'anomae[train]'" in lines[1] and "pip install '.[train]'" in lines[1]


def test_import_anomae_stays_light() -> None:
    heavy = ("torch", "onnxruntime", "polars")
    code = f"import sys, anomae; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_fit_reports_bad_frames() -> None:
    frame = pd.DataFrame(
        {"temp": [1.0, 2.0, "err"]}, index=pd.date_range("2026-01-01", periods=3, freq="min")
    )
    with pytest.raises(InputError, match="DataFrame: column 'temp', row 3"):
        anomae.fit(frame, epochs=1)


def test_too_little_data_for_the_budget_says_how_to_calibrate_in_python() -> None:
    """Three days of minutes cannot resolve the recipe's one false event a week: refused
    before training, and the message gives the fix in the caller's own terms too."""
    from anomae.errors import CalibrationError

    n = 3 * 1440
    values = {"a": [float(i % 7) for i in range(n)], "b": [0.5 * (i % 5) for i in range(n)]}
    frame = pd.DataFrame(values, index=pd.date_range("2026-01-01", periods=n, freq="min"))
    with pytest.raises(CalibrationError, match="series-days") as err:
        anomae.fit(frame, epochs=1)
    assert 'anomae.fit: calibration={"method": "quantile", "q": 0.99}' in str(err.value)


def test_rows_without_time_fit_score_and_the_cli(tmp_path: Path) -> None:
    """``timestamp=None``: rows in order, one a second; the card records it, so scoring
    (here and ``anomae score``) needs no option; the recipe's events budget, which has no
    day to count in, becomes the 0.99 quantile."""
    import numpy as np

    t = np.arange(3000)
    x = np.column_stack([np.sin(t / 9), np.cos(t / 5)]) + np.random.default_rng(0).normal(
        0, 0.05, (3000, 2))  # fmt: skip
    train = pd.DataFrame(x[:2000], columns=["a", "b"])
    test = pd.DataFrame(x[2000:], columns=["a", "b"])
    with pytest.raises(InputError, match="timestamp=None"):
        anomae.fit(train, epochs=1)
    model = anomae.fit(train, timestamp=None, epochs=1)
    assert model.card.columns["timestamp"] == "#row"
    assert model.card.threshold is not None
    assert (model.card.threshold.method, model.card.threshold.params["q"]) == ("quantile", 0.99)
    windows, _ = model.score(test)
    assert windows.height == 1000 - model.window + 1
    assert windows["timestamp"].dt.epoch("s").to_list() == list(range(model.window - 1, 1000))
    assert_frame_equal(model.score(test, timestamp="")[0], windows)  # "" says rows, as in fit
    path, csv = model.save(tmp_path / "m.onnx"), tmp_path / "test.csv"
    test.to_csv(csv, index=False)
    out = tmp_path / "s.parquet"
    r = run_cli(["score", str(path), str(csv), "-o", str(out)])
    assert r.returncode == 0, r.stderr
    assert_frame_equal(windows.drop("series"), pl.read_parquet(out).drop("series"))


def test_the_card_records_the_columns_fit_read(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = (f.rename({"timestamp": "time", "series": "machine"}) for f in frames)
    model = anomae.fit(train, timestamp="time", series="machine", epochs=1, calibration=QUANTILE)
    assert (model.card.columns["timestamp"], model.card.columns["series"]) == ("time", "machine")
    windows, _ = model.score(test)  # no column names: the card's
    assert windows["series"].n_unique() == test["machine"].n_unique()
