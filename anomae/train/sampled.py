"""Training on a dataset larger than memory: ``anomae train --max-windows N``.

:func:`train_dataset` counts the dataset's training windows from its plan (no feature
values read). When there are at most ``N`` and each series lies in one file, it reads the
data whole and trains exactly as without the limit (the same model: those rows are about
``N`` windows' worth). Otherwise
it draws the uniform sample of :func:`anomae.sample.sample_dataset` (``N`` windows, the
scaler over every fit row, a uniform sample of held-out segments holding about ``N`` rows
for calibration) and trains and calibrates on it (:func:`train_sampled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anomae.io import SeriesData
from anomae.pipeline import Pipeline
from anomae.sample import Sample, count_windows, sample_dataset
from anomae.spec import ModelCard
from anomae.train.step import FitData, scaler_of, train_on, train_step


def fit_data(sample: Sample, length: int) -> FitData:
    """The sample as :func:`~anomae.train.step.train_on` takes it."""
    scaler = scaler_of(sample.center, sample.std, sample.features)
    center = np.asarray(scaler.center, np.float32)
    scale = np.asarray(scaler.scale, np.float32)

    def finite(a: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in a.astype(np.float32)]

    extent: dict[str, Any] = {"feature_range": {"min": finite(sample.lo),
                                                "max": finite(sample.hi)}}  # fmt: skip
    if sample.data_span is not None:
        extent["data_span"] = list(sample.data_span)
    cal = [b for b in sample.cal_rows if b.shape[0] >= length]
    return FitData(
        windows=np.ascontiguousarray((sample.windows - center) / scale, dtype=np.float32),
        scaler=scaler,
        extent=extent,
        interval_s=sample.interval_s,
        fingerprint=sample.fingerprint,
        constant=~(sample.hi > sample.lo),
        weight_blocks=cal or list(sample.windows[:1000]),
        parity_rows=cal[0] if cal else sample.windows[0],
    )


def train_sampled(
    pipe: Pipeline, sample: Sample, features: tuple[str, ...], out: Path
) -> tuple[ModelCard, dict[str, Any]]:
    """Train on ``sample``, export to ``out`` and calibrate on its held-out segments."""
    from anomae.calibrate_model import calibrate_card
    from anomae.detector import Detector

    card, summary = train_on(pipe, fit_data(sample, pipe.window.length), features, out)
    if sample.cal_rows and pipe.calibrate.holdout > 0:
        card, _ = calibrate_card(Detector.load(out), card, sample.cal_rows, pipe,
                                 sample.interval_s, None, sample.cal_names)  # fmt: skip
    return card, summary


def train_dataset(
    pipe: Pipeline,
    inputs: Sequence[str | Path],
    features: tuple[str, ...],
    out: Path,
    max_windows: int,
    read: Any,
) -> tuple[ModelCard, dict[str, Any], list[np.ndarray], list[SeriesData] | None]:
    """Train on the dataset ``inputs`` with at most ``max_windows`` windows (module
    docstring). ``read()`` reads the data whole when it fits. Returns the card, the
    summary (``sampled``: windows in the dataset, when sampled), and, when read whole,
    the calibration blocks and series for :func:`anomae.calibrate_model.calibrate_trained`
    (calibrated here when sampled: no blocks, series None)."""
    w, c = pipe.window, pipe.calibrate
    table = pipe.data.table()
    total, spanning = count_windows(inputs, table, features, w.length, w.train_stride,
                                    c.holdout, c.holdout_spread)  # fmt: skip
    if total <= max_windows and not spanning:
        series = read()
        card, summary, cal_rows = train_step(pipe, series, features, out, calibrated=True)
        return card, summary, cal_rows, series
    seed = int(pipe.train.get("seed", 0))
    sample = sample_dataset(inputs, table, features, w.length, w.train_stride, max_windows,
                            c.holdout, c.holdout_spread, seed=seed)  # fmt: skip
    card, summary = train_sampled(pipe, sample, features, out)
    summary["sampled"] = total
    return card, summary, [], None
