"""Label-free model choice (``anomae tune``, ``[tune]`` in a pipeline): only normal data.

Every candidate of a small grid (window length, code size ``[model] hidden``, Gaussian
noise, centring) is trained for a few epochs on the fit blocks of the training rows
(:func:`anomae.holdout.split_holdout`) and exported as ``anomae train`` would. On the
held-out normal blocks it is then measured twice, with onnxruntime as it will score:

* ``recon_error``: mean squared reconstruction error of the clean held-out windows, in
  scaled units, each feature unweighted (the error weights are fitted on these very rows);
* ``vus_pr``: VUS-PR of its scores on copies of the held-out blocks with anomalies
  injected (:mod:`anomae.inject`), the labels being the injected rows.

Candidates are ranked by ``vus_pr`` (higher first), then ``recon_error`` (lower first); the
winner is trained again with the full ``[train]`` settings and exported, and its card holds
the grid, every candidate's scores and the choice in ``card.training["tune"]``. The data's
label column is never read. Every candidate scores the same rows: those from the largest
window's first window end on, so window lengths compare fairly.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from anomae.grid import TuneSection, candidate_pipeline, candidates
from anomae.io import SeriesData, TableSpec
from anomae.spec import ModelCard


@dataclass
class TuneResult:
    pipe: Any  # the winning pipeline, full [train] settings
    record: dict[str, Any]  # what card.training["tune"] holds
    candidates: list[dict[str, Any]] = field(default_factory=list)


def label_free(table: TableSpec) -> TableSpec:
    """``table`` without a label column: the label is excluded, never parsed."""
    if table.label is None:
        return table
    return replace(table, label=None, exclude=(*table.exclude, table.label))


def label_note(paths: list[str], label: str | None) -> str | None:
    """A line saying the files' label column is ignored, or None when they have none."""
    from anomae.textfile import columns_of

    if not label:
        return None
    found = []
    for p in paths:
        if label in columns_of(Path(p)):
            found.append(str(p))
    if not found:
        return None
    return f"label column '{label}' in {', '.join(found)} ignored: tuning uses no labels"


def tune(
    pipe: Any,
    series: list[SeriesData],
    features: tuple[str, ...],
    echo: Callable[[str], None] = print,
    keep: Path | None = None,
    calibrated: bool = False,
) -> TuneResult:
    """Train and rank every candidate of ``pipe.tune``; return the winner's pipeline.

    Candidate ``i``'s model is written to ``keep / f"c{i}.onnx"`` when ``keep`` is given
    (``bench/tune_hindsight.py`` scores them on labelled data), else to a temporary folder.
    ``calibrated``: the winner is calibrated on the held-out blocks next, so a budget that
    no candidate's held-out windows can resolve (the shortest window gives the most) is
    refused before the grid."""
    from anomae.detector import Detector
    from anomae.errors import PipelineError
    from anomae.holdout import HOLDOUT_BLOCKS, split_holdout
    from anomae.inject import injected_copies, rows_needed
    from anomae.train.step import events_resolvable, train_step
    from anomae.train.weights import constant_features

    section = _with_period(pipe, series, echo)
    grid = section.grid(len(features))
    cands = candidates(section, len(features))
    longest = max(grid["window"])
    cal = pipe.calibrate
    fit_rows, held = split_holdout(series, cal.holdout, cal.holdout_spread, min_rows=longest)
    need = rows_needed(longest)
    if cal.holdout <= 0:
        raise PipelineError(f"{pipe.source} [calibrate]: tuning needs held-out rows: holdout > 0")
    if calibrated:
        shortest = replace(pipe, window=replace(pipe.window, length=min(grid["window"])))
        events_resolvable(shortest, held, series)
    scored = ~constant_features(fit_rows)
    train_rows = np.concatenate(fit_rows)
    copies = injected_copies(
        held,
        train_rows,
        lead=longest,
        seed=section.seed,
        copies=section.copies,
        scored=scored,
        unit=section.unit,
    )
    if not copies:
        per_series = (
            HOLDOUT_BLOCKS * need if cal.holdout_spread else int(np.ceil(need / cal.holdout))
        )
        raise PipelineError(
            f"{pipe.source}: too little data to tune: injecting anomalies needs held-out blocks "
            f"of {need} rows (the largest window, {longest}, or 60 rows, then up to 180 "
            f"anomalous rows and 60 normal ones), i.e. series of at least {per_series:,} rows "
            f"with holdout {cal.holdout} ({cal.holdout_from}); the longest series has "
            f"{max(s.values.shape[0] for s in series):,}. Give longer series, or a grid of "
            f"shorter windows"
        )
    clean = [b for b in held if b.shape[0] >= longest]
    vus_window = section.vus_window or longest
    echo(
        f"tuning {len(cands)} candidates ({section.epochs} epochs each) on "
        f"{sum(b.shape[0] for b in fit_rows):,} fit rows; scoring on {len(clean)} held-out "
        f"blocks and {len(copies)} copies with injected anomalies"
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="anomae-tune-") as tmp:
        for i, cand in enumerate(cands):
            t0 = time.perf_counter()
            path = Path(keep or tmp) / f"c{i}.onnx"
            train_step(
                candidate_pipeline(pipe, cand, section), series, features, path,
                min_rows=longest,
            )  # fmt: skip
            det = Detector.load(path, threads=0)
            row = {
                **dataclasses.asdict(cand),
                **evaluate(det, clean, copies, longest, vus_window),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            row["hidden"] = list(cand.hidden)
            rows.append(row)
            echo(
                f"[{i + 1:>2}/{len(cands)}] {cand.label:<51} vus_pr {row['vus_pr']:.3f}  "
                f"recon {row['recon_error']:.4f}  {row['seconds']:.1f}s"
            )
    order = sorted(
        range(len(rows)), key=lambda j: (-_num(rows[j]["vus_pr"]), rows[j]["recon_error"])
    )
    best = order[0]
    for rank, j in enumerate(order, 1):
        rows[j]["rank"] = rank
    record = {
        "grid": grid,
        "epochs": section.epochs,
        "train_stride": section.train_stride,
        "seed": section.seed,
        "vus_window": vus_window,
        "injected": {
            "copies": len(copies),
            "unit": section.unit,
            "kinds": sorted({c.kind for c in copies}),
            "rows": int(sum(c.label.size for c in copies)),
            "anomalous_rows": int(sum(int(c.label.sum()) for c in copies)),
        },
        "ranked_by": "vus_pr on injected anomalies, then recon_error",
        "candidates": rows,
        "choice": best,
    }
    winner = cands[best]
    echo(f"chose [{best + 1}] {winner.label}")
    return TuneResult(candidate_pipeline(pipe, winner), record, rows)


def _with_period(pipe: Any, series: list[SeriesData], echo: Callable[[str], None]) -> TuneSection:
    """``pipe.tune`` with the training rows' clear period as one more window length
    (``[tune] period``, :mod:`anomae.period`) when it is not in the grid and the held-out
    blocks are long enough to inject anomalies after a window that long."""
    from anomae.holdout import split_holdout
    from anomae.inject import rows_needed
    from anomae.period import data_period

    section: TuneSection = pipe.tune
    found = data_period([s.values for s in series]) if section.period else None
    if found is None or found in section.window:
        return section
    longest = max(*section.window, found)
    cal = pipe.calibrate
    held = split_holdout(series, cal.holdout, cal.holdout_spread, min_rows=longest)[1]
    if max((b.shape[0] for b in held), default=0) < rows_needed(longest):
        echo(f"the training rows' period, {found} rows, is not tried as a window: held-out "
             f"blocks of {rows_needed(longest)} rows are needed to tune it")  # fmt: skip
        return section
    echo(f"the training rows' period, {found} rows, is tried as a window too")
    return replace(section, window=(*section.window, found))


def tuned_train_step(
    pipe: Any,
    series: list[SeriesData],
    features: tuple[str, ...],
    out: Path,
    echo: Callable[[str], None] = print,
    calibrated: bool = True,
) -> tuple[Any, ModelCard, dict[str, Any], list[np.ndarray]]:
    """:func:`tune`, then :func:`anomae.train.step.train_step` of the winner (full settings)
    to ``out``. Returns (winning pipeline, card with ``training["tune"]`` (not yet written
    to ``out``: the caller rewrites the card with its threshold), summary, calibration
    blocks). ``calibrated``: the caller calibrates on the held-out blocks next (not on data
    of its own), so a budget they cannot resolve is refused before the grid."""
    from anomae.train.step import train_step

    result = tune(pipe, series, features, echo, calibrated=calibrated)
    echo(table(result.candidates))
    card, summary, cal_rows = train_step(result.pipe, series, features, out, calibrated=calibrated)
    return result.pipe, with_record(card, result.record), summary, cal_rows


def evaluate(
    det: Any, clean: list[np.ndarray], copies: list[Any], longest: int, vus_window: int
) -> dict[str, Any]:
    """``recon_error`` on ``clean`` blocks, and VUS-PR (overall and per kind) on ``copies``,
    each copy's rows scored from row ``longest - 1`` on (window-end scores)."""
    from anomae.eval.metrics import vus_pr

    card = det.card
    w = np.asarray(card.scaler.error_weight or np.ones(len(card.features)), np.float64)
    on = w > 0
    errs = []
    for b in clean:
        fe = det.score_series(b).feature_error.astype(np.float64)
        errs.append(fe[:, on] / w[on])
    recon = float(np.nanmean(np.concatenate(errs))) if errs else float("nan")
    skip = card.window.length - 1
    by_kind: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for c in copies:
        s = det.score_series(c.rows).score.astype(np.float64)[longest - 1 - skip :]
        ss, ll = by_kind.setdefault(c.kind, ([], []))
        ss.append(np.where(np.isnan(s), -np.inf, s))
        ll.append(c.label[longest - 1 :])
    per_kind = {
        k: vus_pr(np.concatenate(ss), np.concatenate(ll), vus_window)
        for k, (ss, ll) in by_kind.items()
    }
    all_s = np.concatenate([np.concatenate(ss) for ss, _ in by_kind.values()])
    all_l = np.concatenate([np.concatenate(ll) for _, ll in by_kind.values()])
    return {"vus_pr": vus_pr(all_s, all_l, vus_window), "recon_error": recon, "per_kind": per_kind}


def _num(x: float) -> float:
    return x if np.isfinite(x) else -np.inf


def with_record(card: ModelCard, record: dict[str, Any]) -> ModelCard:
    """``card`` with the tuning record in ``training["tune"]``."""
    return replace(card, training={**card.training, "tune": record})


def table(rows: list[dict[str, Any]]) -> str:
    """The candidates as a text table, best first."""
    lines = [
        f"{'rank':>4}  {'window':>6}  {'hidden':<10} {'noise':>5}  {'center':<6} "
        f"{'vus_pr':>7}  {'recon':>8}"
    ]
    for r in sorted(rows, key=lambda r: r["rank"]):
        lines.append(
            f"{r['rank']:>4}  {r['window']:>6}  {str(r['hidden']):<10} {r['noise']:>5g}  "
            f"{'on' if r['center'] else 'off':<6} {r['vus_pr']:>7.3f}  {r['recon_error']:>8.4f}"
        )
    return "\n".join(lines)
