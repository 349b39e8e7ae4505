"""A PyOD-style estimator: :class:`AnomaeOD` with ``fit`` / ``decision_function`` /
``predict`` on numpy arrays, for code written against PyOD or scikit-learn.

``X`` is one series' rows in time order, ``[n_samples, n_features]`` (anomae scores
windows of consecutive rows, so rows are not independent samples). Row ``i``'s score is
that of the window ending at row ``i``; the first ``window - 1`` rows, which have no full
window, are scored over the rows they have (the model reads the missing ones as missing
values). ``decision_function`` also takes windows ``[n, window, n_features]``, one score
each. Higher is more anomalous; ``predict`` says 1 where ``score / threshold_ > 1``
(:func:`anomae.events.is_anomalous`). As in scikit-learn, the constructor only stores
settings; ``fit`` sets ``model_``, ``threshold_``, ``decision_scores_`` and ``labels_``.

    >>> import numpy as np
    >>> t = np.arange(1500)
    >>> X = np.stack([np.sin(t / 20), np.cos(t / 20), np.sin(t / 20) + np.cos(t / 20)], 1)
    >>> X += np.random.default_rng(0).normal(0, 0.05, X.shape)
    >>> od = AnomaeOD(epochs=3, contamination=0.01).fit(X)
    >>> od.decision_scores_.shape, bool(od.threshold_ > 0)
    ((1500,), True)
    >>> X_test = X[:200].copy()
    >>> X_test[100:110, 2] += 3.0                       # sensor 3 stops following 1 and 2
    >>> flagged = od.predict(X_test)
    >>> bool(flagged[102:110].all()), int(flagged.sum()) < 40   # from its third row on
    (True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from anomae.events import is_anomalous

__all__ = ["AnomaeOD"]


class AnomaeOD:
    """anomae's autoencoder behind PyOD's interface.

    ``window``, ``hidden``, ``noise``, ``epochs``, ``seed`` and ``recipe`` are
    :func:`anomae.fit`'s (None: the recipe's). The threshold is the ``1 - contamination``
    quantile of the scores of the ``holdout`` fraction of rows held out from training.
    ``interval_s`` is the time between rows (the model card's gap rule needs one)."""

    def __init__(
        self,
        window: int | None = None,
        hidden: tuple[int, ...] | None = None,
        noise: str | None = None,
        epochs: int | None = None,
        seed: int | None = None,
        recipe: str = "multivariate",
        contamination: float = 0.005,
        holdout: float = 0.2,
        interval_s: float = 1.0,
    ) -> None:
        self.window = window
        self.hidden = hidden
        self.noise = noise
        self.epochs = epochs
        self.seed = seed
        self.recipe = recipe
        self.contamination = contamination
        self.holdout = holdout
        self.interval_s = interval_s

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        names = ("window", "hidden", "noise", "epochs", "seed", "recipe", "contamination")
        return {n: getattr(self, n) for n in (*names, "holdout", "interval_s")}

    def set_params(self, **params: Any) -> AnomaeOD:
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"unknown parameter {name!r}; known: {list(self.get_params())}")
            setattr(self, name, value)
        return self

    def fit(self, X: Any, y: Any = None) -> AnomaeOD:
        """Train on rows ``X`` ``[n_samples, n_features]`` (normal, time order); ``y`` is
        ignored (unsupervised)."""
        from anomae.api import fit

        rows = _rows(X)
        if not 0.0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        q = 1.0 - self.contamination
        self.model_ = fit(
            self._frame(rows),
            recipe=self.recipe,
            window=self.window,
            hidden=self.hidden,
            noise=self.noise,
            epochs=self.epochs,
            seed=self.seed,
            holdout=self.holdout,
            calibration={"method": "quantile", "q": q},
        )
        assert self.model_.threshold is not None
        self.threshold_ = float(self.model_.threshold)
        self.decision_scores_ = self.decision_function(rows)
        self.labels_ = self.predict(rows)
        return self

    def _frame(self, rows: np.ndarray) -> Any:
        import polars as pl

        ns = (np.arange(rows.shape[0]) * self.interval_s * 1e9).astype(np.int64)
        cols = {"timestamp": pl.Series(ns).cast(pl.Datetime("ns", "UTC"))}
        cols |= {f"x{j}": pl.Series(rows[:, j]) for j in range(rows.shape[1])}
        return pl.DataFrame(cols)

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores (higher: more anomalous): one per row of ``X`` ``[n, n_features]``
        (the window ending there) or per window of ``X`` ``[n, window, n_features]``."""
        model = self._fitted()
        x = np.asarray(X, np.float32)
        n_f, length = len(model.features), model.window
        if x.ndim == 3 and x.shape[1:] == (length, n_f):
            score, _, _ = model.detector.run(np.ascontiguousarray(x))
            return np.asarray(score[:, -1], np.float64)
        rows = _rows(x)
        if rows.shape[1] != n_f:
            raise ValueError(
                f"X has {rows.shape[1]} features; the model was fitted on {n_f} (rows "
                f"[n, {n_f}] or windows [n, {length}, {n_f}])"
            )
        padded = np.concatenate([np.full((length - 1, n_f), np.nan, np.float32), rows])
        return model.score_rows(padded).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """1 where ``decision_function(X) / threshold_ > 1``, else 0."""
        scores = self.decision_function(X)
        return is_anomalous(scores / self.threshold_).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X)`` and the labels of its rows (``labels_``)."""
        return self.fit(X, y).labels_

    def _fitted(self) -> Any:
        model = getattr(self, "model_", None)
        if model is None:
            raise RuntimeError("this AnomaeOD is not fitted yet: call fit(X) first")
        return model


def _rows(X: Any) -> np.ndarray:
    rows = np.asarray(X, np.float32)
    if rows.ndim == 1:
        rows = rows[:, None]
    if rows.ndim != 2:
        raise ValueError(f"X must be rows [n_samples, n_features], got shape {rows.shape}")
    return rows
