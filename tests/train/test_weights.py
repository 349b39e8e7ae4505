"""Per-feature error weights (anomae/train/weights.py) and their way into the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from anomae.detector import Detector  # noqa: E402
from anomae.errors import PipelineError  # noqa: E402
from anomae.io import SeriesData  # noqa: E402
from anomae.pipeline import parse_pipeline  # noqa: E402
from anomae.train.step import train_step  # noqa: E402
from anomae.train.weights import _weights, constant_features  # noqa: E402


@pytest.mark.parametrize(
    ("err", "ignore", "equalise", "want"),
    [
        ([1.0, 1.0], [0, 0], True, [1.0, 1.0]),
        ([1.0, 4.0], [0, 0], True, [1.6, 0.4]),  # inverse error, mean 1
        ([1.0, 4.0, 0.0], [0, 0, 1], True, [1.6, 0.4, 0.0]),
        ([1.0, 1e-9, 1.0], [0, 0, 0], True, [0.1 / 1.2 * 3, 3 / 1.2, 0.1 / 1.2 * 3]),  # floored
        ([1.0, 4.0, 0.0], [0, 0, 1], False, [1.0, 1.0, 0.0]),
    ],
)
def test_weights_table(
    err: list[float], ignore: list[int], equalise: bool, want: list[float]
) -> None:
    got = _weights(np.array(err), np.array(ignore, bool), equalise)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_constant_features_ignore_nan_and_count_all_nan_as_constant() -> None:
    a = np.array([[1.0, 0.0, np.nan, 5.0], [1.0, 1.0, np.nan, np.nan]])
    b = np.array([[1.0, 0.0, np.nan, 5.0]])
    assert constant_features([a, b]).tolist() == [True, False, True, True]


def _series(rng: np.random.Generator, n: int = 1200) -> SeriesData:
    t = np.arange(n)
    base = np.sin(t / 20.0)
    values = np.stack(
        [
            base + 0.05 * rng.normal(size=n),  # well reconstructed
            base + 1.0 * rng.normal(size=n),  # noisy: a large normal error
            np.full(n, 3.0),  # constant in training
        ],
        axis=1,
    ).astype(np.float32)
    return SeriesData("m", "x", t.astype(np.int64) * 60_000_000_000, values, None, t)


def _pipe(extra: str = "") -> object:
    import tomllib

    doc = tomllib.loads(
        '[data]\ntrain = "x"\n[window]\nlength = 8\n[model]\nhidden = [4]\n'
        "[train]\nepochs = 40\nprogress = false\n" + extra
    )
    return parse_pipeline(doc)


def test_training_weights_errors_and_leaves_constant_features_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = ("clean", "noisy", "fixed")
    pipe = _pipe('[weights]\nerrors = "heldout"\n')
    card, summary, _ = train_step(pipe, [_series(rng)], feats, tmp_path / "m.onnx")  # type: ignore[arg-type]
    w = card.scaler.error_weight
    assert w[2] == 0.0 and summary["ignored_features"] == ["fixed"]
    assert w[0] > 2 * w[1]  # the noisy sensor's normal error counts for less
    assert np.mean(w[:2]) == pytest.approx(1.0)
    det = Detector.load(tmp_path / "m.onnx")
    test = _series(np.random.default_rng(1)).values
    before = det.score_series(test).score
    test[:, 2] = 99.0  # the constant sensor moves: it is not part of the score
    np.testing.assert_array_equal(det.score_series(test).score, before)
    test[600:610, 0] += 3.0  # the clean sensor jumps: a clear anomaly
    assert np.nanargmax(det.score_series(test).score) in range(595, 610)


def test_spread_weights_shrink_only_the_noisy_sensor_and_max_scores_one_sensor(
    tmp_path: Path,
) -> None:
    """errors = "spread": a feature's weight is 1 / its held-out 0.99 quantile, floored at
    the median over features, so the clean sensor is not magnified past the median; with
    aggregate = "max" (recorded in the card) one sensor's jump is the window's score."""
    rng = np.random.default_rng(0)
    pipe = _pipe('[weights]\nerrors = "spread"\n[score]\naggregate = "max"\n')
    card, _, _ = train_step(pipe, [_series(rng)], ("clean", "noisy", "fixed"), tmp_path / "m.onnx")  # type: ignore[arg-type]
    w = card.scaler.error_weight
    assert card.architecture["aggregate"] == "max" and w[2] == 0.0
    # clean floored at the median of the two: w0 / w1 = q_noisy / median, in (1, 2)
    assert 1.0 < w[0] / w[1] < 2.0
    assert np.mean(w[:2]) == pytest.approx(1.0)
    det = Detector.load(tmp_path / "m.onnx")
    test = _series(np.random.default_rng(1)).values
    out = det.score_series(test)
    np.testing.assert_array_equal(out.score, out.feature_error.max(axis=1))
    test[600:610, 0] += 3.0
    assert np.nanargmax(det.score_series(test).score) in range(595, 610)


def test_spread_weights_table() -> None:
    # floored at the median (2.0): only the noisy feature is rescaled, mean weight 1
    got = _weights(np.array([0.1, 2.0, 8.0, 0.0]), np.array([0, 0, 0, 1], bool), True, 1.0)
    np.testing.assert_allclose(got, [4 / 3, 4 / 3, 1 / 3, 0.0], rtol=1e-9)


def test_equal_weights_and_kept_constants_store_no_weights(tmp_path: Path) -> None:
    pipe = _pipe('[weights]\nerrors = "equal"\nconstant = "keep"\n')
    card, summary, _ = train_step(
        pipe, [_series(np.random.default_rng(0))], ("a", "b", "c"), tmp_path / "m.onnx"
    )  # type: ignore[arg-type]
    assert card.scaler.error_weight == () and summary["ignored_features"] == []


def test_all_constant_features_are_refused(tmp_path: Path) -> None:
    s = _series(np.random.default_rng(0))
    s.values[:] = 1.0
    with pytest.raises(PipelineError, match="constant"):
        train_step(_pipe(), [s], ("a", "b", "c"), tmp_path / "m.onnx")  # type: ignore[arg-type]


def test_weights_section_is_validated() -> None:
    with pytest.raises(PipelineError, match="errors"):
        _pipe('[weights]\nerrors = "loud"\n')


def test_score_aggregate_is_validated() -> None:
    with pytest.raises(PipelineError, match=r"\[score\].*aggregate must be 'mean' or 'max'"):
        _pipe('[score]\naggregate = "median"\n')
