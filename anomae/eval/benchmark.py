"""Honest evaluation on public benchmarks: anomae and baselines in one harness.

Every detector (anomae's autoencoder and the baselines of :mod:`anomae.eval.baselines`) is
trained on each case's training rows, gets its threshold **without labels** from the
calibration method the pipeline names (on held-out training rows, or in-sample when
``[calibrate] holdout = 0``, as the SKAB leaderboard does), flags test rows through the
same post-rules as ``anomae score``, and is scored by :mod:`anomae.eval.metrics`. Row ``t``'s
score is that of the window ending at ``t`` (the last ``length - 1`` training rows give the
first test rows their context).

With a ``[likelihood]`` section every detector alarms on the anomaly likelihood of its own
scores instead (:mod:`anomae.likelihood`), run in time order as a stream would see it:
anomae's from its first window on rows it was not trained on (the held-out training rows;
in-sample reconstruction errors are optimistic), a baseline's from the first row (its
per-value scores barely differ in and out of sample, and the longer history helps it). Its
:class:`Scored` is then the normalised likelihood score with threshold 1, so threshold-free
metrics rank that score.

Reported per detector: pooled point F1/FAR/MAR (SKAB's definitions, no point-adjust),
mean VUS-PR/VUS-ROC/AUC-PR/AUC-ROC over cases, mean event F1 (TSB-AD's event-based F1, which
flagging everything cannot win), false events per day (events after the post-rules that
overlap no label, pooled over the cases' test spans; per 10,000 test rows where a dataset has
no time, as :func:`anomae.eval.datasets.load_matrix`), point-adjusted F1 (secondary, inflated by
construction) and, for NAB, the normalised NAB score per profile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomae.errors import AnomaeError
from anomae.eval.datasets import Case
from anomae.eval.section import BenchmarkSection
from anomae.events import PostRule, event_bounds, event_mask
from anomae.io import TableSpec

NAB_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


class DataMissing(AnomaeError, RuntimeError):
    """The benchmark's data is not on this machine; the message says where it was looked for."""


def load_cases(
    bench: BenchmarkSection, data: str | None = None, table: TableSpec | None = None
) -> list[Case]:
    """The benchmark's cases; ``labelled`` reads the user's files with ``table`` (the
    pipeline's ``[data]`` columns: timestamp, series, label, features, unit)."""
    from anomae.eval import datasets

    if bench.dataset == "labelled":
        return datasets.load_labelled(bench.train, bench.test, table or TableSpec())
    from anomae.io import InputError

    try:
        root = datasets.find_data(bench.dataset, data or bench.data or None)
    except FileNotFoundError as exc:  # a folder the user named is not there: their error
        raise InputError(f"{exc}; check --data or [benchmark] data") from exc
    if root is None:
        raise DataMissing(
            f"{bench.dataset} data not found (looked in ../shared/datasets/{bench.dataset}); "
            f"pass --data PATH"
        )
    if bench.dataset == "skab":
        cases = datasets.load_skab(root, bench.protocol)  # type: ignore[arg-type]
    elif bench.dataset == "nab":
        cases = datasets.load_nab(root, bench.categories)
    elif bench.dataset == "tsb":
        from anomae.eval.tsb import load_tsb

        cases = load_tsb(root)
    else:
        cases = datasets.load_matrix(root)
    return cases[: bench.limit] if bench.limit else cases


@dataclass
class Scored:
    """One detector on one case: row scores of the test part and the threshold."""

    score: np.ndarray
    threshold: float
    flag_all: bool = False


def _row_scores(window_scores: np.ndarray, n_test: int) -> np.ndarray:
    """Scores of the windows ending at each test row (context rows were prepended)."""
    out = np.full(n_test, np.nan, np.float64)
    out[n_test - window_scores.size :] = window_scores
    return out


class AnomaeModels:
    """anomae per case through the Python API (:func:`anomae.api.fit`: train, export,
    calibrate as the pipeline says), then scored on the test rows."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        # same training data, same model: (model, rows it was fitted on)
        self._cache: dict[str, tuple[Any, int]] = {}

    def __call__(self, case: Case) -> Scored:
        from anomae.api import fit
        from anomae.holdout import split_holdout

        key = hashlib.sha256(case.train.tobytes()).hexdigest()
        if key not in self._cache:
            if self.pipe.likelihood is not None and self.pipe.calibrate.holdout_spread:
                raise ValueError(
                    f"{self.pipe.source} [calibrate]: the likelihood's history must start on "
                    f"the unseen rows at the end of the training part: set holdout_from = "
                    f'"tail"'
                )
            model = fit(_frame(case), recipe=self.pipe, features=case.features)
            c, length = self.pipe.calibrate, model.window  # (the period's, [window] period)
            held = split_holdout([_rows(case)], c.holdout, c.holdout_spread, length)[1]
            self._cache[key] = (model, case.train.shape[0] - sum(b.shape[0] for b in held))
        model, fitted = self._cache[key]
        if self.pipe.likelihood is not None:
            # window w covers rows w .. w + length - 1: from w = fitted on, all are unseen
            return _likelihood_scored(model.score_rows(_full(case)), case, self.pipe, first=fitted)
        ctx = model.window - 1
        rows = np.concatenate([case.train[-ctx:] if ctx else case.train[:0], case.test])
        scores = model.score_rows(rows)
        assert model.threshold is not None  # fit calibrates
        return Scored(_row_scores(scores.astype(np.float64), case.test.shape[0]), model.threshold)


def _frame(case: Case) -> Any:
    """The case's training rows as the table :func:`anomae.api.fit` reads (one series).
    A timestamp that repeats or steps back (NAB's daylight-saving artefacts: the rows keep
    file order) becomes 1 ns after the one before, as fit needs them strictly increasing."""
    import polars as pl

    ts = np.asarray(case.train_timestamps, np.int64)
    step = np.arange(ts.shape[0], dtype=np.int64)
    ts = np.maximum.accumulate(ts - step) + step  # unchanged where already increasing
    cols = {"timestamp": pl.Series(ts).cast(pl.Datetime("ns", "UTC"))}
    cols["series"] = pl.repeat(case.name, case.train.shape[0], dtype=pl.String, eager=True)
    values = np.ascontiguousarray(case.train, np.float32)
    cols |= {f: pl.Series(values[:, j]) for j, f in enumerate(case.features)}
    return pl.DataFrame(cols)


def _rows(case: Case) -> Any:
    from anomae.io import SeriesData

    n = case.train.shape[0]
    return SeriesData(case.name, case.name, case.train_timestamps, case.train, None, np.arange(n))


def _full(case: Case) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate([case.train, case.test]), np.float32)


def _likelihood_scored(window_scores: np.ndarray, case: Case, pipe: Any, first: int = 0) -> Scored:
    """The likelihood over a whole series' window scores (the last one ending at its last
    row) from window ``first`` on, as the test rows' normalised scores against threshold 1."""
    from anomae.likelihood import likelihood_scores
    from anomae.score import window_interval
    from anomae.spec import WindowSpec

    n, p = case.train.shape[0] + case.test.shape[0], case.train.shape[0]
    ts = np.concatenate([case.train_timestamps, case.test_timestamps])
    interval = window_interval(ts, WindowSpec(1))  # a window (score) per row
    norm = np.full(window_scores.size, np.nan)
    norm[first:] = likelihood_scores(window_scores[first:], pipe.likelihood, interval)
    return Scored(_row_scores(norm, n)[p:], 1.0)


class BaselineDetector:
    """A baseline, thresholded by the same label-free method on its training scores (or
    alarming on the likelihood of its scores, like anomae, when ``pipe.likelihood`` is set)."""

    def __init__(self, name: str, calibration: Any, pipe: Any = None) -> None:
        self.name = name
        self.calibration = calibration
        self.pipe = pipe

    def __call__(self, case: Case) -> Scored:
        from anomae.calibrate import calibrate
        from anomae.eval.baselines import BASELINES

        if self.name == "all_anomalous":
            return Scored(np.ones(case.test.shape[0]), 1.0, flag_all=True)
        model = BASELINES[self.name]().fit(case.train)
        if self.pipe is not None and self.pipe.likelihood is not None:
            # training rows in-sample, then the test rows as score() streams them from the
            # fitted history (the windowed Gaussian's would count its training rows twice
            # if they were streamed through it again)
            whole = np.concatenate([model.score(case.train), model.score(case.test)])
            return _likelihood_scored(whole, case, self.pipe)
        params = {k: v for k, v in self.calibration.params().items() if k != "interval_s"}
        if self.calibration.method == "fpr" and "alarms_per_day" in params:
            params = {"rate": params.get("rate", 0.001)}  # no time axis in a baseline's view
        train_scores = model.score(case.train)
        try:
            th = calibrate(train_scores, self.calibration.method, **params).value
        except ValueError:
            th = float(np.nanmax(train_scores)) or 1.0  # degenerate scores (e.g. constant)
        return Scored(model.score(case.test), th)


def pipeline_rule(pipe: Any) -> PostRule:
    """The post-rule of ``pipe``'s ``[score]`` section, as the harness applies it."""
    return PostRule(pipe.score.min_windows, pipe.score.max_gap, pipe.score.off, pipe.score.cooldown)


def case_events(s: Scored, n_test: int, rule: PostRule) -> tuple[np.ndarray, np.ndarray]:
    """A detector's events on a case's ``n_test`` test rows after the post-rules, as
    inclusive row ranges (one range over all rows when it flags everything): the events
    :func:`case_metrics` counts."""
    if s.flag_all:
        return np.array([0]), np.array([n_test - 1])
    return event_bounds(s.score / s.threshold, rule)


def case_metrics(
    s: Scored, case: Case, rule: PostRule, vus_window: int, nab: bool = False
) -> dict[str, Any]:
    from anomae.eval import metrics

    label = case.test_label.astype(np.int8)
    n = label.size
    starts, ends = case_events(s, n, rule)
    pred = event_mask(n, (starts, ends))
    score = np.where(np.isnan(s.score), -np.inf, s.score)
    out: dict[str, Any] = {"case": case.name, "rows": n, "anomalous": int(label.sum())}
    out.update({k: v for k, v in metrics.point_metrics(pred, label).items()})
    has_both = 0 < label.sum() < n
    out["vus_pr"] = metrics.vus_pr(score, label, vus_window) if has_both else float("nan")
    out["vus_roc"] = metrics.vus_roc(score, label, vus_window) if has_both else float("nan")
    out["auc_pr"] = metrics.auc_pr(score, label) if has_both else float("nan")
    out["auc_roc"] = metrics.auc_roc(score, label) if has_both else float("nan")
    out["event_f1"] = metrics.event_f1(pred, label)["f1"]
    out["false_events"] = metrics.false_events(starts, ends, label)
    out["span_days"] = span_days(case)
    out["pa_f1"] = metrics.point_adjusted_f1(pred, label)
    if nab:
        # NAB scores the full series; the training (probationary) rows never alarm
        onsets = np.zeros(case.probation + n, bool)
        onsets[case.probation + starts] = True
        from anomae.eval.nab import nab_score

        for profile in NAB_PROFILES:
            out[f"nab_{profile}"] = nab_score(onsets, case.windows, case.probation, profile)
    return out


def span_days(case: Case) -> float | None:
    """Days the test rows span (first to last timestamp plus one median step), or ``None``
    where the dataset has no time and the loader numbered the rows instead (it says so in
    ``meta["timestamps"]``, as :func:`anomae.eval.datasets.load_matrix` does)."""
    from anomae.eval.evaluate import span_days as days

    return None if "timestamps" in case.meta else days(case.test_timestamps)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from anomae.eval import metrics

    pooled = metrics.pooled([{k: r[k] for k in ("tp", "fp", "fn", "tn")} for r in rows])
    out: dict[str, Any] = {
        "cases": len(rows),
        "f1": pooled["f1"],
        "far": pooled["far"],
        "mar": pooled["mar"],
        "precision": pooled["precision"],
        "recall": pooled["recall"],
    }
    for key in ("vus_pr", "vus_roc", "auc_pr", "auc_roc", "event_f1", "pa_f1"):
        vals = np.array([r[key] for r in rows], dtype=np.float64)
        out[key] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    n_false = sum(r["false_events"] for r in rows)
    days = [r["span_days"] for r in rows]
    if rows and all(d is not None for d in days):
        out["false_events_per_day"] = _ratio(n_false, sum(days))
    else:  # some case has no time axis: per 10,000 test rows instead
        out["false_events_per_10k_rows"] = _ratio(1e4 * n_false, sum(r["rows"] for r in rows))
    if rows and "nab_standard" in rows[0]:
        from anomae.eval.nab import nab_normalised

        for profile in NAB_PROFILES:
            out[f"nab_{profile}"] = nab_normalised(r[f"nab_{profile}"] for r in rows)
    return out


def run_benchmark(
    pipe: Any,
    data: str | None = None,
    progress: Callable[[str], None] | None = None,
    on_case: Callable[[Case, dict[str, Scored], PostRule], None] | None = None,
) -> dict[str, Any]:
    """Run every detector over every case of ``pipe.benchmark``; return the report dict.

    ``on_case`` (e.g. the PNG plots of ``anomae evaluate --plot``) gets each case with
    every detector's :class:`Scored` and the post-rule, after its metrics are computed."""
    bench: BenchmarkSection = pipe.benchmark
    cases = load_cases(bench, data, pipe.data.table())
    rule = pipeline_rule(pipe)
    t0 = time.perf_counter()
    detectors: dict[str, Callable[[Case], Scored]] = {"anomae": AnomaeModels(pipe)}
    for name in bench.baselines:
        detectors[name] = BaselineDetector(name, pipe.calibrate, pipe)
    per_case: dict[str, list[dict[str, Any]]] = {name: [] for name in detectors}
    for i, case in enumerate(cases):
        scored: dict[str, Scored] = {}
        for name, det in detectors.items():
            scored[name] = det(case)
            per_case[name].append(
                case_metrics(scored[name], case, rule, bench.vus_window, bench.dataset == "nab")
            )
        if on_case is not None:
            on_case(case, scored, rule)
        if progress:
            progress(f"[{i + 1}/{len(cases)}] {case.name}")
    return {
        "benchmark": dataclasses.asdict(bench),
        "cases": len(cases),
        "seconds": round(time.perf_counter() - t0, 1),
        "summary": {name: summarise(rows) for name, rows in per_case.items()},
        "per_case": per_case,
    }
