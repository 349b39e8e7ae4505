"""The harness's likelihood alarm policy: whole series in time order, test rows out."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from anomae.calibrate import calibrate
from anomae.calibrate_settings import CalibrateSection
from anomae.eval.baselines import WindowedGaussianBaseline
from anomae.eval.benchmark import BaselineDetector
from anomae.eval.datasets import Case
from anomae.events import PostRule, event_bounds
from anomae.likelihood import Likelihood, likelihood_scores


def _case() -> Case:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 1)).astype(np.float32)
    x[2600:2610] += 12.0  # a burst in the test part
    label = np.zeros(2500, np.int8)
    label[2100:2120] = 1
    return Case(
        name="c",
        features=("value",),
        train=x[:500],
        test=x[500:],
        test_label=label,
        test_timestamps=np.arange(500, 3000, dtype=np.int64),
        train_timestamps=np.arange(500, dtype=np.int64),
        probation=500,
    )


def test_baseline_alarms_on_the_likelihood_of_its_whole_series() -> None:
    case = _case()
    spec = Likelihood(short=1)
    cal = CalibrateSection(method="ksigma", k=5.0)
    s = BaselineDetector("ksigma", cal, SimpleNamespace(likelihood=spec))(case)
    assert s.threshold == 1.0 and s.score.shape == (2500,)
    full = np.abs(np.concatenate([case.train, case.test])[:, 0] - case.train.mean())
    want = likelihood_scores(full / case.train.std(), spec)[500:]  # training rows first
    np.testing.assert_allclose(s.score, want, rtol=1e-5)
    starts, _ = event_bounds(s.score / s.threshold, PostRule(1, cooldown=50))
    assert 2100 in starts.tolist()
    # without a [likelihood] section the fixed, label-free threshold applies as before
    plain = BaselineDetector("ksigma", cal, SimpleNamespace(likelihood=None))(case)
    z = np.abs(case.train[:, 0] - case.train.mean()) / case.train.std()
    assert plain.threshold == pytest.approx(calibrate(z, "ksigma", k=5.0).value, rel=1e-6)


def test_windowed_gaussian_sees_its_training_rows_once() -> None:
    """The likelihood path streams the test rows on from the fitted history; streaming the
    training rows through it again would put them in the window twice."""
    case = _case()
    spec = Likelihood(short=1)
    s = BaselineDetector("windowed_gaussian", CalibrateSection(), SimpleNamespace(likelihood=spec))(
        case
    )
    x = np.concatenate([case.train, case.test])[:, 0].astype(np.float64)
    # the test rows' |z| against all earlier rows (the window of 6400 never fills here,
    # so the statistics are refitted on every row)
    cum, cum2, n = np.cumsum(x), np.cumsum(x * x), np.arange(1, x.size + 1)
    mean, std = cum / n, np.sqrt(np.maximum(cum2 / n - (cum / n) ** 2, 0))
    z_test = np.abs(x[500:] - mean[499:-1]) / std[499:-1]
    in_sample = WindowedGaussianBaseline().fit(case.train).score(case.train)
    want = likelihood_scores(np.concatenate([in_sample, z_test]), spec)[500:]
    np.testing.assert_allclose(s.score, want, rtol=1e-4, atol=1e-6)
