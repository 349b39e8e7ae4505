"""Simple detectors to run in the same harness as the autoencoder, for honest comparisons.

Each baseline is fitted on training rows and scores test rows, one score per row; a higher
score is more anomalous. Missing cells (NaN) are ignored: a row is scored on the features it
has, and a row with nothing observed scores NaN. Settings go in the constructor and learned
state gets a trailing underscore, as in scikit-learn.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=(500, 1)) @ np.ones((1, 3))   # three copies of one signal
    >>> pca = PCABaseline(n_components=1).fit(train)
    >>> normal, broken = pca.score(np.array([[1.0, 1.0, 1.0], [1.0, -1.0, 1.0]]))
    >>> bool(normal < 1e-6 < broken)
    True
    >>> KSigmaBaseline().fit(np.array([[0.0], [2.0]])).score(np.array([[3.0], [np.nan]]))
    array([ 2., nan])
    >>> AllAnomalousBaseline().fit(train).score(train[:2])
    array([1., 1.])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "BASELINES",
    "AllAnomalousBaseline",
    "Baseline",
    "KSigmaBaseline",
    "PCABaseline",
    "RandomBaseline",
    "WindowedGaussianBaseline",
]


class Baseline:
    """The contract: ``fit(train [rows, F]) -> self``, ``score(test [rows, F]) -> [rows]``."""

    n_features_: int

    def fit(self, train: np.ndarray) -> Baseline:
        self.n_features_ = _rows(train, "train").shape[1]
        return self

    def score(self, test: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check(self, test: np.ndarray) -> np.ndarray:
        if not hasattr(self, "n_features_"):
            raise RuntimeError(f"{type(self).__name__}: call fit() before score()")
        x = _rows(test, "test")
        if x.shape[1] != self.n_features_:
            raise ValueError(f"test has {x.shape[1]} features, fitted on {self.n_features_}")
        return x

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({settings})"


class KSigmaBaseline(Baseline):
    """Largest per-feature z-score ``|x - mean| / std`` against the training rows.

    A feature constant in training keeps a scale of 1, so it scores in raw units; a feature
    never observed in training is ignored.
    """

    def fit(self, train: np.ndarray) -> KSigmaBaseline:
        super().fit(train)
        self.mean_, self.scale_ = _moments(_rows(train, "train"))
        return self

    def score(self, test: np.ndarray) -> np.ndarray:
        z = np.abs(self._check(test) - self.mean_) / self.scale_
        out = np.full(z.shape[0], np.nan)
        seen = ~np.isnan(z).all(axis=1)
        out[seen] = np.nanmax(z[seen], axis=1)
        return out


class PCABaseline(Baseline):
    """Reconstruction error of standardised rows (or windows of rows) through a PCA subspace.

    ``n_components`` is a count (an int), or the fraction of training variance to keep (a
    float: ``0.95``; ``1.0`` keeps every component, so only off-subspace error remains).
    With ``window > 1`` each window of ``window`` consecutive rows is flattened into one
    vector; a row's score is that of the window ending there, and the first ``window - 1``
    rows take the first window's score. Missing cells are set to the training mean (zero
    after standardising) before projection and left out of the error, which is the mean
    squared residual over the observed cells. A single feature with ``window=1`` has nothing
    to reconstruct from (all scores 0): give univariate series such as NAB a window.
    """

    def __init__(self, n_components: float | int = 0.95, window: int = 1) -> None:
        self.n_components = n_components
        self.window = window

    def fit(self, train: np.ndarray) -> PCABaseline:
        super().fit(train)
        x = _rows(train, "train")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        n = self.n_components
        if (isinstance(n, float) and not 0 < n <= 1) or (isinstance(n, int) and n < 0):
            raise ValueError(f"n_components must be an int >= 0 or a fraction in (0, 1], got {n}")
        self.mean_, self.scale_ = _moments(x)
        z, _ = self._windows(x)
        self.center_ = z.mean(axis=0)
        _, s, vt = np.linalg.svd(z - self.center_, full_matrices=False)
        var = s**2
        total = var.sum()
        self.explained_variance_ratio_ = var / total if total > 0 else np.zeros_like(var)
        rank = int((s > s[0] * 1e-10).sum()) if s.size and s[0] > 0 else 0
        if isinstance(n, float):
            # Smallest k whose cumulative ratio reaches n; the tolerance keeps 1.0 from
            # asking for a component beyond the rank because of rounding.
            k = int(np.searchsorted(np.cumsum(self.explained_variance_ratio_), n - 1e-9) + 1)
        else:
            k = n
        self.n_components_ = min(k, rank)
        self.components_ = vt[: self.n_components_]
        return self

    def score(self, test: np.ndarray) -> np.ndarray:
        x = self._check(test)
        z, observed = self._windows(x)
        centred = z - self.center_
        residual = centred - (centred @ self.components_.T) @ self.components_
        count = observed.sum(axis=1)
        err = np.where(observed, residual**2, 0.0).sum(axis=1) / np.maximum(count, 1)
        err[count == 0] = np.nan
        return np.concatenate([np.full(self.window - 1, err[0]), err])

    def _windows(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised, mean-filled windows ``[n, window * F]`` and their observed mask."""
        if x.shape[0] < self.window:
            raise ValueError(f"{x.shape[0]} rows, fewer than the window of {self.window}")
        z = (x - self.mean_) / self.scale_
        observed = ~np.isnan(z)
        z = np.where(observed, z, 0.0)

        def flat(a: np.ndarray) -> np.ndarray:
            # sliding_window_view gives [n, F, window]; rows must stay in time order.
            return (
                sliding_window_view(a, self.window, axis=0)
                .transpose(0, 2, 1)
                .reshape(a.shape[0] - self.window + 1, -1)
            )

        return flat(z), flat(observed)


class WindowedGaussianBaseline(Baseline):
    """NAB's reference ``windowedGaussian`` detector: how far a value lies from a Gaussian of
    the values before it, the last ``window`` of them, refitted every ``step`` values.

    Causal, as NAB runs it: a row is scored against the statistics of earlier rows only. The
    training rows (their last ``window``) are the initial history of every :meth:`score`
    call, which then streams its rows through it: while the history holds fewer than
    ``window`` values each row joins it and the statistics are refitted at once; once full,
    rows collect in a buffer and every ``step`` rows the window slides by ``step``.

    NAB scores ``1 - Q(|z|)`` (the two-sided tail probability); this scores ``|z|`` itself,
    which ranks rows the same way and thresholds the same rows, but does not round to 1.0
    for every ``|z| > 8.3`` in floating point. Several features are scored per feature and
    combined by the **largest** ``|z|`` (as :class:`KSigmaBaseline`), so one feature far
    out is enough, and missing cells are left out of both the statistics and the maximum.
    A feature constant over its window gets a scale of 1 (raw units) instead of NAB's
    ``1e-6``, which would score any change of a constant command signal near 1e6.

        >>> train = np.array([[0.0], [2.0], [0.0], [2.0]])
        >>> WindowedGaussianBaseline(window=4, step=2).fit(train).score(np.array([[1.0], [5.0]]))
        array([0., 4.])
    """

    def __init__(self, window: int = 6400, step: int = 100) -> None:
        self.window = window
        self.step = step

    def fit(self, train: np.ndarray) -> WindowedGaussianBaseline:
        if self.window < 1 or not 1 <= self.step <= self.window:
            raise ValueError(
                f"need window >= 1 and 1 <= step <= window, got window={self.window}, "
                f"step={self.step}"
            )
        super().fit(train)
        self.history_ = _rows(train, "train")[-self.window :]
        return self

    def score(self, test: np.ndarray) -> np.ndarray:
        x = self._check(test)
        w, h = self.window, self.history_.shape[0]
        rows = np.concatenate([self.history_, x])
        # sums over rows ref-centred, so variance from the sums does not cancel away digits
        ref = np.nan_to_num(_moments(self.history_)[0])
        seen = ~np.isnan(rows)
        v = np.where(seen, rows - ref, 0.0)
        c0, c1, c2 = (
            np.vstack([np.zeros(x.shape[1]), np.cumsum(a, axis=0)]) for a in (seen, v, v * v)
        )
        g = np.arange(h, h + x.shape[0])  # each test row's index in `rows`
        # the window before row g: all earlier rows while it fills, then stepwise
        end = np.where(g <= w, g, w + (g - w) // self.step * self.step)
        start = np.maximum(end - w, 0)
        n = c0[end] - c0[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (c1[end] - c1[start]) / n
            var = np.maximum((c2[end] - c2[start]) / n - mean**2, 0.0)
            std = np.sqrt(var)
            scale = np.where(std > 1e-12 * np.maximum(np.abs(mean + ref), 1.0), std, 1.0)
            z = np.abs(x - ref - mean) / scale  # NaN where unobserved or no history
        out = np.full(x.shape[0], np.nan)
        any_z = ~np.isnan(z).all(axis=1)
        out[any_z] = np.nanmax(z[any_z], axis=1)
        return out


class RandomBaseline(Baseline):
    """Uniform random scores in [0, 1): the chance level of a ranking metric.

    The same ``seed`` and number of rows give the same scores on every call.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, test: np.ndarray) -> np.ndarray:
        n = int(self._check(test).shape[0])
        return np.random.default_rng(self.seed).random(n)


class AllAnomalousBaseline(Baseline):
    """Score 1.0 everywhere: any threshold below 1 flags every row.

    The reference a detector must beat on F1 where most test rows are anomalous (on SKAB's
    protocol flagging all scores F1 ≈ 0.70 with a false alarm rate of 100 %).
    """

    def score(self, test: np.ndarray) -> np.ndarray:
        return np.ones(self._check(test).shape[0])


BASELINES: dict[str, Callable[[], Baseline]] = {
    "pca": PCABaseline,
    "ksigma": KSigmaBaseline,
    "windowed_gaussian": WindowedGaussianBaseline,
    "random": RandomBaseline,
    "all_anomalous": AllAnomalousBaseline,
}


def _rows(x: np.ndarray, what: str) -> np.ndarray:
    out = np.asarray(x, dtype=np.float64)
    if out.ndim != 2 or out.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D [rows, features] array, got {out.shape}")
    if np.isinf(out).any():
        raise ValueError(f"{what} holds infinite values; use NaN for missing cells")
    return out


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and scale over observed cells; NaN mean where none was observed."""
    observed = ~np.isnan(x)
    count = observed.sum(axis=0)
    filled = np.where(observed, x, 0.0)
    mean = np.divide(filled.sum(axis=0), count, out=np.full(x.shape[1], np.nan), where=count > 0)
    dev = np.where(observed, x - mean, 0.0)
    std = np.sqrt(np.divide((dev**2).sum(axis=0), np.maximum(count, 1)))
    # A constant (or unseen) feature gets scale 1: dividing by ~0 would make noise infinite.
    return mean, np.where(std > 1e-12 * np.maximum(np.abs(np.nan_to_num(mean)), 1), std, 1.0)
