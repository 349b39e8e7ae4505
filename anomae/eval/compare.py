"""What the autoencoder adds: simple baselines beside it in ``anomae run``'s report.

Each baseline of :data:`RUN_BASELINES` (:mod:`anomae.eval.baselines`) goes through anomae's own
alarm path: it is fitted on the same training rows (each series less its held-out blocks, as
:func:`anomae.holdout.split_holdout` cuts them), its threshold (and, for ``events``, its
post-rule) comes from the same ``[calibrate]`` method on the same held-out rows
(or ``[data] calibration`` files), its scores pass the same post-rules (or the same
``[likelihood]``), and it is judged on the same windows with the same metrics
(:func:`anomae.eval.evaluate.evaluate_windows`). A baseline scores rows; the score of a window is
that of its last row, as the benchmark harness does.

A baseline is fitted per series, on that series' own training rows (a series without any
gets one fitted on all of them): the per-machine level and spread the autoencoder has to
learn across machines come free to it, so it is the stronger comparison. The threshold,
like anomae's, is one for all series, calibrated on their held-out scores pooled. The
windowed Gaussian's history, when it scores held-out or test rows, is the fitted rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import polars as pl

from anomae.eval.baselines import BASELINES, Baseline
from anomae.eval.evaluate import evaluate_windows
from anomae.events import event_bounds, event_mask
from anomae.io import SeriesData
from anomae.spec import WindowSpec
from anomae.verdict import is_anomalous
from anomae.windows import window_ends

RUN_BASELINES = ("ksigma", "pca", "windowed_gaussian")
_ALL = object()  # the key of the model fitted on every series' training rows


def compare_baselines(
    pipe: Any,
    train: list[SeriesData],
    test: list[SeriesData],
    windows: pl.DataFrame,
    calibration: list[SeriesData] | None = None,
    kind_column: str | None = None,
    days: float | None = None,
    names: tuple[str, ...] = RUN_BASELINES,
) -> dict[str, dict[str, Any]]:
    """Per baseline name: its ``threshold`` (or ``error`` where calibration failed) and
    :func:`evaluate_windows` of its scores on anomae's scored ``windows`` (which bring the
    window labels and, in ``kind_column``, the anomaly kinds)."""
    from anomae.calibrate import CalibrationError, calibrate
    from anomae.calibrate_model import chosen_rule, sampling_interval
    from anomae.holdout import split_holdout
    from anomae.score import window_labels

    spec = WindowSpec(pipe.window.length, pipe.window.stride)
    rule = pipe.score.post_rule()
    own: dict[str, np.ndarray] = {}
    cal: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for s in train:  # the same held-out blocks as anomae's (spread over the span, or a tail)
        parts = [s]
        if s.labels is not None:  # labels ride along as a last column, cut with the rows
            parts = [dataclasses.replace(s, values=np.column_stack([s.values, s.labels]))]
        fit_blocks, held_blocks = split_holdout(
            parts, pipe.calibrate.holdout, pipe.calibrate.holdout_spread, min_rows=spec.length
        )
        width = s.values.shape[1]
        fit = [b[:, :width] for b in fit_blocks if b.shape[0]]
        if fit:
            own[s.name] = np.concatenate(fit)
        cal += [
            (s.name, b[:, :width], b[:, width].astype(np.int8) if s.labels is not None else None)
            for b in held_blocks
        ]
    fit_rows = list(own.values())
    if calibration:
        cal = [(s.name, s.values, s.labels) for s in calibration]
    params: dict[str, Any] = pipe.calibrate.params()
    if pipe.calibrate.method in ("fpr", "events"):
        params.setdefault("stride", spec.stride)
        if pipe.calibrate.method == "events" or "alarms_per_day" in params:
            params.setdefault("interval_s", sampling_interval(train))
    if pipe.calibrate.method == "events":
        params["rule"] = rule
    base = windows.select(["series", "timestamp", "label", *([kind_column] if kind_column else [])])
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        models: dict[Any, Baseline] = {}

        def model(series: str, name: str = name, models: dict[Any, Baseline] = models) -> Baseline:
            key = series if series in own else _ALL
            if key not in models:
                rows = own[series] if key is not _ALL else np.concatenate(fit_rows)
                models[key] = BASELINES[name]().fit(rows)
            return models[key]

        threshold = None
        if pipe.likelihood is None:
            blocks = [(s, r, lb) for s, r, lb in cal if r.shape[0] >= spec.length]
            if not blocks:
                out[name] = {"error": f"no calibration block of {spec.length} rows or more"}
                continue
            ends = [window_ends(r.shape[0], spec) for _, r, _ in blocks]
            per_block = [model(s).score(r)[e] for (s, r, _), e in zip(blocks, ends, strict=True)]
            # events are counted per series (block), the other methods pool the windows
            scores = per_block if pipe.calibrate.method == "events" else np.concatenate(per_block)
            extra = dict(params)
            if pipe.calibrate.method == "f1":
                labels = [lb for _, _, lb in blocks if lb is not None]
                if len(labels) < len(blocks):
                    out[name] = {"error": "method 'f1' needs labelled calibration rows"}
                    continue
                extra["labels"] = np.concatenate(
                    [window_labels(lb, e, spec.length) for lb, e in zip(labels, ends, strict=True)]
                )
            try:
                th = calibrate(scores, pipe.calibrate.method, **extra)  # type: ignore[arg-type]
            except (CalibrationError, ValueError) as exc:
                out[name] = {"error": f"calibration failed: {exc}"}
                continue
            threshold = th.value
            own_rule = chosen_rule(th, rule)
        else:
            own_rule = rule
        frames = [
            _scored(s, model(s.name), spec, threshold, own_rule, pipe.likelihood) for s in test
        ]
        scored = base.join(
            pl.concat(frames), on=["series", "timestamp"], how="left", maintain_order="left"
        )
        out[name] = {"threshold": threshold, **evaluate_windows(scored, kind_column, days)}
    return out


def _scored(
    s: SeriesData,
    model: Baseline,
    spec: WindowSpec,
    threshold: float | None,
    rule: Any,
    likelihood: Any,
) -> pl.DataFrame:
    """One test series' baseline scores at anomae's window ends, flagged and grouped into
    events as ``anomae score`` does."""
    from anomae.likelihood import likelihood_scores
    from anomae.score import window_interval

    ends = window_ends(s.values.shape[0], spec)
    score = model.score(s.values)[ends]
    if likelihood is not None:
        interval = window_interval(s.timestamps, spec) if likelihood.season_s else None
        norm = likelihood_scores(score, likelihood, interval)
    else:
        assert threshold is not None
        norm = score / threshold if threshold > 0 else np.where(score > 0, np.inf, 0.0)
    return pl.DataFrame(
        [
            pl.repeat(s.name, ends.size, dtype=pl.Utf8, eager=True).alias("series"),
            pl.Series("timestamp", s.timestamps[ends]).cast(pl.Datetime("ns", "UTC")),
            pl.Series("score", score),
            pl.Series("is_anomaly", is_anomalous(norm)),
            pl.Series("in_event", event_mask(ends.size, event_bounds(norm, rule))),
        ]
    )
