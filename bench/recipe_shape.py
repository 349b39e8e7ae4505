"""One metric per series: the univariate recipe against the multivariate one, on data
that set neither (what ``--recipe auto`` chooses between).

* SMAP's telemetry column alone (column 0 of each of the 12 channels in
  ``../shared/datasets/smap``), run as ``anomae evaluate`` runs a ``dataset = "matrix"``
  pipeline (same loaders, calibration, post-rules; the baselines through each recipe's
  alarm). The multivariate recipe calibrates at the 0.99 quantile (rows without time) and
  keeps constant features (one channel's telemetry is flat in training).
* anomae's ECG-like beats (``bench/periodic.py``'s ``ecg``), periods 40 and 100, seeds 0
  and 1; the multivariate recipe at the 0.99 quantile (3,200 one-minute rows cannot
  resolve its budget of false events per week, as its refusal says).

    OMP_NUM_THREADS=1 python bench/recipe_shape.py [--skip-smap] [--skip-ecg]

SMAP is skipped with a message where ``../shared/datasets/smap`` is absent.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
SMAP = ROOT.parent / "shared" / "datasets" / "smap"
OVER = {"multivariate": {"calibrate": {"method": "quantile", "q": 0.99},
                         "weights": {"constant": "keep"}}}  # fmt: skip


def smap_rows(recipe: str) -> list[str]:
    """One line per detector: the SMAP telemetry column through ``recipe``."""
    import anomae.eval.benchmark as bench
    from anomae.events import runs
    from anomae.pipeline import laid_over, parse_pipeline, recipe_file

    doc = laid_over(
        __import__("tomllib").loads(recipe_file(recipe).read_text()),
        {**OVER.get(recipe, {}), "benchmark": {"dataset": "matrix", "data": str(SMAP),
                                               "baselines": ["ksigma", "windowed_gaussian"]}},
    )  # fmt: skip
    pipe = parse_pipeline(doc, f"recipe_shape ({recipe})")
    loaded = bench.load_cases

    def column0(*a: Any, **k: Any) -> list[Any]:
        return [dataclasses.replace(c, features=c.features[:1], train=c.train[:, :1].copy(),
                                    test=c.test[:, :1].copy())
                for c in loaded(*a, **k)]  # fmt: skip

    got: list[Any] = []
    bench.load_cases = column0
    try:
        report = bench.run_benchmark(pipe, on_case=lambda c, s, r: got.append((c, s, r)))
    finally:
        bench.load_cases = loaded
    lines = []
    for det, s in report["summary"].items():
        false = []
        for case, scored, rule in got:
            label = case.test_label.astype(bool)
            if runs(label)[0].size == 1:
                starts, ends = bench.case_events(scored[det], label.size, rule)
                spans = zip(starts, ends, strict=True)
                false.append(sum(not label[a : b + 1].any() for a, b in spans))
        lines.append(f"| {recipe} | {det} | {s['vus_pr']:.3f} | {s['event_f1']:.3f} | "
                     f"{s['f1']:.3f} | {100 * s['far']:.1f} % | "
                     f"{s['false_events_per_10k_rows']:.2f} | {np.median(false):g} |")  # fmt: skip
    return lines


def ecg_rows(recipe: str) -> list[str]:
    import periodic

    import anomae

    fit, training = anomae.fit, periodic.training

    def fit_with(frame: Any, recipe: str, **kw: Any) -> Any:
        over = OVER.get(recipe, {}).get("calibrate")
        return fit(frame, recipe=recipe, **kw, **({"calibration": over} if over else {}))

    anomae.fit = fit_with  # type: ignore[assignment]
    periodic.training = lambda kind, period, seed: (*training(kind, period, seed)[:2], recipe,
                                                    training(kind, period, seed)[3])  # fmt: skip
    try:
        out = []
        for period in (40, 100):
            for seed in (0, 1):
                r = periodic.run("ecg", period, seed, False)
                out.append(f"| {recipe} | {period} | {seed} | {r['vus_pr']:.3f} | "
                           f"{r['event_f1']:.2f} | {r['false']} |")  # fmt: skip
        return out
    finally:
        anomae.fit, periodic.training = fit, training  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-smap", action="store_true")
    ap.add_argument("--skip-ecg", action="store_true")
    args = ap.parse_args()
    recipes = ("multivariate", "univariate")
    if not args.skip_smap:
        if SMAP.is_dir():
            print("| recipe | detector | VUS-PR | event F1 | F1 | FAR | FE/10k | single: FE |")
            print("|---|---|---:|---:|---:|---:|---:|---:|")
            for recipe in recipes:
                print("\n".join(smap_rows(recipe)), flush=True)
        else:
            print(f"SMAP skipped: {SMAP} is absent")
    if not args.skip_ecg:
        print("\n| recipe | period | seed | VUS-PR | event F1 | false events |")
        print("|---|---:|---:|---:|---:|---:|")
        for recipe in recipes:
            print("\n".join(ecg_rows(recipe)), flush=True)


if __name__ == "__main__":
    main()
