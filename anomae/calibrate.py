"""Thresholds from held-out *normal* data, no labels needed; written into the model card.

    >>> import numpy as np
    >>> t = calibrate_quantile(np.arange(1, 1001, dtype=float), q=0.99)
    >>> round(t.value, 2), t.method, t.expected_far
    (990.01, 'quantile', 0.01)

The normalised score ``score / threshold`` is above 1 for an anomaly. A quantile ``q``
promises a false-alarm rate of about ``1 - q`` per window on data like the calibration set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from anomae.spec import Threshold


class CalibrationError(ValueError):
    """The calibration data cannot support the requested threshold."""


def _clean(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise CalibrationError("no finite calibration scores (is the calibration data empty?)")
    return s


def calibrate_quantile(scores: np.ndarray, q: float = 0.995) -> Threshold:
    """Threshold at the ``q`` quantile of normal scores; expected false-alarm rate ``1 - q``."""
    if not 0.0 < q < 1.0:
        raise CalibrationError(f"quantile q must be in (0, 1), got {q}")
    s = _clean(scores)
    if s.size * (1.0 - q) < 1.0:
        raise CalibrationError(
            f"{s.size} calibration windows cannot resolve quantile {q}: at least "
            f"{int(np.ceil(1.0 / (1.0 - q)))} are needed; give more held-out normal data or "
            f"lower q"
        )
    value = float(np.quantile(s, q))
    if value <= 0:
        value = float(np.nextafter(0.0, 1.0))
    return Threshold(
        value=value,
        method="quantile",
        params={"q": q},
        n_calibration=int(s.size),
        expected_far=round(1.0 - q, 12),
    )


METHODS: dict[str, Callable[..., Threshold]] = {"quantile": calibrate_quantile}


def calibrate(scores: np.ndarray, method: str = "quantile", **params: Any) -> Threshold:
    """Dispatch to a calibration method by name (``anomae calibrate --method``)."""
    if method not in METHODS:
        raise CalibrationError(
            f"unknown calibration method {method!r}; choose from {sorted(METHODS)}"
        )
    try:
        return METHODS[method](scores, **params)
    except TypeError as exc:
        raise CalibrationError(f"bad parameters for method {method!r}: {exc}") from exc


def calibrate_rows(
    detector: Any, blocks: list[np.ndarray], method: str = "quantile", **params: Any
) -> Threshold:
    """Score held-out normal row blocks (``[rows, F]`` each) with an onnxruntime
    :class:`~anomae.detector.Detector` and calibrate on their window scores."""
    scores = [detector.score_series(b).score for b in blocks if b.shape[0] > 0]
    if not scores or sum(s.size for s in scores) == 0:
        raise CalibrationError(
            f"calibration data holds no complete window of {detector.card.window.length} rows"
        )
    return calibrate(np.concatenate(scores), method, **params)
