"""One training step: the scaler and the network fitted on the non-held-out rows, exported
with its parity check to the one-file model (torch is imported only when
:func:`train_step` runs, so importing this module stays torch-free)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from anomae.calibrate_model import sampling_interval
from anomae.errors import PipelineError
from anomae.holdout import holdout_blocks
from anomae.io import SeriesData, fingerprint
from anomae.pipeline import Pipeline
from anomae.spec import ModelCard, Scaler, WindowSpec
from anomae.train.config import train_config


@dataclass
class FitData:
    """What the network is fitted on, from series in memory (:func:`train_step`) or from a
    dataset's sample (:mod:`anomae.train.sampled`)."""

    windows: np.ndarray  # [n, length, F] float32, scaled
    scaler: Scaler
    extent: dict[str, Any]  # data_extent's
    interval_s: float | None
    fingerprint: str
    constant: np.ndarray  # bool [F]: features constant in the fit rows
    weight_blocks: list[np.ndarray]  # raw rows the error weights are measured on
    parity_rows: np.ndarray  # raw rows the export's parity check scores


def fit_scaler(blocks: list[np.ndarray], features: tuple[str, ...]) -> Scaler:
    rows = np.concatenate(blocks) if blocks else np.empty((0, len(features)), np.float32)
    with np.errstate(all="ignore"):
        center = np.nanmean(rows.astype(np.float64), axis=0)
        scale = np.nanstd(rows.astype(np.float64), axis=0)
    return scaler_of(center, scale, features)


def scaler_of(center: np.ndarray, scale: np.ndarray, features: tuple[str, ...]) -> Scaler:
    """The scaler of the fit rows' mean and standard deviation (float64 ``[F]``)."""
    empty = [f for f, c in zip(features, center, strict=True) if not np.isfinite(c)]
    if empty:
        raise PipelineError(f"features {empty} have no observed value in the training data")
    # a constant sensor would divide by zero; 1.0 keeps its (zero) deviations unscaled
    scale = np.where(scale > 1e-12 * np.maximum(np.abs(center), 1.0), scale, 1.0)
    return Scaler(tuple(center.tolist()), tuple(scale.tolist()))


def require_torch() -> None:
    """Raise ``ModuleNotFoundError`` (``name="torch"``, which the CLI turns into the install
    hint) when torch is not installed, so a training command says so before reading data;
    torch itself is not imported here."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import polars

    import anomae

    out = {
        "anomae": anomae.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "polars": polars.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        pass
    return out


def data_extent(fit_rows: list[np.ndarray], series: list[SeriesData]) -> dict[str, Any]:
    """What the monitor's model health reads against: each feature's range in the rows
    fitted on, and the span of the training data (Unix seconds; absent without time)."""
    rows = np.concatenate(fit_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN feature: NaN
        lo, hi = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
    def finite(a: np.ndarray) -> list[float | None]:
        return [float(v) if np.isfinite(v) else None for v in a]

    out: dict[str, Any] = {"feature_range": {"min": finite(lo), "max": finite(hi)}}
    stamps = [s.timestamps for s in series if s.timestamps.size]
    if stamps:
        first = min(int(t[0]) for t in stamps)
        last = max(int(t[-1]) for t in stamps)
        out["data_span"] = [first / 1e9, last / 1e9]
    return out


def train_step(
    pipe: Pipeline,
    series: list[SeriesData],
    features: tuple[str, ...],
    out: Path,
    min_rows: int | None = None,
    calibrated: bool = False,
) -> tuple[ModelCard, dict[str, Any], list[np.ndarray]]:
    """Fit on the non-held-out rows, export to ``out`` with parity check.

    ``min_rows`` (default: the window length) is :func:`split_holdout`'s: tuning passes its
    largest window so every candidate holds out the same rows. ``calibrated``: the caller
    calibrates by ``pipe.calibrate`` next, so an ``events`` budget that the held-out blocks
    cannot resolve is refused now, before training (:func:`events_resolvable`).
    Returns (card as written, training summary, calibration row blocks)."""
    from anomae.train.weights import constant_features
    from anomae.windows import sliding_windows

    length = pipe.window.length
    fit_rows, cal_rows, _ = holdout_blocks(pipe, series, min_rows)
    if calibrated:
        events_resolvable(pipe, cal_rows, series)  # before minutes of training, not after
    scaler = fit_scaler(fit_rows, features)
    center = np.asarray(scaler.center, np.float32)
    scale = np.asarray(scaler.scale, np.float32)
    train_spec = WindowSpec(length, pipe.window.train_stride)
    windows = [sliding_windows((r - center) / scale, train_spec) for r in fit_rows]
    parity_src = next((b for b in cal_rows if b.shape[0] >= length), fit_rows[0])
    data = FitData(
        windows=np.ascontiguousarray(np.concatenate(windows), dtype=np.float32),
        scaler=scaler,
        extent=data_extent(fit_rows, series),
        interval_s=sampling_interval(series),
        fingerprint=fingerprint(series, features),
        constant=constant_features(fit_rows),
        weight_blocks=[b for b in cal_rows if b.shape[0] >= length] or fit_rows,
        parity_rows=parity_src,
    )
    card, summary = train_on(pipe, data, features, out)
    return card, summary, cal_rows


def events_resolvable(pipe: Pipeline, cal_rows: list[np.ndarray], series: list[SeriesData]) -> None:
    """Refuse (:class:`~anomae.calibrate.CalibrationError`) before training when the
    held-out blocks cannot resolve ``[calibrate] method = "events"``'s budget
    (:func:`anomae.calibrate_events.resolvable`), as calibration would after it."""
    section = pipe.calibrate
    if section.method != "events" or not cal_rows:  # (no holdout: calibrated in-sample)
        return
    interval = section.interval_s or sampling_interval(series)
    if not interval:
        return  # calibration says what it misses
    from anomae.calibrate_events import DEFAULT_FALSE_EVENTS_PER_DAY, resolvable

    spec = WindowSpec(pipe.window.length, pipe.window.stride)
    counts = [spec.count(b.shape[0]) for b in cal_rows]
    budget = section.false_events_per_day or DEFAULT_FALSE_EVENTS_PER_DAY
    resolvable(sum(counts), sum(c > 0 for c in counts), interval * spec.stride, budget)


def train_on(
    pipe: Pipeline, data: FitData, features: tuple[str, ...], out: Path
) -> tuple[ModelCard, dict[str, Any]]:
    """Fit the network on ``data``'s windows and export it to ``out`` with its parity check;
    return the card as written and the training summary."""
    from anomae.graph import center_mask
    from anomae.train.export import export_model
    from anomae.train.fit import fit
    from anomae.train.weights import error_weights, with_weights
    from anomae.windows import GAP_FACTOR

    cfg = train_config(pipe)
    length = pipe.window.length
    cfg = dataclasses.replace(cfg, arch=cfg.arch.sized(int((~data.constant).sum()), length))
    scaler = data.scaler
    windows_arr = data.windows
    try:
        mask = center_mask(features, pipe.window.centred)
    except ValueError as exc:
        raise PipelineError(f"{pipe.source} [window] center_features: {exc}") from exc
    if mask is not None:  # as the graph does: each window minus its per-feature mean
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN feature: stays NaN
            windows_arr -= mask * np.nanmean(windows_arr, axis=1, keepdims=True)
    if windows_arr.shape[0] < 2:
        raise PipelineError(
            f"training data gives {windows_arr.shape[0]} windows of {length} rows; need more "
            f"rows per series or a shorter window"
        )
    interval_s = data.interval_s or 0.0
    t0 = time.perf_counter()
    result = fit(windows_arr, cfg)
    seconds = time.perf_counter() - t0
    card = ModelCard(
        features=features,
        window=WindowSpec(length, pipe.window.stride),
        scaler=scaler,
        architecture={
            "layout": result.model.layout,
            "center": pipe.window.centred,
            "aggregate": pipe.score.aggregate,
            **dataclasses.asdict(cfg.arch),
        },
        training={
            "noise": dataclasses.asdict(cfg.noise),
            "sparsity": dataclasses.asdict(cfg.sparsity),
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "n_train_windows": result.n_train,
            "n_val_windows": result.n_val,
            "train_stride": pipe.window.train_stride,
            "weights": dataclasses.asdict(pipe.weights),  # for retrain: how errors count
            "device": result.device,
            **data.extent,
            "seconds": round(seconds, 2),
            "config": {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if k not in ("arch", "noise", "sparsity", "progress")
            },
        },
        data_fingerprint=data.fingerprint,
        versions=versions(),
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        # the gap rule batch and stream share (anomae.windows); none without timestamps
        interval_s=interval_s,
        max_gap_s=GAP_FACTOR * interval_s,
        columns=pipe.data.columns(),
    )
    ignore = data.constant if pipe.weights.constant == "ignore" else None
    try:
        weights = error_weights(
            result.model,
            card,
            data.weight_blocks,
            errors=pipe.weights.errors,
            ignore=ignore,
        )
    except ValueError as exc:
        raise PipelineError(f"{pipe.source} [weights]: {exc}; set constant = \"keep\"") from exc
    card = with_weights(card, weights)
    parity_rows = np.ascontiguousarray(data.parity_rows[:4096][None], dtype=np.float32)
    card = export_model(result.model, card, out, parity_rows)
    summary = {
        k: card.training[k]
        for k in (
            "epochs_run",
            "best_epoch",
            "best_val_loss",
            "n_train_windows",
            "seconds",
            "device",
        )
    }
    summary["ignored_features"] = [f for f, w in zip(features, weights, strict=True) if w == 0]
    return card, summary
