"""Maximum-likelihood fit of a generalised Pareto distribution (GPD) to tail excesses.

The tail model of peaks over threshold: :func:`anomae.calibrate.calibrate_pot` fits it to
window scores above a high quantile, :mod:`anomae.calibrate_events` to the peaks of
declustered excursions.

    >>> import numpy as np
    >>> y = np.random.default_rng(0).exponential(2.0, 20_000)   # a GPD with shape 0
    >>> shape, scale = fit_gpd(y)
    >>> abs(shape) < 0.02, round(scale, 1)
    (True, 2.0)
"""

from __future__ import annotations

import numpy as np

# fewer tail peaks than this cannot be fitted (POT and events calibration refuse them)
MIN_PEAKS = 10


def _profile_loglik(theta: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean GPD log-likelihood of excesses ``y``, maximised over the shape for each
    ``theta = shape / scale`` (Grimshaw 1993): the best shape is ``mean(log1p(theta y))``."""
    out = np.empty(theta.size)
    rows = max(1, 4_000_000 // y.size)
    for i in range(0, theta.size, rows):
        th = theta[i : i + rows, None]
        g = np.log1p(th * y).mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = -np.log(g / th[:, 0]) - 1.0 - g
        ll = np.where(th[:, 0] == 0, -np.log(y.mean()) - 1.0, ll)
        # shape < -1: the likelihood grows without bound at the end point; not a fit
        out[i : i + rows] = np.where(g > -1.0, ll, -np.inf)
    return out


def fit_gpd(y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (shape, scale) of a generalised Pareto distribution for ``y > 0``.

    SPOT finds roots of the profile likelihood's derivative in Grimshaw's brackets; a coarse
    grid over the scale-free ``u = theta * max(y)`` followed by zooming in on the best point
    gives the same optimum and cannot miss a root. ``u`` in (-1, 0) are bounded tails, 0 is
    the exponential, ``u > 0`` heavy tails."""
    y_max = float(y.max())
    u = np.concatenate(
        [-1.0 + np.geomspace(1e-6, 1.0, 60)[:-1], [0.0], np.geomspace(1e-6, 1e6, 121)]
    )
    for _ in range(5):
        ll = _profile_loglik(u / y_max, y)
        i = int(np.argmax(ll))
        best = u[i]
        u = np.linspace(u[max(i - 1, 0)], u[min(i + 1, u.size - 1)], 33)
    theta = best / y_max
    if theta == 0:
        return 0.0, float(y.mean())
    shape = float(np.log1p(theta * y).mean())
    return shape, float(shape / theta)
