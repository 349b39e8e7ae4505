"""Retraining: a candidate model trained on recent data the current model calls normal.

:func:`retrain` reads the data with the current model's columns and features, scores it
with the current model as ``anomae score`` does (same gap rule, post-rule and likelihood
policy), and drops the rows of every window it flags (``is_anomalous``) and the rows of
each of its events widened by one window length on both sides, so the candidate learns
only what the current model calls normal. The remaining contiguous stretches (at least one
window long) are trained on with the current model's settings as its card records them
(:func:`pipeline_of`: window, architecture, noise, sparsity, training loop), through the
same :func:`anomae.api.fit_series` as ``anomae.fit``; the threshold is calibrated with the
card's method and parameters for its post-rule. The candidate's card records its lineage
(``ModelCard.lineage``): the parent's sha256 and creation time, the span of the rows used
(Unix seconds), and how many rows were used and dropped. ``anomae monitor --shadow`` runs
such a candidate beside the current model and promotes it when it holds up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import polars as pl

from anomae.errors import AnomaeError
from anomae.io import SeriesData
from anomae.spec import DEFAULT_COLUMNS, ModelCard


class RetrainError(AnomaeError, ValueError):
    """The current model cannot be retrained on the data given; the message says why."""


@dataclass(frozen=True)
class RetrainOptions:
    """``epochs``/``seed``/``device`` replace the parent's (None: the parent's);
    ``holdout`` is the fraction of the normal rows held out for calibration; ``min_rows``
    the fewest normal rows to train on (None: 20 windows' worth)."""

    epochs: int | None = None
    seed: int | None = None
    device: str | None = None
    holdout: float = 0.2
    min_rows: int | None = None


@dataclass(frozen=True)
class NormalRows:
    """The rows the current model calls normal, as contiguous segments (each at least one
    window long), and how many rows were left out."""

    segments: list[SeriesData]
    rows: int
    rows_dropped: int
    rows_flagged: int  # dropped because a flagged window or an event covered them


def _calibrate_section(card: ModelCard, holdout: float) -> dict[str, Any]:
    from anomae.calibrate_settings import _METHOD_PARAMS

    th = card.threshold
    if th is None:
        raise RetrainError(
            "the current model has no threshold, so it cannot say which rows are normal; "
            "calibrate it first (`anomae calibrate MODEL DATA`)"
        )
    keys = [k for k in _METHOD_PARAMS.get(th.method, ()) if k not in ("interval_s", "min_windows")]
    section: dict[str, Any] = {k: th.params[k] for k in keys if th.params.get(k) is not None}
    if th.method == "events" and th.false_events_per_day is not None:
        section["false_events_per_day"] = th.false_events_per_day
    return {
        "method": th.method,
        "holdout": holdout,
        "per_feature": bool(th.per_feature),
        "per_series": bool(th.per_series or th.per_series_fallback),
        **section,
    }


def pipeline_of(card: ModelCard, opts: RetrainOptions = RetrainOptions()) -> Any:
    """The :class:`~anomae.pipeline.Pipeline` that trains a model like ``card``'s: its
    window, architecture, noise, sparsity, training loop, calibration and alarm policy."""
    from anomae.pipeline import parse_pipeline

    config = card.training.get("config")
    if not isinstance(config, dict) or not card.architecture.get("hidden"):
        raise RetrainError(
            "the current model's card records no training settings (architecture, "
            "training.config); retrain it with `anomae train` or `anomae run` instead"
        )
    center = card.architecture.get("center", False)
    window: dict[str, Any] = {
        "length": card.window.length,
        "stride": card.window.stride,
        "train_stride": int(card.training.get("train_stride", 1)),
    }
    if isinstance(center, list):
        window["center_features"] = center
    else:
        window["center"] = bool(center)
    train = {**config, "progress": False}
    for key in ("epochs", "seed", "device"):
        if getattr(opts, key) is not None:
            train[key] = getattr(opts, key)
    cols = card.columns
    doc: dict[str, Any] = {
        "data": {
            "train": ["<retrain data>"],
            **{k: cols.get(k) or "" for k in DEFAULT_COLUMNS},
            "features": list(card.features),
        },
        "window": window,
        "model": {
            k: v for k, v in card.architecture.items() if k not in ("layout", "center", "aggregate")
        },
        "weights": dict(card.training.get("weights") or {}),
        "noise": dict(card.training.get("noise") or {}),
        "sparsity": dict(card.training.get("sparsity") or {}),
        "train": train,
        "calibrate": _calibrate_section(card, opts.holdout),
        "score": {
            **(card.alarm.get("post_rule") or {}),
            "aggregate": card.architecture.get("aggregate", "mean"),
        },
    }
    if card.alarm.get("likelihood"):
        doc["likelihood"] = dict(card.alarm["likelihood"])
    return parse_pipeline(doc, "the current model's card")


def _dropped_mask(s: SeriesData, windows: pl.DataFrame, events: pl.DataFrame, length: int) -> Any:
    """Rows of ``s`` covered by a flagged window, or by an event widened by ``length`` rows."""
    n = s.values.shape[0]
    delta = np.zeros(n + 1, np.int64)
    ts = s.timestamps
    mine = windows.filter((pl.col("series") == s.name) & pl.col("is_anomaly"))
    ends = np.searchsorted(ts, mine["timestamp"].cast(pl.Int64).to_numpy())
    np.add.at(delta, np.maximum(ends - length + 1, 0), 1)
    np.add.at(delta, np.minimum(ends + 1, n), -1)
    ev = events.filter(pl.col("series") == s.name)
    first = np.searchsorted(ts, ev["start"].cast(pl.Int64).to_numpy()) - 2 * length + 1
    last = np.searchsorted(ts, ev["end"].cast(pl.Int64).to_numpy()) + length
    np.add.at(delta, np.maximum(first, 0), 1)
    np.add.at(delta, np.minimum(last + 1, n), -1)
    return np.cumsum(delta[:n]) > 0


def normal_rows(det: Any, series: Sequence[SeriesData]) -> NormalRows:
    """Score ``series`` with ``det`` (the batch path, with the card's alarm policy) and keep
    the rows it calls normal, as contiguous segments at least one window long."""
    from anomae.events import resolve_likelihood, resolve_post_rule
    from anomae.score import ScoreOptions, score_all

    rule, _ = resolve_post_rule(det.card.alarm, {})
    policy, _ = resolve_likelihood(det.card.alarm, None, {})
    opts = ScoreOptions(rule=rule, likelihood=policy, progress=False)
    windows, events, _ = score_all(det, list(series), opts)
    length = det.card.window.length
    segments: list[SeriesData] = []
    total = flagged = 0
    for s in series:
        n = s.values.shape[0]
        total += n
        drop = _dropped_mask(s, windows, events, length) if windows.height else np.zeros(n, bool)
        flagged += int(drop.sum())
        edges = np.flatnonzero(np.diff(np.concatenate([[1], drop.astype(np.int8), [1]])))
        for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
            if b - a >= length:
                lab = None if s.labels is None else s.labels[a:b]
                segments.append(
                    SeriesData(s.name, s.source, s.timestamps[a:b],
                               np.ascontiguousarray(s.values[a:b]), lab, s.row_offset[a:b])
                )  # fmt: skip
    used = sum(seg.values.shape[0] for seg in segments)
    return NormalRows(segments, used, total - used, flagged)


def lineage(parent: Any, normal: NormalRows) -> dict[str, Any]:
    """What a candidate's card records about where it came from."""
    first = min(int(s.timestamps[0]) for s in normal.segments)
    last = max(int(s.timestamps[-1]) for s in normal.segments)
    return {
        "parent_sha256": parent.sha256,
        "parent_created_at": parent.card.created_at,
        "data_span": [first / 1e9, last / 1e9],
        "rows": normal.rows,
        "rows_dropped": normal.rows_dropped,
    }


def retrain(
    model: str | Path,
    data: Sequence[str | Path | Any],
    out: str | Path,
    opts: RetrainOptions = RetrainOptions(),
) -> tuple[ModelCard, NormalRows]:
    """Train a candidate for ``model`` on the rows of ``data`` it calls normal and write it
    to ``out`` atomically (a complete file or none; nothing is written on an error).
    Returns the candidate's card and the rows used."""
    from anomae.api import fit_series
    from anomae.detector import Detector
    from anomae.io import TableSpec, read_series
    from anomae.modelfile import rewrite_card
    from anomae.train.step import require_torch

    require_torch()
    parent = Detector.load(model)
    pipe = pipeline_of(parent.card, opts)
    cols = parent.card.columns
    table = TableSpec(
        timestamp=cols["timestamp"] or "timestamp",
        series=cols["series"],
        label=cols["label"],
        timestamp_unit=cols["timestamp_unit"],
    )
    series, _ = read_series(list(data), table, parent.card.features)
    normal = normal_rows(parent, series)
    length = parent.card.window.length
    need = opts.min_rows if opts.min_rows is not None else 20 * length
    if normal.rows < max(need, 2 * length) or not normal.segments:
        raise RetrainError(
            f"only {normal.rows:,} of {normal.rows + normal.rows_dropped:,} rows are normal "
            f"by the current model ({normal.rows_flagged:,} in flagged windows or events, the "
            f"rest in stretches shorter than a window of {length}); need {need:,} "
            f"(--min-rows): give more recent data, or fix what the current model flags first"
        )
    candidate = fit_series(pipe, normal.segments, parent.card.features)
    card = replace(candidate.card, lineage=lineage(parent, normal))
    with TemporaryDirectory(prefix="anomae-retrain-") as tmp:
        path = Path(tmp) / "candidate.onnx"
        path.write_bytes(candidate.to_bytes())
        rewrite_card(path, card, out)
    return card, normal
