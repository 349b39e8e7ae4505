"""Periodic data: the recipes' windows against a window as long as the period.

``[window] period = true`` (:mod:`anomae.period`) lengthens a recipe's window to the
training rows' clear period. This compares both on anomae's own periodic data, made here
(no periodic benchmark is in ../shared):

* ``ecg``: one ECG-like channel (P, QRS, T waves of Gaussians), each beat's length jittered
  by 3 %, its amplitude by 5 %, noise and a slow baseline wander; six anomalous beats in the
  test part, three kinds in turn: a wide inverted beat without P wave (PVC-like), a QRS at
  55 % height, an inverted T wave. Univariate recipe.
* ``cycle``: a machine of 6 sensors sharing one cycle (each a different harmonic mix and
  phase); anomalous cycles: one sensor's shape inverted for a cycle, a cycle stretched 30 %,
  two sensors' amplitudes swapped. Multivariate recipe; a row every 10 minutes (the ECG's:
  one a minute) and 240 training cycles (the ECG: 80), so that the held-out rows resolve its
  budget of false events a day.

Per period and training seed: VUS-PR of the window scores (buffer 100 rows, as ``anomae
evaluate``), event F1 (TSB-AD's: point precision, event recall) and false events of the
recipe's own alarm (its calibration and post-rule; the univariate recipe's likelihood).

``--tune`` also runs ``anomae tune`` with the recipe's model on the recipe's window (the
period is added by ``[tune] period``) and prints its label-free pick beside the window that
ranked the real anomalies better.

    python bench/periodic.py [--kinds ecg cycle] [--periods 40 100 200] [--seeds 0 1] [--tune]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _gauss(t: np.ndarray, mu: float, s: float, a: float) -> np.ndarray:
    return a * np.exp(-(((t - mu) / s) ** 2))


def ecg_beat(n: int, kind: int) -> np.ndarray:
    t = np.linspace(0, 1, n)
    p, q, r, s = _gauss(t, .2, .04, .15), _gauss(t, .4, .012, -.15), 1.0, -.25  # fmt: skip
    tw = _gauss(t, .7, .06, .3)
    if kind == 1:  # PVC-like: wide, inverted, no P wave
        return _gauss(t, .45, .05, -.8) + _gauss(t, .6, .06, .5)
    if kind == 2:
        r = 0.55
    if kind == 3:
        tw = -tw
    return p + q + _gauss(t, .43, .012, r) + _gauss(t, .46, .012, s) + tw


def cycle_rows(n: int, kind: int, phase: np.ndarray, mix: np.ndarray) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if kind == 2:  # stretched: the cycle runs 30 % slower, cut at its length
        t = t / 1.3
    rows = np.stack([mix[j, 0] * np.sin(t + phase[j]) + mix[j, 1] * np.sin(2 * t + 2 * phase[j])
                     + mix[j, 2] * np.sin(3 * t) for j in range(len(phase))], axis=1)  # fmt: skip
    if kind == 1:
        rows[:, 0] = -rows[:, 0]
    if kind == 3:
        rows[:, [1, 2]] = rows[:, [2, 1]]
    return rows


def make(
    kind: str, period: int, cycles: int, seed: int, anomalies: int
) -> tuple[np.ndarray, np.ndarray]:
    """``cycles`` cycles of ``kind`` (module docstring), ``anomalies`` of them anomalous;
    the rows and their 0/1 labels."""
    rng = np.random.default_rng(seed)
    where: set[int] = set()
    if anomalies:
        where = set(rng.choice(np.arange(10, cycles - 5), anomalies, replace=False).tolist())
    shape = np.random.default_rng(99)  # the machine's own shape: the same in every part
    phase, mix = shape.uniform(0, 2 * np.pi, 6), shape.uniform(0.2, 1.0, (6, 3))
    parts, labels = [], []
    for b in range(cycles):
        n = int(round(period * rng.normal(1, 0.03)))
        k = 1 + b % 3 if b in where else 0
        if kind == "ecg":
            rows = (ecg_beat(n, k) * rng.normal(1, 0.05))[:, None]
        else:
            rows = cycle_rows(n, k, phase, mix) * rng.normal(1, 0.05)
        parts.append(rows)
        labels.append(np.full(n, b in where))
    x = np.concatenate(parts)
    x = x + rng.normal(0, 0.02, x.shape) + 0.05 * np.sin(np.arange(len(x)) / 800)[:, None]
    return x, np.concatenate(labels).astype(np.int8)


def training(kind: str, period: int, seed: int) -> tuple[np.ndarray, Any, str, int]:
    """The training rows of ``kind``, as a table, its recipe and its seconds per row."""
    import pandas as pd

    train, _ = make(kind, period, 80 if kind == "ecg" else 240, seed, 0)
    cols = [f"s{j}" for j in range(train.shape[1])]
    step = 60 if kind == "ecg" else 600  # cycle: enough days to resolve the events budget
    frame = pd.DataFrame(train, columns=cols).assign(timestamp=np.arange(len(train)) * step)
    return train, frame, "univariate" if kind == "ecg" else "multivariate", step


def run(kind: str, period: int, seed: int, use_period: bool) -> dict[str, float]:
    import pandas as pd

    import anomae
    from anomae.eval.metrics import event_f1, vus_pr

    train, frame, recipe, step = training(kind, period, seed)
    test, label = make(kind, period, 80, seed + 100, 6)
    cols = list(frame.columns[:-1])
    model = anomae.fit(frame, recipe=recipe, seed=seed, period=use_period)
    ctx = model.window - 1
    rows = np.concatenate([train[len(train) - ctx :], test])
    t0 = (len(train) - ctx) * step
    scored = pd.DataFrame(rows, columns=cols).assign(timestamp=t0 + np.arange(len(rows)) * step)
    windows, _ = model.score(scored)
    score = np.nan_to_num(windows["score"].to_numpy()[-len(test):].astype(float), nan=-np.inf)
    flags = windows["in_event"].to_numpy()[-len(test):].astype(bool)
    ev = event_f1(flags, label)
    starts = np.flatnonzero(flags & ~np.concatenate([[False], flags[:-1]]))
    false = sum(1 for s in starts if not label[s : s + np.argmin(flags[s:]) or None].any())
    return {"window": model.window, "vus_pr": vus_pr(score, label, 100), "event_f1": ev["f1"],
            "false": false}  # fmt: skip


def tune_pick(kind: str, period: int, seed: int) -> tuple[int, dict[int, float]]:
    """``anomae tune``'s label-free pick between the recipe's window and the period (which
    ``[tune] period`` adds), with the recipe's own model: the window picked, and the
    injected-anomaly VUS-PR of each window."""
    from anomae.api import _pipeline
    from anomae.io import read_series
    from anomae.tune import tune

    _, frame, recipe, _ = training(kind, period, seed)
    pipe = _pipeline(recipe, {}, "bench")
    grid = {"window": [pipe.window.length], "hidden": [pipe.model["hidden"]],
            "noise": [pipe.noise.get("sigma", 0.0)], "center": [False]}  # fmt: skip
    pipe = _pipeline(recipe, {"tune": grid}, "bench")
    series, features = read_series(frame)
    result = tune(pipe, series, features, echo=lambda _: None)
    rows = result.candidates
    return rows[result.record["choice"]]["window"], {r["window"]: r["vus_pr"] for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", nargs="+", default=["ecg", "cycle"])
    ap.add_argument("--periods", type=int, nargs="+", default=[40, 100, 200])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--tune", action="store_true",
                    help="also print anomae tune's pick between the two windows")  # fmt: skip
    a = ap.parse_args()
    print("| data | period | seed | recipe window | VUS-PR | event F1 | false events | "
          "period window | VUS-PR | event F1 | false events |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    gains: dict[str, list[float]] = {}
    picks = []
    for kind in a.kinds:
        for period in a.periods:
            for seed in a.seeds:
                t0 = time.perf_counter()
                base, per = run(kind, period, seed, False), run(kind, period, seed, True)
                gains.setdefault(kind, []).append(per["vus_pr"] / base["vus_pr"])
                if a.tune:
                    better = per["window"] if per["vus_pr"] > base["vus_pr"] else base["window"]
                    picks.append((kind, period, seed, *tune_pick(kind, period, seed), better))
                print(f"| {kind} | {period} | {seed} | " + " | ".join(
                    f"{r['window']} | {r['vus_pr']:.3f} | {r['event_f1']:.3f} | {r['false']}"
                    for r in (base, per)) + f" |  <!-- {time.perf_counter() - t0:.0f} s -->",
                    flush=True)  # fmt: skip
    for kind, g in gains.items():
        print(f"\n{kind}: VUS-PR, period window over recipe window: median "
              f"{np.median(g):.2f}, min {min(g):.2f}, max {max(g):.2f} ({len(g)} runs)")
    if picks:
        print("\n| data | period | seed | tune's pick | injected VUS-PR by window | better on "
              "the real anomalies |\n|---|---:|---:|---:|---|---:|")  # fmt: skip
        for kind, period, seed, pick, inj, better in picks:
            shown = ", ".join(f"{w}: {v:.3f}" for w, v in inj.items())
            print(f"| {kind} | {period} | {seed} | {pick} | {shown} | {better} |")


if __name__ == "__main__":
    main()
