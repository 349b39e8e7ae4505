"""What the autoencoder adds: simple baselines beside it in ``anomae run``'s report.

Each baseline of :data:`RUN_BASELINES` (:mod:`anomae.baselines`) goes through anomae's own
alarm path: it is fitted on the same training rows (the first ``1 - holdout`` of each
series), its threshold comes from the same ``[calibrate]`` method on the same held-out rows
(or ``[data] calibration`` files), its scores pass the same post-rules (or the same
``[likelihood]``), and it is judged on the same windows with the same metrics
(:func:`anomae.evaluate.evaluate_windows`). A baseline scores rows; the score of a window is
that of its last row, as the benchmark harness does.

A baseline is fitted per series, on that series' own training rows (a series without any
gets one fitted on all of them): the per-machine level and spread the autoencoder has to
learn across machines come free to it, so it is the stronger comparison. The threshold,
like anomae's, is one for all series, calibrated on their held-out scores pooled. The
windowed Gaussian's history, when it scores held-out or test rows, is the fitted rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from anomae.baselines import BASELINES, Baseline
from anomae.evaluate import evaluate_windows
from anomae.events import event_bounds, event_mask, is_anomalous
from anomae.io import SeriesData
from anomae.spec import WindowSpec
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
    from anomae.pipeline import post_rule, sampling_interval, split_holdout
    from anomae.score import window_labels

    spec = WindowSpec(pipe.window.length, pipe.window.stride)
    rule = post_rule(pipe.score)
    fit_rows, held = split_holdout(train, pipe.calibrate.holdout)
    own = {s.name: r for s, r in zip(train, fit_rows, strict=True) if r.shape[0]}
    if calibration:
        cal = [(s.name, s.values, s.labels) for s in calibration]
    else:
        cal = [
            (s.name, r, None if s.labels is None else s.labels[s.labels.size - r.shape[0] :])
            for s, r in zip(train, held, strict=True)
        ]
    params: dict[str, Any] = pipe.calibrate.params()
    if pipe.calibrate.method == "fpr":
        params.setdefault("stride", spec.stride)
        if "alarms_per_day" in params and "interval_s" not in params:
            params["interval_s"] = sampling_interval(train)
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
            scores = np.concatenate(
                [model(s).score(r)[e] for (s, r, _), e in zip(blocks, ends, strict=True)]
            )
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
                threshold = calibrate(scores, pipe.calibrate.method, **extra).value
            except (CalibrationError, ValueError) as exc:
                out[name] = {"error": f"calibration failed: {exc}"}
                continue
        frames = [_scored(s, model(s.name), spec, threshold, rule, pipe.likelihood) for s in test]
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
            pl.Series("timestamp", s.timestamps[ends]).cast(pl.Datetime("ns")),
            pl.Series("score", score),
            pl.Series("is_anomaly", is_anomalous(norm)),
            pl.Series("in_event", event_mask(ends.size, event_bounds(norm, rule))),
        ]
    )
