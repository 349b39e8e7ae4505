"""AnomaeOD, the PyOD-style estimator: settings only in the constructor, fitted state with
trailing underscores, rows or windows in, and predict = score / threshold_ > 1."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.adapters import AnomaeOD

pytest.importorskip("torch")


def _rows(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    x = np.stack([np.sin(t / 15), np.cos(t / 15), np.sin(t / 15) - np.cos(t / 15)], 1)
    return x + np.random.default_rng(seed).normal(0, 0.05, x.shape)


def test_constructor_stores_settings_only() -> None:
    od = AnomaeOD(window=16, epochs=2)
    assert od.get_params()["window"] == 16 and not hasattr(od, "threshold_")
    assert od.set_params(epochs=3).epochs == 3
    with pytest.raises(ValueError, match="unknown parameter 'windw'"):
        od.set_params(windw=3)
    with pytest.raises(RuntimeError, match="not fitted yet"):
        od.decision_function(_rows(10))


@pytest.mark.slow
def test_fit_decision_function_predict() -> None:
    X = _rows(1500)
    od = AnomaeOD(epochs=3, seed=1, contamination=0.01)
    labels = od.fit_predict(X)
    assert od.decision_scores_.shape == (1500,) and np.isfinite(od.decision_scores_).all()
    np.testing.assert_array_equal(labels, od.labels_)
    np.testing.assert_array_equal(od.labels_, (od.decision_scores_ / od.threshold_ > 1).astype(int))
    assert od.threshold_ == od.model_.threshold
    assert 0.0 < od.labels_.mean() < 0.1
    # row i's score is the window ending at row i: equal to scoring those windows directly
    length = od.model_.window
    windows = np.lib.stride_tricks.sliding_window_view(X, length, axis=0).transpose(0, 2, 1)
    np.testing.assert_allclose(
        od.decision_function(windows), od.decision_scores_[length - 1 :], rtol=1e-5
    )
    test = X[:300].copy()
    test[150:160, 2] += 3.0
    flagged = od.predict(test)
    # the recipe scores a window by its most surprising sensor: a window holding one or two
    # shifted rows of eight may stay under the threshold, every later one is flagged
    assert flagged[152:160].all() and flagged[150:160].sum() >= 8
    assert od.decision_function(test)[152:160].min() > od.decision_function(test)[:140].max()
    with pytest.raises(ValueError, match="X has 2 features; the model was fitted on 3"):
        od.decision_function(X[:, :2])
