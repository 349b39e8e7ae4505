"""The whole-series batch scorer anomae had before scoring streamed (kept as the test
reference): each series scored at once, its events from :func:`anomae.events.event_bounds`.
The streaming scorer must give the same tables, sorted by series and timestamp."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import polars as pl

from anomae.detector import Detector, DetectorError, Scores
from anomae.events import event_bounds, event_mask
from anomae.io import SeriesData
from anomae.likelihood import likelihood_scores
from anomae.progress import Progress
from anomae.score import EVENT_SCHEMA, ScoreOptions, ScoreSummary, window_interval, window_labels
from anomae.spec import WindowSpec
from anomae.verdict import feature_ratios, is_anomalous, resolve_thresholds, top_features
from anomae.windows import gap_segments, segment_window_ends, window_ends


def _span_indices(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """All window indices inside the spans, concatenated, without a Python loop."""
    lengths = last - first + 1
    offsets = np.repeat(first - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(int(lengths.sum())) + offsets


def score_table(
    s: SeriesData,
    scores: Scores,
    window: WindowSpec,
    threshold: float | None,
    features: Sequence[str],
    opts: ScoreOptions = ScoreOptions(),
    ends: np.ndarray | None = None,
    feature_scale: np.ndarray | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The windows table and the events table of one scored series (``threshold`` is
    unused, and may be None, when ``opts.likelihood`` is set). ``ends``: the row of each
    window's end, as :func:`score_segments` returns them (None: windows straight across).
    ``feature_scale``: each feature's error threshold, which top features are ranked over
    (:meth:`anomae.verdict.Thresholds.feature_scale`; None: the raw errors)."""
    n = scores.score.shape[0]
    if ends is None:
        ends = window_ends(s.values.shape[0], window)
    ts = s.timestamps[ends]
    if opts.likelihood is not None:
        interval = window_interval(s.timestamps, window) if opts.likelihood.season_s else None
        norm = likelihood_scores(scores.score, opts.likelihood, interval).astype(np.float32)
    elif threshold is None:
        raise ValueError("score_table needs a threshold unless opts.likelihood is set")
    else:
        norm = scores.normalised(threshold)
    spans = event_bounds(norm, opts.rule)
    ratio = (
        scores.feature_error
        if feature_scale is None
        else feature_ratios(scores.feature_error, feature_scale)
    )
    top = top_features(ratio, opts.top_k)
    names = pl.Series(list(features), dtype=pl.Enum(list(features)))
    cols = [
        pl.repeat(s.name, n, dtype=pl.Utf8, eager=True).alias("series"),
        pl.Series("timestamp", ts).cast(pl.Datetime("ns", "UTC")),
        pl.Series("score", scores.score),
        pl.Series("score_normalised", norm),
        pl.Series("is_anomaly", is_anomalous(norm)),
        pl.Series("in_event", event_mask(n, spans)),
        pl.Series("coverage", scores.coverage),
    ]
    for j in range(top.shape[1]):
        cols.append(names.gather(top[:, j]).alias(f"top_feature_{j + 1}"))
    if s.labels is not None:
        cols.append(pl.Series("label", window_labels(s.labels, ends, window.length)))
    first, last = spans
    if first.size:
        # per event: peak window, and features ranked by their summed error over the event
        bounds = np.stack([first, last + 1], axis=1).ravel()
        if bounds[-1] == n:
            bounds = bounds[:-1]  # reduceat cannot take n; the last segment runs to the end
        peak_val = np.fmax.reduceat(norm, bounds)[::2]
        contrib = np.add.reduceat(ratio, bounds, axis=0)[::2]
        seg = np.repeat(np.arange(first.size), last - first + 1)
        idx = _span_indices(first, last)
        at_peak = norm[idx] == peak_val[seg]
        _, where = np.unique(seg[at_peak], return_index=True)
        peak = idx[at_peak][where]
        order = np.argsort(-contrib, axis=1, kind="stable")[:, : opts.top_k]
        event_top = [";".join(r) for r in np.asarray(features, dtype=object)[order]]
    else:
        peak, peak_val, event_top = first, np.empty(0), []
    events = pl.DataFrame(
        {
            "series": [s.name] * first.size,
            "start": ts[first],
            "end": ts[last],
            "peak": ts[peak],
            "peak_score_normalised": peak_val.astype(np.float64),
            "duration_s": (ts[last] - ts[first]) / 1e9,
            "n_windows": (last - first + 1).astype(np.int64),
            "top_features": event_top,
        },
        schema_overrides={"series": pl.Utf8, "top_features": pl.Utf8},
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]
    return pl.DataFrame(cols), events


def reference_score_all(
    det: Detector, series: list[SeriesData], opts: ScoreOptions = ScoreOptions()
) -> tuple[pl.DataFrame, pl.DataFrame, ScoreSummary]:
    """Score every series with ``det``; return (windows, events, summary)."""
    t0 = time.perf_counter()
    ths = resolve_thresholds(
        det.card.threshold, det.path, opts.threshold, opts.likelihood is not None
    )
    scale = ths.feature_scale(det.card.features)
    spec = det.card.window
    max_gap_s = det.card.max_gap_s if opts.max_gap_s is None else opts.max_gap_s
    tables, events = [], []
    total = sum(
        segment_window_ends(gap_segments(s.timestamps, max_gap_s), spec).size for s in series
    )
    with Progress(total, "scoring", "windows", enabled=opts.progress) as bar:
        for s in series:
            sc, ends = score_segments(det, s, max_gap_s, opts.chunk_windows)
            _check_finite(det, s, sc)
            th = None if opts.likelihood is not None else ths.for_series(s.name)
            w, e = score_table(s, sc, spec, th, det.card.features, opts, ends, scale)
            tables.append(w)
            events.append(e)
            bar.update(sc.score.shape[0])
    windows = pl.concat(tables) if tables else pl.DataFrame()
    ev = pl.concat(events) if events else pl.DataFrame(schema=EVENT_SCHEMA)
    summary = ScoreSummary(
        n_series=len(series),
        n_rows=sum(s.values.shape[0] for s in series),
        n_windows=windows.height,
        n_anomalous=int(windows["is_anomaly"].sum()) if windows.height else 0,
        n_events=ev.height,
        threshold=ths.value,
        seconds=time.perf_counter() - t0,
    )
    return windows, ev, summary


def score_segments(
    det: Detector, s: SeriesData, max_gap_s: float, chunk_windows: int | None = None
) -> tuple[Scores, np.ndarray]:
    """Scores of one series' windows in time order, and the row each ends at: each segment
    between gaps (:func:`anomae.windows.gap_segments`) windowed on its own, as the monitor
    does, so no window spans a gap."""
    bounds = gap_segments(s.timestamps, max_gap_s)
    if bounds.size == 2:
        return det.score_series(s.values, chunk_windows), window_ends(
            s.values.shape[0], det.card.window
        )
    parts = [det.score_series(s.values[lo:hi], chunk_windows) for lo, hi in _pairs(bounds)]
    scores = Scores(
        np.concatenate([p.score for p in parts]),
        np.concatenate([p.feature_error for p in parts]),
        np.concatenate([p.coverage for p in parts]),
    )
    return scores, segment_window_ends(bounds, det.card.window)


def _pairs(bounds: np.ndarray) -> list[tuple[int, int]]:
    b = bounds.tolist()
    return list(zip(b[:-1], b[1:], strict=True))


def _check_finite(det: Detector, s: SeriesData, sc: Scores) -> None:
    """A window with observed values scores a number; NaN there means the model is broken."""
    bad = np.isnan(sc.score) & (sc.coverage > 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise DetectorError(
            f"{det.path}: {int(bad.sum()):,} windows of series {s.name!r} with observed "
            f"values scored NaN (first: window {first}); the model is damaged: "
            f"re-export it (`anomae train` or `anomae run`)"
        )
