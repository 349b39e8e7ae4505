"""Per-feature errors combined into a window score another way than their mean (issue 9).

The graph's score is the mean over features of each one's squared reconstruction error
(``feature_error``). A contextual anomaly in one sensor of many is diluted by that mean,
and a sensor whose normal error is large dominates it. Here each feature's error is put in
units of its own error on held-out normal rows (``e / quantile_q`` or ``(e - median) /
MAD``) and then combined by ``max``, ``mean`` or the mean of the ``topK`` features; the
standardisation uses only the rows the threshold is calibrated on, never labels.

:mod:`multivariate_variants` (``--aggregate``) runs these on SMAP and SKAB in ``anomae
evaluate``'s harness, for anomae and for the PCA baseline's per-feature residuals; this
script runs them on the demo data (``pipelines/demo.toml``'s own model and the
multivariate recipe), whose test rows carry labels:

    OMP_NUM_THREADS=1 python bench/feature_errors.py [--seed 0] [--data data/demo]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STATS = ("q0.99", "q0.999", "floor0.99", "mad")
COMBINE = ("max", "mean", "top2", "top3")


@dataclasses.dataclass
class Features:
    """One detector's per-feature errors on one case: ``rows`` ``[n, F]`` aligned to the
    whole series' rows (NaN before the first window), ``cal`` ``[m, F]`` and ``cal_score``
    ``[m]`` on the normal rows its threshold was calibrated on."""

    rows: np.ndarray
    cal: np.ndarray
    cal_score: np.ndarray


def held_out(det: Any, blocks: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """``feature_error`` and ``score`` of held-out row blocks, each scored alone (no window
    crosses a cut), as calibration scores them."""
    scored = [det.score_series(np.asarray(b, np.float32)) for b in blocks if b.shape[0] >= length]
    fe = np.concatenate([s.feature_error for s in scored]).astype(np.float64)
    return fe, np.concatenate([s.score for s in scored]).astype(np.float64)


def anomae_features(pipe: Any, model: Any, case: Any) -> Features:
    """The graph's ``feature_error`` over a benchmark case's whole series, and over the
    held-out blocks its threshold was calibrated on (all training rows, in-sample, with
    ``holdout = 0``)."""
    from anomae.eval import benchmark as B
    from anomae.holdout import split_holdout

    c, length = pipe.calibrate, pipe.window.length
    n = case.train.shape[0] + case.test.shape[0]
    whole = model.detector.score_series(B._full(case)).feature_error.astype(np.float64)
    rows = np.full((n, whole.shape[1]), np.nan)
    rows[n - whole.shape[0] :] = whole
    held = split_holdout([B._rows(case)], c.holdout, c.holdout_spread, length)[1]
    if not any(b.shape[0] >= length for b in held):
        held = [case.train]
    return Features(rows, *held_out(model.detector, held, length))


def pca_features(case: Any) -> Features:
    """The PCA baseline's squared residual per feature (one window per row), over the whole
    series and over its training rows (it calibrates on them in-sample)."""
    from anomae.eval.baselines import PCABaseline

    m = PCABaseline().fit(case.train)

    def per_feature(x: np.ndarray) -> np.ndarray:
        z, observed = m._windows(np.asarray(x, np.float64))
        centred = z - m.center_
        residual = centred - (centred @ m.components_.T) @ m.components_
        return np.where(observed, residual**2, np.nan)

    whole = np.concatenate([per_feature(case.train), per_feature(case.test)])
    return Features(whole, per_feature(case.train), m.score(case.train))


def standardise(fe: np.ndarray, cal: np.ndarray, how: str) -> np.ndarray:
    """Each feature's error in units of its own held-out error: ``e / quantile_q`` (``how``
    = ``"q0.99"``), ``(e - median) / MAD`` (``"mad"``), or ``e / max(quantile_q, median
    over features of quantile_q)`` (``"floor0.99"``: a feature whose normal error is large
    is shrunk to its own scale, a well reconstructed one is not magnified beyond the
    typical feature's). Features whose held-out error is 0 throughout (left out of the
    score) become NaN; a spread of 0 is floored at 1e-3 of the features' median spread."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        live = np.nanmax(np.abs(cal), axis=0) > 0
        if how == "mad":
            loc = np.nanmedian(cal, axis=0)
            spread = np.nanmedian(np.abs(cal - loc), axis=0)
        else:
            loc = np.zeros(cal.shape[1])
            spread = np.nanquantile(cal, float(how.removeprefix("floor").removeprefix("q")), axis=0)
        floor = 1e-3 * np.nanmedian(spread[live]) if live.any() else 1.0
        if how.startswith("floor"):
            floor = np.nanmedian(spread[live]) if live.any() else 1.0
        z = (fe - loc) / np.maximum(spread, max(floor, 1e-12))
    z[:, ~live] = np.nan
    return z


def combine(z: np.ndarray, how: str) -> np.ndarray:
    """One score per row of standardised errors ``[n, F]``: ``max``, ``mean`` or ``topK``
    (the mean of the K largest); NaN features are skipped, a row of NaN gives NaN.

        >>> z = np.array([[3.0, 1.0, np.nan, 2.0]])
        >>> [float(combine(z, h)[0]) for h in ("max", "mean", "top2")]
        [3.0, 2.0, 2.5]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with nothing observed: NaN
        if how == "max":
            return np.nanmax(z, axis=1)
        if how == "mean":
            return np.nanmean(z, axis=1)
        k = int(how[3:])
        top = -np.sort(-np.where(np.isnan(z), -np.inf, z), axis=1)[:, :k]
        return np.nanmean(np.where(np.isinf(top), np.nan, top), axis=1)


def demo(data: Path, seed: int) -> None:
    """AUC-ROC, AUC-PR (pooled windows) and VUS-PR (mean over machines) on the demo's test
    rows for each aggregation, with demo.toml's model and with the multivariate recipe."""
    import polars as pl

    from anomae.api import _pipeline, _table, fit_series
    from anomae.holdout import holdout_blocks
    from anomae.io import read_series
    from anomae.pipeline import load_pipeline

    train, test = (pl.read_parquet(data / f"{p}.parquet") for p in ("train", "test"))
    names = tuple(c for c in train.columns if c not in ("timestamp", "series", "label", "anomaly"))
    table = _table("timestamp", "series", "label")
    print("| model | aggregation | AUC-ROC | AUC-PR | VUS-PR |\n|---|---|---:|---:|---:|")
    for which in ("demo.toml", "multivariate"):
        pipe = (
            load_pipeline(ROOT / "pipelines" / "demo.toml")
            if which == "demo.toml"
            else _pipeline("multivariate", {}, "feature_errors")
        )
        pipe = dataclasses.replace(pipe, train={**pipe.train, "progress": False, "seed": seed})
        rows, _ = read_series(train.drop("anomaly"), table, names)
        model = fit_series(pipe, rows, names)
        length = model.window
        cal, _ = held_out(model.detector, holdout_blocks(pipe, rows)[1], length)
        context = {s.name: s.values[len(s.values) - length + 1 :] for s in rows}
        labels, scores, fes = [], [], []
        for s in read_series(test.drop("anomaly"), table, names)[0]:
            out = model.detector.score_series(np.concatenate([context[s.name], s.values]))
            labels.append(test.filter(pl.col("series") == s.name)["label"].to_numpy() > 0)
            scores.append(out.score.astype(np.float64))
            fes.append(out.feature_error.astype(np.float64))
        cuts = np.cumsum([lab.size for lab in labels])[:-1]
        fe = np.concatenate(fes)
        variants = [("mean (shipped)", np.concatenate(scores))]
        variants += [
            (f"{st} {how}", combine(standardise(fe, cal, st), how))
            for st in STATS
            for how in COMBINE
        ]
        for name, sc in variants:
            roc, pr, vus = demo_measures(np.split(sc, cuts), labels)
            print(f"| {which} | {name} | {roc:.3f} | {pr:.3f} | {vus:.3f} |", flush=True)


def demo_measures(parts: list[np.ndarray], labels: list[np.ndarray]) -> tuple[float, float, float]:
    """The demo's measure of per-machine window scores ``parts`` against their ``labels``
    (bool): AUC-ROC and AUC-PR pooled over the machines, VUS-PR averaged over them."""
    from anomae.eval import metrics

    sc, label = np.concatenate(parts), np.concatenate(labels)
    vus = [
        metrics.vus_pr(p, lab.astype(np.int8), 100) for p, lab in zip(parts, labels, strict=True)
    ]
    return metrics.auc_roc(sc, label), metrics.auc_pr(sc, label), float(np.mean(vus))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "demo",
                    help="folder with the demo's train.parquet and test.parquet")  # fmt: skip
    args = ap.parse_args()
    if not (args.data / "test.parquet").exists():
        print(f"skipped: no demo data in {args.data} (anomae demo-data --out {args.data})")
        return
    demo(args.data, args.seed)


if __name__ == "__main__":
    main()
