"""Per-series thresholds: each series' own calibration, the fleet fallback (named), the card
round trip, and batch scoring applying them (the monitor's side: test_cli_monitoring.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import run_cli

from anomae.calibrate import CalibrationError, calibrate
from anomae.calibrate_events import calibrate_events
from anomae.calibrate_model import calibrate_blocks
from anomae.calibrate_series import calibrate_per_series
from anomae.calibrate_settings import CalibrateSection
from anomae.detector import Detector
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.holdout import split_holdout_named
from anomae.io import SeriesData
from anomae.modelfile import write_model
from anomae.score import ScoreOptions, score_all
from anomae.spec import ModelCard, ModelCardError, Scaler, Threshold, WindowSpec

FEATURES = ("a", "b", "c")
MINUTE = 60_000_000_000
SCALES = {"quiet": 0.5, "mid": 1.0, "noisy": 2.0}


def zero_model(
    path: Path, threshold: Threshold | None = None, alarm: dict[str, Any] | None = None
) -> Path:
    """A real exported model, no torch: a zero network, so a window's score is the mean
    squared value over its rows and features."""
    window = WindowSpec(4, 1)
    scaler = Scaler((0.0,) * 3, (1.0,) * 3)
    card = ModelCard(FEATURES, window, scaler, threshold=threshold, alarm=alarm or {})
    lf = window.length * len(FEATURES)
    model = build_graph(
        [Layer("MatMul", [np.zeros((lf, lf), np.float32)])], "flat", FEATURES, window, card.scaler
    )
    write_model(model, card, path)
    return path


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    return Detector.load(zero_model(tmp_path_factory.mktemp("m") / "model.onnx"), threads=1)


def fleet(rows: int, seed: int = 0, scales: dict[str, float] = SCALES) -> list[SeriesData]:
    """Normal series at 1-minute steps, each with its own noise level."""
    rng = np.random.default_rng(seed)
    return [
        SeriesData(
            name,
            "x",
            np.arange(rows, dtype=np.int64) * MINUTE,
            rng.normal(0.0, scale, (rows, len(FEATURES))).astype(np.float32),
            None,
            np.arange(rows),
        )
        for name, scale in scales.items()
    ]


def test_quantile_per_series_is_each_series_own_quantile() -> None:
    rng = np.random.default_rng(0)
    own = {"quiet": rng.exponential(1.0, 4000), "noisy": rng.exponential(3.0, 3000)}
    # noisy comes in two blocks, as a spread holdout gives; "new" has too few windows
    names = ["quiet", "noisy", "noisy", "new"]
    scores = [own["quiet"], own["noisy"][:1000], own["noisy"][1000:], rng.exponential(1, 50)]
    fleet_th = calibrate(np.concatenate(scores), "quantile", q=0.99)
    th = calibrate_per_series(fleet_th, names, scores, "quantile", {"q": 0.99})
    assert th.value == fleet_th.value and th.expected_far_ci == fleet_th.expected_far_ci
    for name, s in own.items():
        assert th.per_series[name] == pytest.approx(float(np.quantile(s, 0.99)), rel=1e-12)
    assert th.for_series("quiet") < th.value < th.for_series("noisy")
    assert set(th.per_series) == {"quiet", "noisy"}
    assert list(th.per_series_fallback) == ["new"]
    assert th.per_series_fallback["new"].startswith("50 windows: 50 calibration windows cannot")
    assert th.for_series("new") == th.for_series("never seen") == th.value


def test_events_per_series_meet_the_budget_on_their_own_data() -> None:
    rng = np.random.default_rng(1)
    day = 1440
    own = {n: [rng.gamma(2.0, s, day) for _ in range(2)] for n, s in SCALES.items()}
    short = [rng.gamma(2.0, 1.0, day // 4)]  # 0.25 days: the budget needs 0.7
    names = [n for n, blocks in own.items() for _ in blocks] + ["short"]
    scores = [b for blocks in own.values() for b in blocks] + short
    params = {"false_events_per_day": 1 / 7, "interval_s": 60.0, "min_windows": (1, 3)}
    fleet_th = calibrate_events(scores, **params)  # type: ignore[arg-type]
    assert fleet_th.post_rule["min_windows"] == 3  # the candidate with the lowest threshold
    # as if the fleet had chosen min_windows 1: every series must follow it, not choose again
    rule = PostRule(1)
    fleet_th = replace(fleet_th, post_rule=asdict(rule))
    th = calibrate_per_series(fleet_th, names, scores, "events", params)
    for name, blocks in own.items():  # the budget on its own data, with the fleet's rule
        want = calibrate_events(blocks, 1 / 7, interval_s=60.0, rule=rule)
        assert th.per_series[name] == want.value
    assert th.for_series("quiet") < th.for_series("mid") < th.for_series("noisy")
    assert th.per_series["quiet"] < th.value < th.per_series["noisy"]
    assert "needs at least 0.70 series-days" in th.per_series_fallback["short"]
    assert th.post_rule == fleet_th.post_rule  # the alarm policy stays the fleet's


def test_names_must_match_the_blocks() -> None:
    fleet_th = calibrate(np.arange(1.0, 1001.0), "quantile", q=0.99)
    with pytest.raises(CalibrationError, match="2 series names for 1 calibration blocks"):
        calibrate_per_series(fleet_th, ["a", "b"], [np.arange(1.0, 1001.0)], "quantile", {})


def test_split_holdout_names_each_calibration_block() -> None:
    long, short = fleet(1000)[0], replace(fleet(30)[1], name="short")
    fit, cal, names = split_holdout_named([long, short], 0.2, spread=True, min_rows=4)
    assert len(cal) == len(names) and names == ["quiet", "quiet", "short"]
    assert [b.shape[0] for b in cal] == [100, 100, 6]  # short: its tail (too short to spread)
    _, cal, names = split_holdout_named([long, short], 0.2, spread=False)
    assert names == ["quiet", "short"] and len(cal) == 2


def test_calibrate_blocks_per_series_with_the_detector(detector: Detector) -> None:
    series = fleet(2000)
    short = replace(fleet(60, seed=2)[0], name="short")
    blocks = [s.values for s in [*series, short]]
    names = [s.name for s in [*series, short]]
    section = CalibrateSection(method="quantile", q=0.99, per_series=True)
    th = calibrate_blocks(detector, blocks, section, names=names)
    for s in series:
        own = detector.score_series(s.values).score
        assert th.per_series[s.name] == pytest.approx(float(np.quantile(own, 0.99)), rel=1e-6)
    assert list(th.per_series_fallback) == ["short"]
    plain = calibrate_blocks(detector, blocks, replace(section, per_series=False), names=names)
    assert plain.value == th.value and plain.per_series == {}
    with pytest.raises(CalibrationError, match="per_series needs the series name"):
        calibrate_blocks(detector, blocks, section)


def test_score_applies_each_series_threshold_and_threshold_overrides(tmp_path: Path) -> None:
    th = Threshold(1.5, "quantile", {"q": 0.99}, per_series={"quiet": 0.4, "noisy": 6.0})
    det = Detector.load(zero_model(tmp_path / "model.onnx", th), threads=1)
    series = fleet(500)
    windows, _, _ = score_all(det, series, ScoreOptions(rule=PostRule(1)))
    for name, want in (("quiet", 0.4), ("mid", 1.5), ("noisy", 6.0)):  # mid: the fleet's
        w = windows.filter(pl.col("series") == name)
        norm = w["score_normalised"].to_numpy()
        np.testing.assert_array_equal(norm, w["score"].to_numpy() / np.float32(want))
        assert w["is_anomaly"].to_list() == (norm > 1).tolist()
    over, _, _ = score_all(det, series, ScoreOptions(rule=PostRule(1), threshold=2.0))
    np.testing.assert_array_equal(
        over["score_normalised"].to_numpy(), over["score"].to_numpy() / np.float32(2.0)
    )


def test_card_round_trip_old_cards_and_bad_values() -> None:
    th = Threshold(
        1.5, "events", per_series={"m1": 1.2, "m2": 2.5}, per_series_fallback={"m3": "why"}
    )
    card = ModelCard(FEATURES, WindowSpec(4), Scaler((0.0,) * 3, (1.0,) * 3), threshold=th)
    assert ModelCard.from_json(card.to_json()) == card
    d = json.loads(card.to_json())
    for key in ("per_series", "per_series_fallback"):
        d["threshold"].pop(key)
    old = ModelCard.from_dict(d).threshold
    assert old is not None and old.per_series == {} and old.for_series("m1") == 1.5
    for bad, message in (
        ({"per_series": {"m1": 0.0}}, "threshold of series 'm1' must be finite and > 0"),
        ({"per_series_fallback": {"m1": "x"}}, "have a threshold of their own and fell back"),
    ):
        d = json.loads(card.to_json())
        d["threshold"].update(bad)
        with pytest.raises(ModelCardError, match=message):
            ModelCard.from_dict(d)


@pytest.mark.slow
def test_cli_calibrate_per_series_names_fallbacks_and_inspect_shows_them(
    tmp_path: Path,
) -> None:
    model = zero_model(tmp_path / "model.onnx")
    series = [*fleet(1500), replace(fleet(100, seed=3)[0], name="tiny")]
    data = tmp_path / "normal.parquet"
    pl.concat(
        pl.DataFrame(
            {
                "timestamp": pl.Series(s.timestamps).cast(pl.Datetime("ns")),
                "series": [s.name] * s.values.shape[0],
                **{f: s.values[:, j] for j, f in enumerate(FEATURES)},
            }
        )
        for s in series
    ).write_parquet(data)
    r = run_cli(["calibrate", str(model), str(data), "--method", "quantile", "--per-series"])
    assert r.returncode == 0, r.stderr
    assert "per series: 3 thresholds, min " in r.stdout
    assert "1 series fell back to the fleet threshold" in r.stdout
    assert "tiny: 97 windows: 97 calibration windows cannot resolve quantile 0.995" in r.stdout
    text = run_cli(["inspect", str(model)]).stdout
    assert "per series: 3 thresholds, min " in text and "fell back" in text and "tiny" in text
    card = json.loads(run_cli(["inspect", str(model), "--json"]).stdout)
    assert sorted(card["threshold"]["per_series"]) == ["mid", "noisy", "quiet"]
    assert list(card["threshold"]["per_series_fallback"]) == ["tiny"]
    r = run_cli(["calibrate", str(model), str(data), "--method", "quantile"])
    assert r.returncode == 0 and "per series" not in r.stdout  # recalibrated: fleet only
    assert json.loads(run_cli(["inspect", str(model), "--json"]).stdout)["threshold"][
        "per_series"
    ] == {}


def test_pipeline_calibrate_section_takes_per_series() -> None:
    from anomae.errors import PipelineError
    from anomae.pipeline import parse_pipeline

    doc: dict[str, Any] = {"data": {"train": "x.parquet"}, "calibrate": {"per_series": True}}
    assert parse_pipeline(doc).calibrate.per_series is True
    doc["calibrate"]["per_series"] = "yes"
    with pytest.raises(PipelineError, match="key 'per_series' must be bool"):
        parse_pipeline(doc)
