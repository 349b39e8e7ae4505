"""A model's threshold and alarm policy from held-out row blocks (torch-free): the sampling
interval, the threshold a [calibrate] section sets, the post-rule it chose, and the card
that carries both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from anomae.calibrate import CalibrationError, calibrate, calibrate_events, calibrate_features
from anomae.calibrate_settings import CalibrateSection
from anomae.io import SeriesData
from anomae.pipeline import Pipeline
from anomae.spec import ModelCard, Threshold


def sampling_interval(series: list[SeriesData]) -> float | None:
    """Median seconds between rows over all series (None when it cannot be told)."""
    diffs = [np.diff(s.timestamps) for s in series if s.timestamps.size > 1]
    if not diffs:
        return None
    return float(np.median(np.concatenate(diffs))) / 1e9


def calibrate_blocks(
    det: Any,
    blocks: list[np.ndarray],
    section: CalibrateSection,
    interval_s: float | None = None,
    labels: list[np.ndarray | None] | None = None,
    rule: Any = None,
    names: list[str] | None = None,
) -> Threshold:
    """Threshold for ``det`` from held-out row blocks, as ``section`` says (torch-free).

    ``names`` (the series of each block) is needed by, and only used with,
    ``section.per_series``: a threshold per series besides the fleet's.

    ``labels`` (row labels per block) are needed by, and only by, the ``f1`` method.
    ``rule`` (a :class:`~anomae.events.PostRule`, default ``min_windows=3``) is the
    post-rule method ``events`` calibrates for; the threshold's ``post_rule`` says which
    one it chose (:func:`chosen_rule`)."""
    from anomae.score import window_labels
    from anomae.windows import window_ends

    params: dict[str, Any] = section.params()
    if section.method == "fpr":
        params.setdefault("stride", det.card.window.stride)
        if "alarms_per_day" in params and "interval_s" not in params:
            if interval_s is None:
                raise CalibrationError(
                    "fpr with alarms_per_day needs the sampling interval: set interval_s"
                )
            params["interval_s"] = interval_s
    if section.method == "events":
        params["rule"] = rule
        if "interval_s" not in params:
            if interval_s is None:
                raise CalibrationError(
                    "method 'events' counts false events per day and needs the sampling "
                    "interval: the calibration data has no usable timestamps; set interval_s "
                    "(seconds between rows)"
                )
            params["interval_s"] = interval_s
    if section.method == "f1":
        if labels is None or any(lb is None for lb in labels):
            raise CalibrationError(
                "method 'f1' needs labelled calibration data (a label column); without "
                "labels use a label-free method: quantile, pot, fpr, ksigma or mad"
            )
        spec = det.card.window
        params["labels"] = [
            window_labels(lb, window_ends(b.shape[0], spec), spec.length)
            for b, lb in zip(blocks, labels, strict=True)
            if lb is not None
        ]
    if section.per_series and names is None:
        raise CalibrationError(
            "[calibrate] per_series needs the series name of each calibration block: pass "
            "names= (one per block) to calibrate_blocks"
        )
    series = names if section.per_series else None
    return calibrate_rows(
        det, blocks, section.method, per_feature=section.per_feature, series=series, **params
    )


def chosen_rule(threshold: Threshold, rule: Any) -> Any:
    """The post-rule ``threshold`` was calibrated for (method ``events``), else ``rule``."""
    from anomae.events import PostRule

    return PostRule(**threshold.post_rule) if threshold.post_rule else rule


def calibrate_card(
    det: Any,
    card: ModelCard,
    cal_rows: list[np.ndarray],
    pipe: Pipeline,
    interval_s: float | None,
    labels: list[np.ndarray | None] | None = None,
    names: list[str] | None = None,
) -> tuple[ModelCard, Any]:
    """``card`` with the threshold ``pipe`` calibrates for ``det`` on ``cal_rows`` (of the
    series ``names``, for per-series thresholds) and the alarm policy (the post-rule it
    chose, the likelihood); returns it and the post-rule."""
    from anomae.events import alarm_policy

    base = pipe.score.post_rule()
    threshold = calibrate_blocks(
        det, cal_rows, pipe.calibrate, interval_s, labels, rule=base, names=names
    )
    rule = chosen_rule(threshold, base)
    return replace(card.with_threshold(threshold), alarm=alarm_policy(rule, pipe.likelihood)), rule


def calibrate_trained(
    model_path: str | Path,
    card: ModelCard,
    cal_rows: list[np.ndarray],
    pipe: Pipeline,
    series: list[SeriesData],
    labels: list[np.ndarray | None] | None = None,
    names: list[str] | None = None,
) -> tuple[ModelCard, Any]:
    """:func:`calibrate_card` for the model just trained to ``model_path`` on ``series``:
    the sampling interval is theirs, and the calibration blocks are their held-out blocks
    (``names`` None) or other series' rows (``names`` given). Writes nothing."""
    from anomae.detector import Detector
    from anomae.holdout import holdout_blocks

    if names is None:
        names = holdout_blocks(pipe, series)[2]
    det = Detector.load(model_path)
    return calibrate_card(det, card, cal_rows, pipe, sampling_interval(series), labels, names)


def score_quantiles(th: Threshold, scored: list[Any], series: Any) -> dict[str, float]:
    """Quantiles 0.5/0.9/0.99 of the calibration windows' normalised scores (a block over
    its series' threshold): what the monitor's score drift is read against."""
    norm = np.concatenate(
        [sc.score / (th.value if series is None else th.for_series(series[i])) for i, sc in scored]
    )
    norm = norm[np.isfinite(norm)]
    return {str(q): float(np.quantile(norm, q)) for q in (0.5, 0.9, 0.99)} if norm.size else {}


def calibrate_rows(
    detector: Any,
    blocks: list[np.ndarray],
    method: str = "quantile",
    *,
    labels: list[np.ndarray] | None = None,
    per_feature: bool = False,
    series: Sequence[str] | None = None,
    **params: Any,
) -> Threshold:
    """Score held-out normal row blocks (``[rows, F]`` each) with an onnxruntime
    :class:`~anomae.detector.Detector` and calibrate on their window scores.

    ``labels`` (method ``f1`` only): one 0/1 array per block with one label per *window* of
    that block (window ``w`` ends at row ``w * stride + length - 1``). ``per_feature`` also
    calibrates each feature's error with the same method into ``Threshold.per_feature``;
    ``series`` (each block's series name) also a threshold per series
    (:mod:`anomae.calibrate_series`)."""
    spec = detector.card.window
    if labels is not None and len(labels) != len(blocks):
        raise CalibrationError(f"{len(labels)} label arrays for {len(blocks)} row blocks")
    scored = [(i, detector.score_series(b)) for i, b in enumerate(blocks) if b.shape[0] > 0]
    if sum(sc.score.size for _, sc in scored) == 0:
        raise CalibrationError(f"calibration data holds no complete window of {spec.length} rows")
    if labels is not None:
        for i, sc in scored:
            if np.asarray(labels[i]).size != sc.score.size:
                raise CalibrationError(
                    f"labels[{i}] has {np.asarray(labels[i]).size} values but block {i} has "
                    f"{sc.score.size} windows: give one label per window, not per row"
                )
        params["labels"] = np.concatenate([np.asarray(labels[i]).reshape(-1) for i, _ in scored])
    if method == "events":  # events are counted per series, so the series stay apart
        params.setdefault("stride", spec.stride)
        th = calibrate_events([sc.score for _, sc in scored], **params)
    else:
        th = calibrate(np.concatenate([sc.score for _, sc in scored]), method, **params)
    if series is not None:
        from anomae.calibrate_series import calibrate_per_series

        got = dict(scored)
        own = [got[i].score if i in got else np.empty(0) for i in range(len(blocks))]
        th = calibrate_per_series(th, series, own, method, params, labels)
    th = replace(th, score_quantiles=score_quantiles(th, scored, series))
    if per_feature:
        # events budget whole-model alarms; a feature's share is read against its 0.995 quantile
        fmethod, fparams = ("quantile", {}) if method == "events" else (method, params)
        fe = np.concatenate([sc.feature_error for _, sc in scored])
        th = replace(
            th, per_feature=calibrate_features(fe, detector.card.features, fmethod, **fparams)
        )
    return th


def recalibrate_card(det: Any, series: list[SeriesData], section: CalibrateSection) -> ModelCard:
    """``det``'s card with the threshold ``section`` sets on ``series`` (normal data; labelled
    for ``f1``), as ``anomae calibrate`` sets it: method ``events`` calibrates for the card's
    post-rule (else ``min_windows`` 3), and the card's alarm policy keeps the rule chosen."""
    from dataclasses import asdict

    from anomae.events import resolve_post_rule

    rule, _ = resolve_post_rule(det.card.alarm, {})
    th = calibrate_blocks(
        det,
        [s.values for s in series],
        section,
        interval_s=sampling_interval(series),
        labels=[s.labels for s in series],
        rule=rule,
        names=[s.name for s in series],
    )
    alarm = {**det.card.alarm, "post_rule": asdict(chosen_rule(th, rule))}
    return replace(det.card.with_threshold(th), alarm=alarm)
