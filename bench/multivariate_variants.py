"""What else was tried on the multivariate recipe (issue 9), in ``anomae evaluate``'s harness.

Each benchmark pipeline (``pipelines/smap.toml``, ``skab.toml``, ``skab_anomaly_free.toml``,
all ``recipe = "multivariate"``) is run once as shipped: anomae and the PCA, k-sigma and
windowed-Gaussian baselines are fitted per case exactly as ``anomae evaluate`` fits them
(:class:`anomae.eval.benchmark.AnomaeModels`, :class:`~anomae.eval.benchmark.
BaselineDetector`), and every detector's scores over the whole series are kept. The
variants then change only what happens to those scores, so each row differs from the
first by that change alone:

* ``likelihood short S eps E``: every detector alarms on the anomaly likelihood of its own
  scores (:mod:`anomae.likelihood`, history from the first training row), as the
  univariate recipe does; the VUS columns rank the likelihood score;
* ``anomae likelihood ..., raw baselines``: the same for anomae only, against the
  shipped baselines;
* ``anomae causal mean / max of last K``: anomae's score averaged (max) over its last K
  windows, thresholded at the in-sample quantile the shipped threshold sits at;
* ``anomae in-sample ...`` (pipelines calibrated in-sample, ``holdout = 0``: SKAB's
  official protocol): another threshold on the same 400 training rows' scores;
* ``--drift-centring CUT`` (refits): ``[window] center_features`` chosen per case, label
  free: the features whose variance within ``length``-row windows of the training rows is
  below CUT of their total variance (a level that wanders, as SKAB's warming temperatures);
* ``--tune`` (refits; slow): ``[tune]``'s default grid per case on a tail holdout of 20 %
  (the recipe's spread blocks are too small for the injected anomalies), the winner then
  trained and calibrated as the recipe says;
* ``--aggregate``: the window score recombined from the graph's per-feature errors, each
  in units of its own error on the calibration rows (``q0.99``: ``e / quantile_0.99``;
  ``mad``: ``(e - median) / MAD``), then ``max``, ``mean`` or mean of the top K features
  (:mod:`feature_errors`), thresholded at the rank of the calibration scores the shipped
  threshold sits at; "anomae and PCA" rows do the same to the PCA baseline's per-feature
  residuals (same policy). ``--seed`` sets anomae's training seed.

"ratio" is the median over cases of anomae's VUS-PR over PCA's (same policy), "> PCA" the
cases where anomae's is higher; F1/FAR pooled, event F1 the mean of TSB-AD's event-based
F1, "best base ev" the best same-policy baseline's event F1. Needs the data in
``../shared/datasets`` (skips what is absent).

    OMP_NUM_THREADS=1 python bench/multivariate_variants.py [--only smap] [--drift-centring 0.1]
                                                            [--tune] [--aggregate] [--seed 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anomae.eval import benchmark as B  # noqa: E402
from anomae.eval.baselines import BASELINES  # noqa: E402
from anomae.events import PostRule  # noqa: E402
from anomae.likelihood import Likelihood, likelihood_scores  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feature_errors import (  # noqa: E402
    COMBINE,
    STATS,
    Features,
    anomae_features,
    combine,
    pca_features,
    standardise,
)

PIPELINES = ("smap", "skab", "skab_anomaly_free")
BASES = ("pca", "ksigma", "windowed_gaussian")
# a detector's case: (row scores of the whole series, the shipped test Scored)
Kept = dict[str, tuple[np.ndarray, B.Scored]]
Variant = Callable[[str, np.ndarray, B.Scored, int], B.Scored]


# per case, per detector (anomae, pca): filled by keep_scores when --aggregate is given
FEATURES: list[dict[str, Features]] = []


def keep_scores(pipe: Any, cases: list[Any], features: bool = False) -> list[Kept]:
    """Every detector's shipped :class:`Scored` and its row scores over train + test (and,
    with ``features``, anomae's and PCA's per-feature errors in :data:`FEATURES`)."""
    anomae = B.AnomaeModels(pipe)
    out: list[Kept] = []
    FEATURES.clear()
    for case in cases:
        shipped = anomae(case)
        model, _ = anomae._cache[hashlib.sha256(case.train.tobytes()).hexdigest()]
        n = case.train.shape[0] + case.test.shape[0]
        kept: Kept = {"anomae": (B._row_scores(model.score_rows(B._full(case)), n), shipped)}
        for name in BASES:
            m = BASELINES[name]().fit(case.train)
            whole = np.concatenate([m.score(case.train), m.score(case.test)])
            kept[name] = (whole, B.BaselineDetector(name, pipe.calibrate)(case))
        out.append(kept)
        if features:
            FEATURES.append(
                {"anomae": anomae_features(pipe, model, case), "pca": pca_features(case)}
            )
    return out


def aggregate(stat: str, how: str, with_pca: bool) -> Callable[..., B.Scored]:
    """anomae's (and, ``with_pca``, PCA's) score recombined from its per-feature errors,
    standardised by ``stat`` on the calibration rows and combined by ``how``; thresholded
    at the rank of the calibration scores the shipped threshold sits at."""

    def fn(det: str, full: np.ndarray, s: B.Scored, p: int, case_i: int = -1) -> B.Scored:
        if det not in ("anomae", "pca") or (det == "pca" and not with_pca):
            return s
        f = FEATURES[case_i][det]
        new = combine(standardise(f.rows, f.cal, stat), how)
        cal = combine(standardise(f.cal, f.cal, stat), how)
        old, cal = f.cal_score[np.isfinite(f.cal_score)], cal[np.isfinite(cal)]
        return B.Scored(new[p:], float(np.quantile(cal, np.mean(old <= s.threshold))))

    fn.per_case = True  # type: ignore[attr-defined]
    return fn


def shipped(det: str, full: np.ndarray, s: B.Scored, p: int) -> B.Scored:
    return s


def likelihood(spec: Likelihood, everyone: bool = True) -> Variant:
    def fn(det: str, full: np.ndarray, s: B.Scored, p: int) -> B.Scored:
        if det != "anomae" and not everyone:
            return s
        return B.Scored(likelihood_scores(full, spec)[p:], 1.0)

    return fn


def causal(k: int, how: str) -> Variant:
    def fn(det: str, full: np.ndarray, s: B.Scored, p: int) -> B.Scored:
        if det != "anomae":
            return s
        w = sliding_window_view(np.concatenate([np.full(k - 1, np.nan), full]), k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: NaN
            agg = np.nanmean(w, axis=1) if how == "mean" else np.nanmax(w, axis=1)
        train, new = full[:p][np.isfinite(full[:p])], agg[:p][np.isfinite(agg[:p])]
        return B.Scored(agg[p:], float(np.quantile(new, np.mean(train <= s.threshold))))

    return fn


def in_sample(kind: str, value: float) -> Variant:
    def fn(det: str, full: np.ndarray, s: B.Scored, p: int) -> B.Scored:
        if det != "anomae":
            return s
        x = full[:p][np.isfinite(full[:p])]
        th = x.max() * value if kind == "max" else x.mean() + value * x.std()
        return B.Scored(s.score, float(th))

    return fn


def row(label: str, pipe: Any, cases: list[Any], kept: list[Kept], variant: Variant) -> str:
    rule = PostRule(pipe.score.min_windows, pipe.score.max_gap, pipe.score.off, pipe.score.cooldown)
    per: dict[str, list[dict[str, Any]]] = {d: [] for d in ("anomae", *BASES)}
    for i, (case, k) in enumerate(zip(cases, kept, strict=True)):
        p = case.train.shape[0]
        for det, (full, shipped_s) in k.items():
            if getattr(variant, "per_case", False):
                scored = variant(det, full, shipped_s, p, case_i=i)
            else:
                scored = variant(det, full, shipped_s, p)
            per[det].append(B.case_metrics(scored, case, rule, pipe.benchmark.vus_window))
    a = np.array([r["vus_pr"] for r in per["anomae"]])
    pca = np.array([r["vus_pr"] for r in per["pca"]])
    summary = {d: B.summarise(rows) for d, rows in per.items()}
    best = max(summary[d]["event_f1"] for d in BASES)
    me = summary["anomae"]
    return (
        f"| {label} | {np.nanmedian(a / pca):.3f} | {int((a > pca).sum())}/{a.size} | "
        f"{me['f1']:.3f} | {100 * me['far']:.1f} % | {me['event_f1']:.3f} | {best:.3f} | "
        f"{me['vus_pr']:.3f} |"
    )


def drift_centred(pipe: Any, case: Any, cut: float) -> Any:
    length = pipe.window.length
    names = []
    for j, f in enumerate(case.features):
        v = case.train[:, j].astype(np.float64)
        v = v[np.isfinite(v)]
        if v.var() > 0 and sliding_window_view(v, length).var(axis=1).mean() < cut * v.var():
            names.append(f)
    window = dataclasses.replace(pipe.window, center_features=tuple(names))
    return dataclasses.replace(pipe, window=window)


def code_sized(pipe: Any, case: Any, rule: str) -> Any:
    """``[model] hidden`` one linear code sized on the case's training rows, label free:
    ``features``: one unit per feature not constant in them; ``half8``: half as many, at
    least 8; ``fixedK``: K whatever the data (``fixed8``: the recipe before 2026-12-01);
    ``rowsQ``: the principal components of the standardised rows that explain ``Q`` % of
    their variance. (The recipe's own ``code = "features"`` counts on the rows it fits,
    after the holdout; this counts on all training rows.)"""
    from anomae.train.weights import constant_features

    x = case.train.astype(np.float64)
    x = x[:, ~constant_features([x])]
    if rule == "features":
        k = x.shape[1]
    elif rule.startswith("fixed"):  # e.g. fixed8: the recipe before 2026-12-01
        k = int(rule.removeprefix("fixed"))
    elif rule == "half8":  # half of them, never under the recipe's 8
        k = max(8, -(-x.shape[1] // 2))
    else:
        x = (x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0)
        s = np.linalg.svd(np.nan_to_num(x), compute_uv=False) ** 2
        k = int(np.searchsorted(np.cumsum(s) / s.sum(), float(rule.removeprefix("rows")) / 100)) + 1
    return dataclasses.replace(pipe, model={**pipe.model, "hidden": [max(k, 2)], "code": "fixed"})


def refit_row(label: str, pipe: Any, cases: list[Any], kept: list[Kept], make: Any) -> str:
    """A row whose anomae is refitted per case with ``make(pipe, case)`` (None: skipped)."""
    new: list[Kept] = []
    used = []
    fitted: dict[str, tuple[Any, B.AnomaeModels | None]] = {}  # cases sharing training rows
    for case, k in zip(cases, kept, strict=True):
        key = hashlib.sha256(case.train.tobytes()).hexdigest()
        if key not in fitted:
            p2 = make(pipe, case)
            fitted[key] = (p2, B.AnomaeModels(p2) if p2 is not None else None)
        p2, models = fitted[key]
        if models is None:
            continue
        s = models(case)
        model, _ = models._cache[key]
        n = case.train.shape[0] + case.test.shape[0]
        new.append({**k, "anomae": (B._row_scores(model.score_rows(B._full(case)), n), s)})
        used.append(case)
    if not used:
        return f"| {label}: no case | | | | | | | |"
    return row(f"{label} ({len(used)} cases)", pipe, used, new, shipped)


def tuned(pipe: Any, case: Any) -> Any:
    from anomae.errors import PipelineError
    from anomae.grid import TuneSection
    from anomae.tune import tune

    cal = dataclasses.replace(pipe.calibrate, holdout=0.2, holdout_from="tail")
    tp = dataclasses.replace(pipe, tune=TuneSection(), calibrate=cal)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = tune(tp, [B._rows(case)], tuple(case.features), echo=lambda _: None)
    except PipelineError as exc:
        print(f"  {case.name}: not tuned: {str(exc).split(':', 2)[-1][:90].strip()}...")
        return None
    c = res.record["candidates"][res.record["choice"]]
    print(
        f"  {case.name}: tuned in {time.perf_counter() - t0:.0f}s: window {c['window']} "
        f"hidden {c['hidden']} noise {c['noise']:g} center {c['center']}"
    )
    return dataclasses.replace(res.pipe, tune=None, calibrate=pipe.calibrate)


AGGREGATIONS = [(stat, how) for stat in STATS for how in COMBINE]


def run(
    name: str,
    drift: list[float],
    with_tune: bool,
    agg: bool = False,
    seed: int = 0,
    only_agg: bool = False,
    code: tuple[str, ...] = (),
    matrix: str | None = None,
) -> None:
    from anomae.io import InputError
    from anomae.pipeline import load_pipeline

    pipe = load_pipeline(ROOT / "pipelines" / f"{name}.toml")
    if matrix:  # smap.toml's settings on another matrix folder
        bench = dataclasses.replace(pipe.benchmark, data=str(Path(matrix).resolve()))
        pipe, name = dataclasses.replace(pipe, benchmark=bench), f"{name} settings on {matrix}"
    pipe = dataclasses.replace(pipe, train={**pipe.train, "progress": False, "seed": seed})
    try:
        cases = B.load_cases(pipe.benchmark, None, pipe.data.table())
    except (B.DataMissing, InputError) as exc:  # no data here, or not where the pipeline says
        print(f"\n## {name}: skipped, {exc}")
        return
    t0 = time.perf_counter()
    kept = keep_scores(pipe, cases, features=agg)
    print(
        f"\n## {name} ({len(cases)} cases, seed {seed}, fitted in "
        f"{time.perf_counter() - t0:.0f}s)\n"
    )
    print("| variant | ratio | > PCA | F1 | FAR | event F1 | best base ev | VUS-PR |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    variants: list[tuple[str, Variant]] = [("recipe as shipped", shipped)]
    for short, eps in ((1, 1e-3), (5, 1e-3), (5, 1e-5)):
        spec = Likelihood(short=short, epsilon=eps)
        variants.append((f"likelihood short {short} eps {eps:g}", likelihood(spec)))
        variants.append((f"anomae likelihood short {short} eps {eps:g}, raw baselines",
                         likelihood(spec, everyone=False)))  # fmt: skip
    variants += [(f"anomae causal mean of last {k}", causal(k, "mean")) for k in (8, 16)]
    variants.append(("anomae causal max of last 8", causal(8, "max")))
    if pipe.calibrate.holdout == 0:
        variants += [
            ("anomae in-sample max", in_sample("max", 1.0)),
            ("anomae in-sample 1.2 x max", in_sample("max", 1.2)),
            ("anomae in-sample mean + 4 sd", in_sample("sd", 4.0)),
            ("anomae in-sample mean + 6 sd", in_sample("sd", 6.0)),
        ]
    if only_agg:
        variants = variants[:1]
    if agg:
        for stat, how in AGGREGATIONS:
            for pca in (False, True):
                who = "anomae and PCA" if pca else "anomae"
                label = f"{who}: feature errors / held-out {stat}, {how}"
                variants.append((label, aggregate(stat, how, pca)))
    for label, v in variants:
        print(row(label, pipe, cases, kept, v), flush=True)
    for cut in drift:
        label = f"drifting features centred (cut {cut:g})"
        make = lambda p, c, cut=cut: drift_centred(p, c, cut)  # noqa: E731
        print(refit_row(label, pipe, cases, kept, make), flush=True)
    for rule in code:
        make = lambda p, c, rule=rule: code_sized(p, c, rule)  # noqa: E731
        print(refit_row(f"code sized by {rule}", pipe, cases, kept, make), flush=True)
    if with_tune:
        print(refit_row("[tune] per case", pipe, cases, kept, tuned), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=PIPELINES, default=None)
    ap.add_argument("--drift-centring", type=float, action="append", default=[], metavar="CUT")
    ap.add_argument("--tune", action="store_true", help="also tune per case (slow)")
    ap.add_argument(
        "--aggregate",
        action="store_true",
        help="also combine per-feature errors standardised on held-out rows",
    )
    ap.add_argument(
        "--only-aggregate",
        action="store_true",
        help="with --aggregate: skip the score-side variants",
    )
    ap.add_argument("--seed", type=int, default=0, help="anomae's training seed")
    ap.add_argument("--code", action="append", default=[], metavar="RULE",
                    help="also refit with the code sized per case: 'features', 'fixedK', "
                    "'half8' or 'rowsQ' (e.g. fixed8, rows95)")  # fmt: skip
    ap.add_argument("--matrix", metavar="FOLDER",
                    help="with --only smap: run its settings on another train/test/test_label "
                    "folder instead")  # fmt: skip
    args = ap.parse_args()
    for name in PIPELINES:
        if args.only in (None, name):
            run(
                name, args.drift_centring, args.tune, args.aggregate, args.seed,
                args.only_aggregate, tuple(args.code), args.matrix,
            )  # fmt: skip


if __name__ == "__main__":
    main()
