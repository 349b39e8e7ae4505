"""``anomae retrain``: the rows the current model flags are dropped, the candidate is trained
and calibrated with the parent's settings, its card records the lineage, and too little
normal data is refused without touching the output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import run_cli

import anomae
from anomae.detector import Detector
from anomae.io import TableSpec, read_series
from anomae.retrain import RetrainError, RetrainOptions, normal_rows, pipeline_of, retrain
from anomae.spec import ModelCard
from anomae.synth import SynthConfig, generate

pytest.importorskip("torch")

QUANTILE = {"method": "quantile", "q": 0.98}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("retrain")
    train, test = generate(SynthConfig(seed=5, n_series=2, n_features=6, train_days=2))
    paths = {"train": out / "train.parquet", "test": out / "test.parquet"}
    train.write_parquet(paths["train"])
    test.write_parquet(paths["test"])
    model = anomae.fit(train, epochs=1, seed=3, hidden=[8, 2], window=8, calibration=QUANTILE)
    paths["model"] = model.save(out / "model.onnx")
    return paths


def _read(data: dict[str, Path], det: Detector) -> list:  # type: ignore[type-arg]
    return read_series([data["test"]], TableSpec(), det.card.features)[0]


def test_rows_of_flagged_windows_and_widened_events_are_dropped(data: dict[str, Path]) -> None:
    det = Detector.load(data["model"])
    series = _read(data, det)
    normal = normal_rows(det, series)
    windows, events = anomae.load(data["model"]).score(data["test"])
    assert windows["is_anomaly"].sum() > 0 and events.height > 0  # the data has something
    length = det.card.window.length
    for s in series:
        kept = np.zeros(s.values.shape[0], bool)
        for seg in normal.segments:
            if seg.name == s.name:
                kept[np.searchsorted(s.timestamps, seg.timestamps)] = True
                assert seg.values.shape[0] >= length
        ts = s.timestamps
        flagged = windows.filter((pl.col("series") == s.name) & pl.col("is_anomaly"))
        for end in np.searchsorted(ts, flagged["timestamp"].cast(pl.Int64).to_numpy()):
            assert not kept[max(end - length + 1, 0) : end + 1].any()
        ev = events.filter(pl.col("series") == s.name)
        for a, b in zip(ev["start"].cast(pl.Int64), ev["end"].cast(pl.Int64), strict=True):
            first = int(np.searchsorted(ts, a)) - 2 * length + 1  # the event's rows - a window
            last = int(np.searchsorted(ts, b)) + length
            assert not kept[max(first, 0) : last + 1].any()
    total = sum(s.values.shape[0] for s in series)
    assert normal.rows + normal.rows_dropped == total
    assert 0 < normal.rows_flagged <= normal.rows_dropped < total


@pytest.mark.slow
def test_candidate_keeps_the_parents_settings_and_records_its_lineage(
    data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "candidate.onnx"
    card, normal = retrain(data["model"], [data["test"]], out, RetrainOptions(seed=9))
    parent = Detector.load(data["model"]).card
    cand = Detector.load(out).card
    assert cand == card
    assert cand.window == parent.window and cand.features == parent.features
    assert cand.architecture == parent.architecture
    for key in ("noise", "sparsity", "train_stride", "weights"):
        assert cand.training[key] == parent.training[key]
    want = {**parent.training["config"], "seed": 9}
    assert cand.training["config"] == want
    assert cand.threshold is not None and parent.threshold is not None
    assert (cand.threshold.method, cand.threshold.params.get("q")) == ("quantile", 0.98)
    assert cand.alarm["post_rule"] == parent.alarm["post_rule"]
    assert cand.data_fingerprint != parent.data_fingerprint
    lin = cand.lineage
    assert lin["parent_sha256"] == hashlib.sha256(data["model"].read_bytes()).hexdigest()
    assert lin["parent_created_at"] == parent.created_at
    first = min(int(s.timestamps[0]) for s in normal.segments) / 1e9
    last = max(int(s.timestamps[-1]) for s in normal.segments) / 1e9
    assert lin["data_span"] == [first, last]
    assert (lin["rows"], lin["rows_dropped"]) == (normal.rows, normal.rows_dropped)
    assert cand.training["data_span"] == [first, last]  # trained on exactly those rows


def test_pipeline_of_a_card_trains_like_it(data: dict[str, Path]) -> None:
    card = Detector.load(data["model"]).card
    pipe = pipeline_of(card, RetrainOptions(epochs=4))
    assert pipe.window.length == card.window.length and pipe.window.stride == card.window.stride
    assert pipe.model["hidden"] == card.architecture["hidden"]
    assert pipe.train["epochs"] == 4 and pipe.train["seed"] == card.training["config"]["seed"]
    assert pipe.calibrate.method == "quantile" and pipe.calibrate.q == 0.98
    assert pipe.score.post_rule().min_windows == card.alarm["post_rule"]["min_windows"]
    # how errors count and make the score: the recipe's, kept (not the pipeline defaults)
    assert card.architecture["aggregate"] == "max" and pipe.score.aggregate == "max"
    assert card.training["weights"]["errors"] == "spread" and pipe.weights.errors == "spread"
    assert pipe.weights.constant == card.training["weights"]["constant"]


def test_too_little_normal_data_is_refused_and_the_output_kept(
    data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "candidate.onnx"
    out.write_bytes(b"old candidate")
    with pytest.raises(RetrainError, match=r"rows are normal by the current model.*--min-rows"):
        retrain(data["model"], [data["test"]], out, RetrainOptions(min_rows=10**7))
    assert out.read_bytes() == b"old candidate"
    res = run_cli(
        ["retrain", str(data["model"]), str(data["test"]), "-o", str(out), "--force",
         "--min-rows", "10000000"]
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("error: only ") and "--min-rows" in res.stderr
    assert out.read_bytes() == b"old candidate"


def test_a_model_without_threshold_or_training_settings_is_refused(data: dict[str, Path]) -> None:
    card = Detector.load(data["model"]).card
    with pytest.raises(RetrainError, match="no threshold"):
        pipeline_of(ModelCard(card.features, card.window, card.scaler, None, card.architecture,
                              card.training))  # fmt: skip
    with pytest.raises(RetrainError, match="no training settings"):
        pipeline_of(ModelCard(card.features, card.window, card.scaler, card.threshold))


def test_lineage_round_trips_and_older_cards_have_none(data: dict[str, Path]) -> None:
    card = Detector.load(data["model"]).card
    assert card.lineage == {}
    d = card.to_dict()
    del d["lineage"]  # a card written before the field existed
    assert ModelCard.from_dict(d).lineage == {}
    lin = {"parent_sha256": "ab", "data_span": [1.0, 2.0], "rows": 5, "rows_dropped": 1}
    from dataclasses import replace

    again = ModelCard.from_json(replace(card, lineage=lin).to_json())
    assert again.lineage == lin


@pytest.mark.slow
def test_cli_writes_the_candidate_and_inspect_shows_its_lineage(
    data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "candidate.onnx"
    res = run_cli(["retrain", str(data["model"]), str(data["test"]), "-o", str(out)])
    assert res.returncode == 0, res.stderr
    assert "normal rows used" in res.stdout and out.is_file()
    again = run_cli(["retrain", str(data["model"]), str(data["test"]), "-o", str(out)])
    assert again.returncode == 1 and "--force" in again.stderr
    shown = run_cli(["inspect", str(out)])
    sha = hashlib.sha256(data["model"].read_bytes()).hexdigest()
    assert f"lineage      retrained from {sha[:16]}" in shown.stdout
