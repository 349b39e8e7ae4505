"""Prediction instead of reconstruction for the multivariate recipe (issue 9): a prototype.

The recipe's linear AE sees a window's last row at its input and partly passes an
anomalous value through to its reconstruction. Here the last row is masked at the input
(set to 0 in scaled units, the training mean), in training and in scoring, so the network
has to predict it from the rows before it, and a window is scored by that prediction's
error. Each model is trained with anomae's own loop (:func:`anomae.train.fit.fit`, the
recipe's settings and seed, on the windows :func:`anomae.train.step.train_step` would
build); the mask and, for "last-row loss", a loss on the last row only are patched into
that loop (:func:`predicting`). Scoring is torch only (no ONNX export): each sensor's
squared error, over the window's last row ("last") or averaged over the window
("window"), in units of its held-out 0.99 quantile floored at the median sensor's (the
recipe's ``[weights] errors = "spread"``: :func:`anomae.train.weights._weights`), then the
maximum over sensors left in the score; the threshold is the pipeline's own calibration
(``quantile 0.99``) on the calibration blocks the recipe uses. Rows:

* ``recipe (torch)``: the recipe retrained and scored here (a check: it must match the
  first row, the recipe as ``anomae evaluate`` runs it);
* ``recipe, last-row error``: the same model, error of the last row only (no mask);
* ``a) masked, last-row error``: last row masked, trained on the whole window;
* ``b) masked, window error``: the same model, error over the whole window;
* ``c) max of a and b``: each over its own held-out 0.99 quantile, then the larger,
  recalibrated on the calibration windows;
* ``c') max of a and the recipe's score``: the same with the unmasked recipe's score;
* ``a') masked, last-row loss``: trained on the last row's error only (a forecaster
  through the 8-unit code);
* ``d) 16 rows, masked, last-row error``: a) with 16-row windows;
* ``e) / e')``: a) / a') with each sensor's last-row error averaged over its last
  ``length`` windows (causal) before the maximum over sensors: a prediction residual
  smoothed over as many rows as the recipe's window error averages (added after a-d ran,
  to tell "predicted, not reconstructed" from "one row, not eight").

On SMAP, SKAB (``pipelines/skab.toml``) and SKAB anomaly-free the columns are those of
:mod:`multivariate_variants` (ratio to the shipped PCA); on the demo (``data/demo``,
``anomae demo-data``) AUC-ROC and AUC-PR pooled over the test windows and VUS-PR per
machine, as :mod:`feature_errors`. Nothing is tuned on labels: every variant was fixed
before it ran.

    OMP_NUM_THREADS=1 python bench/predict_variants.py [--seed 0]
                                                   [--only smap|skab|skab_anomaly_free|demo]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from multivariate_variants import keep_scores, row, shipped  # noqa: E402

from anomae.eval import benchmark as B  # noqa: E402

PIPELINES = ("smap", "skab", "skab_anomaly_free")


@dataclasses.dataclass(frozen=True)
class Mode:
    """How a model is trained: window ``length`` (None: the recipe's), last row masked at
    the input, loss over the whole window or its last row."""

    length: int | None = None
    mask: bool = False
    loss: str = "window"


MODES = {
    "recipe": Mode(),
    "masked": Mode(mask=True),
    "masked last loss": Mode(mask=True, loss="last"),
    "masked 16": Mode(length=16, mask=True),
}


class MaskLast(nn.Module):
    """``inner`` with the window's last row set to 0 (the scaled training mean) at its input."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.layout = getattr(inner, "layout", "flat")

    def forward(self, x: torch.Tensor) -> Any:
        return self.inner(torch.cat([x[:, :-1], torch.zeros_like(x[:, -1:])], dim=1))


@contextlib.contextmanager
def predicting(mode: Mode) -> Iterator[None]:
    """anomae's training loop with ``mode``'s mask and loss patched in (restored after)."""
    import anomae.train.fit as F

    saved = (F.build_model, F.nn, F._masked_sse)

    def masked_model(cfg: Any, length: int, n_features: int) -> nn.Module:
        return MaskLast(saved[0](cfg, length, n_features))

    def last_mse(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(recon[:, -1], x[:, -1])

    def last_sse(
        recon: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return saved[2](recon[:, -1:], x0[:, -1:], None if mask is None else mask[:, -1:])

    if mode.mask:
        F.build_model = masked_model  # type: ignore[assignment]
    if mode.loss == "last":  # the loop's two losses: without and with missing cells
        F.nn = types.SimpleNamespace(functional=types.SimpleNamespace(mse_loss=last_mse))  # type: ignore[assignment]
        F._masked_sse = last_sse
    try:
        yield
    finally:
        F.build_model, F.nn, F._masked_sse = saved


@dataclasses.dataclass
class Trained:
    model: nn.Module
    center: torch.Tensor
    scale: torch.Tensor
    gate: torch.Tensor  # 1 for sensors in the score, 0 for those constant in training
    length: int
    weight_blocks: list[np.ndarray]  # rows the spread weights are measured on
    cal_blocks: list[np.ndarray]  # rows the threshold is calibrated on

    @torch.no_grad()
    def errors(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Per-sensor squared errors ``[windows, F]`` of ``rows``: "last" and "window"."""
        x = (torch.from_numpy(np.ascontiguousarray(rows, np.float32)) - self.center) / self.scale
        obs = (~torch.isnan(x)).float() * self.gate
        x = torch.nan_to_num(x, nan=0.0) * self.gate
        win = x.unfold(0, self.length, 1).transpose(1, 2)  # [n, L, F]
        ob = obs.unfold(0, self.length, 1).transpose(1, 2)
        recon, _ = self.model(win)
        sq = (recon - win) ** 2 * ob
        whole = sq.sum(1) / ob.sum(1).clamp(min=1.0)
        last = sq[:, -1].double().numpy()
        # causal mean over the last `length` windows (fewer at the start of the rows)
        c = np.cumsum(np.vstack([np.zeros((1, last.shape[1])), last]), axis=0)
        k = np.minimum(np.arange(1, last.shape[0] + 1), self.length)
        ends = np.arange(1, last.shape[0] + 1)
        smooth = (c[ends] - c[ends - k]) / k[:, None]
        return {"last": last, "window": whole.double().numpy(), "last mean": smooth}


def train(pipe: Any, series: list[Any], features: tuple[str, ...], mode: Mode) -> Trained:
    """``mode``'s model fitted as :func:`anomae.train.step.train_step` fits the recipe's."""
    from anomae.holdout import holdout_blocks
    from anomae.spec import WindowSpec
    from anomae.train.config import train_config
    from anomae.train.fit import fit
    from anomae.train.step import fit_scaler
    from anomae.train.weights import constant_features
    from anomae.windows import sliding_windows

    length = mode.length or pipe.window.length
    pipe = dataclasses.replace(pipe, window=dataclasses.replace(pipe.window, length=length))
    fit_rows, cal_rows, _ = holdout_blocks(pipe, series)
    scaler = fit_scaler(fit_rows, features)
    center, scale = (np.asarray(v, np.float32) for v in (scaler.center, scaler.scale))
    spec = WindowSpec(length, pipe.window.train_stride)
    windows = np.concatenate([sliding_windows((r - center) / scale, spec) for r in fit_rows])
    with predicting(mode):
        model = fit(np.ascontiguousarray(windows, np.float32), train_config(pipe)).model
    ignore = constant_features(fit_rows) if pipe.weights.constant == "ignore" else None
    gate = torch.ones(len(features)) if ignore is None else torch.from_numpy(~ignore).float()
    return Trained(
        model.eval(),
        torch.from_numpy(center),
        torch.from_numpy(scale),
        gate,
        length,
        [b for b in cal_rows if b.shape[0] >= length] or fit_rows,
        cal_rows or [s.values for s in series],
    )


def spread_score(fe: np.ndarray, held: np.ndarray, gate: np.ndarray) -> np.ndarray:
    """The recipe's window score: each scored sensor's error over its held-out 0.99 quantile
    (floored at the median sensor's), the maximum over sensors."""
    from anomae.train.weights import SPREAD_FLOOR, SPREAD_Q, _weights

    ignore = gate == 0
    w = np.asarray(_weights(np.quantile(held, SPREAD_Q, axis=0), ignore, True, SPREAD_FLOOR))
    return np.max(np.where(ignore, -np.inf, fe * w), axis=1)


@dataclasses.dataclass
class Scores:
    """One variant on one model set: window scores of given rows and of the calibration rows."""

    rows: np.ndarray
    cal: np.ndarray


def variants(models: dict[str, Trained], rows: list[np.ndarray]) -> dict[str, list[Scores]]:
    """Every variant's window scores of each of ``rows`` (windows end at each block's rows
    ``length - 1`` on; a 16-row model's first 8 are NaN where an 8-row one scores)."""

    def of(m: Trained, kind: str) -> list[Scores]:
        gate = m.gate.numpy()
        held = np.concatenate([m.errors(b)[kind] for b in m.weight_blocks])
        cal = np.concatenate([m.errors(b)[kind] for b in m.cal_blocks if b.shape[0] >= m.length])
        out = []
        for r in rows:
            s = np.full(r.shape[0], np.nan)
            if r.shape[0] >= m.length:
                s[m.length - 1 :] = spread_score(m.errors(r)[kind], held, gate)
            out.append(Scores(s, spread_score(cal, held, gate)))
        return out

    def larger(x: list[Scores], y: list[Scores]) -> list[Scores]:
        qx, qy = (float(np.nanquantile(v[0].cal, 0.99)) for v in (x, y))
        return [Scores(np.fmax(a.rows / qx, b.rows / qy), np.fmax(a.cal / qx, b.cal / qy))
                for a, b in zip(x, y, strict=True)]  # fmt: skip

    rec, pred = models["recipe"], models["masked"]
    a, b = of(pred, "last"), of(pred, "window")
    recipe = of(rec, "window")
    return {
        "recipe (torch)": recipe,
        "recipe, last-row error": of(rec, "last"),
        "a) masked, last-row error": a,
        "b) masked, window error": b,
        "c) max of a and b": larger(a, b),
        "c') max of a and the recipe's score": larger(a, recipe),
        "a') masked, last-row loss": of(models["masked last loss"], "last"),
        "d) 16 rows, masked, last-row error": of(models["masked 16"], "last"),
        "e) a, each sensor's error averaged over its last 8 windows": of(pred, "last mean"),
        "e') a', the same": of(models["masked last loss"], "last mean"),
    }


def bench_row(name: str, seed: int) -> None:
    from anomae.calibrate import calibrate
    from anomae.pipeline import load_pipeline

    pipe = load_pipeline(ROOT / "pipelines" / f"{name}.toml")
    pipe = dataclasses.replace(pipe, train={**pipe.train, "progress": False, "seed": seed})
    try:
        cases = B.load_cases(pipe.benchmark, None, pipe.data.table())
    except B.DataMissing as exc:
        print(f"\n## {name}: skipped, {exc}")
        return
    t0 = time.process_time()
    kept = keep_scores(pipe, cases)
    models: dict[bytes, dict[str, Trained]] = {}  # SKAB anomaly-free: one training file
    per_case: list[dict[str, list[Scores]]] = []
    for case in cases:
        key = case.train.tobytes()
        if key not in models:
            series = [B._rows(case)]
            models[key] = {
                k: train(pipe, series, tuple(case.features), m) for k, m in MODES.items()
            }
        per_case.append(variants(models[key], [B._full(case)]))
    print(f"\n## {name} ({len(cases)} cases, seed {seed}, {time.process_time() - t0:.0f} s CPU)\n")
    print("| variant | ratio | > PCA | F1 | FAR | event F1 | best base ev | VUS-PR |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(row("recipe as shipped (anomae evaluate)", pipe, cases, kept, shipped), flush=True)
    params = {k: v for k, v in pipe.calibrate.params().items() if k != "interval_s"}
    for label in per_case[0]:
        new = []
        for case, k, v in zip(cases, kept, per_case, strict=True):
            s = v[label][0]
            cal = s.cal[np.isfinite(s.cal)]
            th = calibrate(cal, pipe.calibrate.method, **params).value
            new.append({**k, "anomae": (s.rows, B.Scored(s.rows[case.train.shape[0] :], th))})
        print(row(label, pipe, cases, new, shipped), flush=True)


def demo(data: Path, seed: int) -> None:
    """AUC-ROC, AUC-PR (pooled test windows) and VUS-PR (mean over machines) on the demo."""
    import polars as pl
    from feature_errors import demo_measures

    from anomae.api import _pipeline, _table
    from anomae.io import read_series

    if not (data / "test.parquet").exists():
        print(f"\n## demo: skipped, no demo data in {data} (anomae demo-data --out {data})")
        return
    train_df, test_df = (pl.read_parquet(data / f"{p}.parquet") for p in ("train", "test"))
    drop = ("timestamp", "series", "label", "anomaly")
    names = tuple(c for c in train_df.columns if c not in drop)
    table = _table("timestamp", "series", "label")
    pipe = _pipeline("multivariate", {"train": {"progress": False, "seed": seed}}, "demo")
    t0 = time.process_time()
    series, _ = read_series(train_df.drop("anomaly"), table, names)
    models = {k: train(pipe, series, names, m) for k, m in MODES.items()}
    context = {s.name: s.values[-15:] for s in series}  # 16-row windows need 15 rows before
    tests = read_series(test_df.drop("anomaly"), table, names)[0]
    rows = [np.concatenate([context[s.name], s.values]) for s in tests]
    labels = [test_df.filter(pl.col("series") == s.name)["label"].to_numpy() > 0 for s in tests]
    scored = variants(models, rows)
    print(f"\n## demo ({len(tests)} machines, seed {seed}, {time.process_time() - t0:.0f} s CPU)\n")
    print("| variant | AUC-ROC | AUC-PR | VUS-PR |\n|---|---:|---:|---:|")
    for name, per in scored.items():
        roc, pr, vus = demo_measures([s.rows[15:] for s in per], labels)
        print(f"| {name} | {roc:.3f} | {pr:.3f} | {vus:.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=(*PIPELINES, "demo"), default=None)
    ap.add_argument("--seed", type=int, default=0, help="training seed of every model")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "demo", help="demo data folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in PIPELINES:
        if args.only in (None, name):
            bench_row(name, args.seed)
    if args.only in (None, "demo"):
        demo(args.data, args.seed)


if __name__ == "__main__":
    main()
