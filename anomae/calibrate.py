"""Thresholds from held-out *normal* data, no labels needed; written into the model card.

    >>> import numpy as np
    >>> t = calibrate_quantile(np.arange(1, 1001, dtype=float), q=0.99)
    >>> round(t.value, 2), t.method, t.expected_far
    (990.01, 'quantile', 0.01)
    >>> scores = np.random.default_rng(0).exponential(1.0, 100_000)
    >>> t = calibrate(scores, "pot", q=1e-3)      # the exact quantile is -log(1e-3) = 6.91
    >>> round(t.value, 1), t.expected_far
    (7.0, 0.001)
    >>> t = calibrate(scores, "fpr", alarms_per_day=2, interval_s=60)  # 1 window in 720
    >>> lo, hi = t.expected_far_ci
    >>> lo < t.expected_far < hi
    True

The normalised score ``score / threshold`` is above 1 for an anomaly. Methods, by name in
:data:`METHODS` (``calibrate(scores, method, **params)``):

* ``quantile(q=0.995)``: the empirical ``q`` quantile; promises a false-alarm rate ``1 - q``.
* ``ksigma(k=3.0)``: mean + k·std. ``mad(k=3.0)``: median + k·1.4826·MAD (robust to a few
  anomalies left in the calibration data).
* ``pot(q=1e-3, init_quantile=0.98)``: peaks over threshold (SPOT, Siffer et al. KDD 2017):
  a generalised Pareto tail fitted above the ``init_quantile`` quantile, extrapolated to
  the rate ``q``, which may be rarer than the data can show empirically.
* ``fpr(rate=None, alarms_per_day=None, interval_s=None, stride=1)``: a target false-alarm
  rate per window, or alarming windows per day per series at one row per ``interval_s``
  seconds and one window per ``stride`` rows.
* ``f1(labels=...)``: with labelled validation data only, the point-wise F1-optimal threshold.
* ``events(false_events_per_day=1/7, interval_s=..., rule=PostRule(3), min_windows=())``:
  the default of ``anomae train``/``calibrate`` and of pipelines; the threshold and post-rule
  for a budget of false *events* per series per day (:mod:`anomae.calibrate_events`).

Every method takes ``block=64`` and records ``expected_far`` (the method's design rate, else
the exceedance fraction of normal calibration windows) and ``expected_far_ci``, a 95 %
moving-block bootstrap interval of that exceedance fraction. Windows of stride 1 overlap, so
their scores and exceedances come in runs; resampling single windows would treat a run as
independent evidence and give intervals far too narrow, so whole blocks of ``block``
consecutive windows are resampled (200 resamples, fixed seed). The interval is of the
*empirical* fraction: a POT threshold beyond everything seen gets ``(0.0, 0.0)``, which says
the data cannot check the extrapolation. ``block=0`` skips the bootstrap.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from anomae.bootstrap import _far_ci
from anomae.errors import AnomaeError
from anomae.gpd import fit_gpd
from anomae.spec import Threshold


class CalibrationError(AnomaeError, ValueError):
    """The calibration data cannot support the requested threshold."""


MIN_PEAKS = 10
_LABEL_FREE = "events, quantile, pot, fpr, ksigma or mad"


def _clean(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = s[np.isfinite(s)]
    if s.size == 0:
        raise CalibrationError("no finite calibration scores (is the calibration data empty?)")
    return s


def _threshold(
    s: np.ndarray,
    value: float,
    method: str,
    params: dict[str, Any],
    block: int,
    design_far: float | None = None,
    normal: np.ndarray | None = None,
) -> Threshold:
    """The common ending: a positive value, its exceedance on ``normal`` (default all of
    ``s``) and the bootstrap interval of that exceedance."""
    if value <= 0:  # all-zero scores: the smallest threshold any positive score exceeds
        value = float(np.nextafter(0.0, 1.0))
    exceed = (s if normal is None else normal) > value
    far = float(exceed.mean()) if design_far is None else round(design_far, 12)
    return Threshold(
        value=float(value),
        method=method,
        params=params,
        n_calibration=int(s.size),
        expected_far=far,
        expected_far_ci=_far_ci(exceed, block),
    )


def _quantile_value(s: np.ndarray, q: float, fix: str) -> float:
    """The empirical ``q`` quantile, refused when fewer than one window would exceed it."""
    tail = 1.0 - q
    if s.size * tail < 1.0:
        need = math.ceil(round(1.0 / tail, 6))  # 1 - 0.999 is 0.0010000000000000009
        raise CalibrationError(
            f"{s.size} calibration windows cannot resolve quantile {q} (a false-alarm rate of "
            f"{tail:.3g}): at least {need} are needed; give more held-out normal data or {fix}"
        )
    return float(np.quantile(s, q))


def calibrate_quantile(scores: np.ndarray, q: float = 0.995, *, block: int = 64) -> Threshold:
    """Threshold at the ``q`` quantile of normal scores; expected false-alarm rate ``1 - q``."""
    if not 0.0 < q < 1.0:
        raise CalibrationError(f"quantile q must be in (0, 1), got {q}")
    s = _clean(scores)
    return _threshold(s, _quantile_value(s, q, "lower q"), "quantile", {"q": q}, block, 1.0 - q)


def calibrate_ksigma(scores: np.ndarray, k: float = 3.0, *, block: int = 64) -> Threshold:
    """``mean + k * std`` of normal scores. Skewed scores (squared errors are) make the
    false-alarm rate of a given ``k`` depend on the distribution; it is measured, not promised."""
    if not (math.isfinite(k) and k >= 0):
        raise CalibrationError(f"ksigma k must be finite and >= 0, got {k}")
    s = _clean(scores)
    return _threshold(s, float(s.mean() + k * s.std()), "ksigma", {"k": k}, block)


def calibrate_mad(scores: np.ndarray, k: float = 3.0, *, block: int = 64) -> Threshold:
    """``median + k * 1.4826 * MAD``: k-sigma with robust estimates (1.4826 makes the MAD a
    standard deviation for normal data), so a few anomalies in the data barely move it."""
    if not (math.isfinite(k) and k >= 0):
        raise CalibrationError(f"mad k must be finite and >= 0, got {k}")
    s = _clean(scores)
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med)))
    if mad == 0:
        raise CalibrationError(
            f"the median absolute deviation is 0 (half the scores equal {med:.6g}); use "
            f"method 'quantile' or 'pot' for scores this discrete"
        )
    return _threshold(s, med + k * 1.4826 * mad, "mad", {"k": k}, block)


def calibrate_pot(
    scores: np.ndarray, q: float = 1e-3, init_quantile: float = 0.98, *, block: int = 64
) -> Threshold:
    """Peaks over threshold: a GPD fitted to the excesses over ``t``, the ``init_quantile``
    quantile, then ``z = t + sigma/gamma * ((q n / N_t)^-gamma - 1)`` for ``n`` scores of
    which ``N_t`` exceed ``t``; expected false-alarm rate ``q``. The fitted ``t``, ``gamma``,
    ``sigma`` and ``n_peaks`` are recorded in the threshold's ``params``."""
    if not 0.0 < q < 1.0:
        raise CalibrationError(f"pot q must be in (0, 1), got {q}")
    if not 0.0 < init_quantile < 1.0:
        raise CalibrationError(f"pot init_quantile must be in (0, 1), got {init_quantile}")
    s = _clean(scores)
    t = float(np.quantile(s, init_quantile))
    y = s[s > t] - t
    if y.size < MIN_PEAKS:
        need = math.ceil(round(MIN_PEAKS / (1.0 - init_quantile), 6))
        fix = f"give at least {need:,} calibration windows ({max(need - s.size, 0):,} more)"
        if s.size > MIN_PEAKS:
            fix += f" or lower init_quantile to {math.floor((1 - MIN_PEAKS / s.size) * 1e4) / 1e4}"
        raise CalibrationError(
            f"POT found {y.size} peaks above the {init_quantile} quantile of {s.size:,} "
            f"windows but needs at least {MIN_PEAKS} to fit a tail: {fix}"
        )
    ratio = q * s.size / y.size
    if ratio >= 1.0:
        raise CalibrationError(
            f"pot q={q} is not rarer than the {y.size / s.size:.4g} of windows above "
            f"init_quantile {init_quantile}: lower init_quantile below {1 - q} or use "
            f"method 'quantile' with q={1 - q}"
        )
    gamma, sigma = fit_gpd(y)
    if abs(gamma) < 1e-9:
        z = t - sigma * math.log(ratio)
    else:
        z = t + sigma / gamma * (ratio**-gamma - 1.0)
    params = {
        "q": q,
        "init_quantile": init_quantile,
        "t": t,
        "gamma": gamma,
        "sigma": sigma,
        "n_peaks": int(y.size),
    }
    return _threshold(s, z, "pot", params, block, q)


def calibrate_fpr(
    scores: np.ndarray,
    rate: float | None = None,
    alarms_per_day: float | None = None,
    interval_s: float | None = None,
    stride: int = 1,
    *,
    block: int = 64,
) -> Threshold:
    """Threshold for a target false-alarm ``rate`` per window, or for ``alarms_per_day``
    alarming windows per day per series, one row every ``interval_s`` seconds and one window
    every ``stride`` rows: ``rate = alarms_per_day * interval_s * stride / 86400``.

    Alarming *windows*, not events: stride-1 windows alarm in runs, and the post-rules
    (minimum duration, cool-down) merge a run into one event, so events are fewer."""
    if (rate is None) == (alarms_per_day is None):
        raise CalibrationError(
            "fpr needs exactly one of rate= (false alarms per window) or alarms_per_day= "
            "(with interval_s=, the seconds between rows)"
        )
    params: dict[str, Any]
    if alarms_per_day is not None:
        if interval_s is None or not interval_s > 0:
            raise CalibrationError(
                f"fpr alarms_per_day needs interval_s > 0 (seconds between rows), got {interval_s}"
            )
        if int(stride) != stride or stride < 1:
            raise CalibrationError(f"fpr stride must be an integer >= 1, got {stride}")
        rate = alarms_per_day * interval_s * stride / 86400.0
        params = {"alarms_per_day": alarms_per_day, "interval_s": interval_s, "stride": stride}
    elif interval_s is not None:
        raise CalibrationError("fpr interval_s only applies with alarms_per_day")
    else:
        params = {}
    assert rate is not None
    if not 0.0 < rate < 1.0:
        raise CalibrationError(f"fpr rate per window must be in (0, 1), got {rate:.6g}")
    params["rate"] = rate
    s = _clean(scores)
    value = _quantile_value(s, 1.0 - rate, "allow more false alarms")
    return _threshold(s, value, "fpr", params, block, rate)


def calibrate_f1(scores: np.ndarray, *, labels: np.ndarray, block: int = 64) -> Threshold:
    """The threshold that maximises point-wise F1 against ``labels`` (1 = anomalous window,
    aligned with ``scores``), midway between the two scores it separates.

    The only method that needs labels. ``expected_far`` and its interval are measured on the
    normal (label 0) windows; the achieved ``f1`` is recorded in ``params``."""
    raw = np.asarray(scores, dtype=np.float64).reshape(-1)
    lab = np.asarray(labels).reshape(-1)
    if lab.shape != raw.shape:
        raise CalibrationError(
            f"f1 needs one label per score: {lab.size} labels, {raw.size} scores"
        )
    if not np.isin(lab, (0, 1)).all():
        raise CalibrationError("f1 labels must be 0 (normal) or 1 (anomalous)")
    keep = np.isfinite(raw)
    s, y = _clean(raw), lab[keep].astype(bool)
    n_pos = int(y.sum())
    if n_pos in (0, s.size):
        raise CalibrationError(
            f"the labels mark {'no' if n_pos == 0 else 'every'} scored window as anomalous, so "
            f"there is no F1 to optimise; use a label-free method ({_LABEL_FREE}) instead"
        )
    order = np.argsort(-s, kind="stable")
    ss, tp = s[order], np.cumsum(y[order])
    cut = np.r_[ss[1:] != ss[:-1], True]  # predict "anomalous" for whole runs of equal scores
    vals, tp = ss[cut], tp[cut]
    fp = np.flatnonzero(cut) + 1 - tp
    f1 = 2.0 * tp / (tp + fp + n_pos)
    i = int(np.argmax(f1))  # the first maximum: the highest threshold, the fewest alarms
    upper = float(vals[i])
    lower = float(vals[i + 1]) if i + 1 < vals.size else 0.5 * upper
    value = lower + 0.5 * (upper - lower)
    if value >= upper:  # adjacent floats: the midpoint rounds up
        value = lower
    params = {"f1": float(f1[i]), "n_anomalous": n_pos}
    return _threshold(s, value, "f1", params, block, normal=s[~y])


def calibrate_events(scores: np.ndarray | list[np.ndarray], **params: Any) -> Threshold:
    """Method ``events``: ``scores`` is one series' window scores or a list of them (see
    :func:`anomae.calibrate_events.calibrate_events`)."""
    from anomae.calibrate_events import calibrate_events as by_events

    return by_events(scores, **params)


METHODS: dict[str, Callable[..., Threshold]] = {
    "quantile": calibrate_quantile,
    "ksigma": calibrate_ksigma,
    "mad": calibrate_mad,
    "pot": calibrate_pot,
    "fpr": calibrate_fpr,
    "f1": calibrate_f1,
    "events": calibrate_events,
}


def calibrate(scores: np.ndarray, method: str = "quantile", **params: Any) -> Threshold:
    """Dispatch to a calibration method by name (``anomae calibrate --method``)."""
    if method not in METHODS:
        raise CalibrationError(
            f"unknown calibration method {method!r}; choose from {sorted(METHODS)}"
        )
    fn = METHODS[method]
    if "labels" in params and method != "f1":
        raise CalibrationError(
            f"method {method!r} takes no labels (calibration is on normal data); only 'f1' "
            f"uses labelled data"
        )
    try:
        return fn(scores, **params)
    except TypeError as exc:
        names = [p for p in inspect.signature(fn).parameters if p != "scores"]
        raise CalibrationError(
            f"bad parameters for method {method!r}: {exc}; it takes {', '.join(names)}"
        ) from exc


def calibrate_features(
    feature_errors: np.ndarray, features: Sequence[str], method: str = "quantile", **params: Any
) -> dict[str, float]:
    """Per-feature thresholds: ``method`` applied to each column of ``feature_errors``
    ``[n, F]``, keyed by feature name, for :attr:`Threshold.per_feature`. No bootstrap unless
    ``block`` is given: only the values are kept."""
    fe = np.asarray(feature_errors, dtype=np.float64)
    if fe.ndim != 2 or fe.shape[1] != len(features):
        raise CalibrationError(
            f"feature_errors must be [n, {len(features)}] for features {list(features)}, "
            f"got shape {fe.shape}"
        )
    params.setdefault("block", 0)
    out = {}
    for j, name in enumerate(features):
        try:
            out[str(name)] = calibrate(fe[:, j], method, **params).value
        except CalibrationError as exc:
            raise CalibrationError(f"feature {name!r}: {exc}") from exc
    return out


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
    if per_feature:
        # events budget whole-model alarms; a feature's share is read against its 0.995 quantile
        fmethod, fparams = ("quantile", {}) if method == "events" else (method, params)
        fe = np.concatenate([sc.feature_error for _, sc in scored])
        th = replace(
            th, per_feature=calibrate_features(fe, detector.card.features, fmethod, **fparams)
        )
    return th
