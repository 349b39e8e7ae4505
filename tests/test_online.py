"""OnlineScorer: one reading at a time gives the batch scores, window for window, across
interleaved series and gaps; bad readings are refused with a message."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import anomae
from anomae.api import AnomalyModel
from anomae.errors import InputError

pytest.importorskip("torch")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(small_demo: dict[str, Path]) -> AnomalyModel:
    train = pl.read_parquet(small_demo["train"])
    return anomae.fit(train, epochs=1, calibration={"method": "quantile", "q": 0.99})


def test_stream_scores_equal_batch_scores(model: AnomalyModel, small_demo: dict[str, Path]) -> None:
    test = pl.read_parquet(small_demo["test"]).sort("timestamp", "series")  # interleaved
    # a 30-minute hole in one series: longer than the card's gap limit, so both restart
    test = test.filter(
        ~((pl.col("series") == test["series"][0]) & pl.int_range(pl.len()).is_between(400, 460))
    )
    assert model.card.max_gap_s and model.card.max_gap_s < 1800
    windows, _ = model.score(test)
    scorer = anomae.OnlineScorer(model)
    got: dict[str, list[float]] = {}
    for row in test.drop("label", "anomaly").to_dicts():
        name, ts = row.pop("series"), row.pop("timestamp")
        s = scorer.score_one(row, series=name, t=ts)
        if not math.isnan(s):
            got.setdefault(name, []).append(s)
    for name, part in windows.group_by("series", maintain_order=True):
        want = part["score"].to_numpy()
        np.testing.assert_allclose(np.array(got[name[0]]), want, rtol=1e-5, atol=1e-7)
    assert sum(len(v) for v in got.values()) == windows.height


def test_nan_until_a_window_is_full_and_missing_features(model: AnomalyModel) -> None:
    scorer = anomae.OnlineScorer(model)
    row = dict.fromkeys(model.features, 1.0)
    scores = [scorer.score_one(row) for _ in range(model.window + 1)]
    assert all(math.isnan(s) for s in scores[: model.window - 1])
    assert all(math.isfinite(s) for s in scores[model.window - 1 :])
    assert math.isfinite(scorer.score_one({model.features[0]: 2.0}))  # others missing
    assert scorer.learn_one(row) is None
    assert scorer.threshold == model.threshold


def test_bad_readings_are_refused(model: AnomalyModel) -> None:
    scorer = anomae.OnlineScorer(model)
    f = model.features[0]
    with pytest.raises(InputError, match="'nope'.* which the model does not know"):
        scorer.score_one({"nope": 1.0}, series="m1")
    with pytest.raises(InputError, match=f"feature '{f}' = 'x' is not a number"):
        scorer.score_one({f: "x"}, series="m1")
    scorer.score_one({f: 1.0}, series="m1", t=100.0)
    with pytest.raises(InputError, match="series 'm1': reading at t=50.0 is not after"):
        scorer.score_one({f: 1.0}, series="m1", t=50.0)
    scorer.score_one({f: 1.0}, series="m2", t=50.0)  # another series has its own clock
