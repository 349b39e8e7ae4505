"""How far is ``anomae tune``'s label-free choice from the best choice in hindsight?

Tunes on normal data only (the default grid, :mod:`anomae.tune`), keeps every candidate's
model, then scores every candidate on the real labelled test data and prints, per
candidate, the tuner's VUS-PR on injected anomalies next to the VUS-PR on the real ones,
and how the tuned pick compares with the best candidate in hindsight.

* ``demo``: the demo plant (``anomae demo-data``, generated in a temporary folder): tuned
  on its normal training period, tested on its test period (six injected kinds, labelled).
* ``skab``: SKAB's ``anomaly_free`` protocol: tuned on ``anomaly-free.csv``, tested on the
  34 labelled files (mean of per-file VUS-PR), as ``pipelines/skab_anomaly_free.toml``.
  Skipped when the data set is absent.

Candidates are compared as the tuner trains them (``[tune] epochs``, ``train_stride``);
real-data VUS-PR uses a buffer of 100 rows, as ``anomae evaluate`` does.

    python bench/tune_hindsight.py [--only demo|skab] [--unit global|local]
                                   [--skab ../shared/datasets/skab]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VUS_WINDOW = 100
UNIT = "global"  # injected magnitudes in units of each feature's global or local spread


def _real_vus(det: Any, cases: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> float:
    """Mean VUS-PR over ``(train, test, label)`` cases; the last train rows give context."""
    from anomae.eval.metrics import vus_pr

    ctx = det.card.window.length - 1
    out = []
    for train, test, label in cases:
        rows = np.concatenate([train[len(train) - ctx :] if ctx else train[:0], test])
        s = det.score_series(np.ascontiguousarray(rows, np.float32)).score.astype(np.float64)
        s = np.where(np.isnan(s), -np.inf, s)
        if 0 < label.sum() < label.size:
            out.append(vus_pr(s, label, VUS_WINDOW))
    return float(np.mean(out))


def hindsight(
    name: str, pipe: Any, series: list[Any], features: tuple[str, ...], cases: Any
) -> None:
    from anomae.detector import Detector
    from anomae.tune import tune

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tune-hindsight-") as tmp:
        result = tune(pipe, series, features, echo=lambda _: None, keep=Path(tmp))
        seconds = time.perf_counter() - t0
        rows = result.candidates
        for i, r in enumerate(rows):
            r["real"] = _real_vus(Detector.load(Path(tmp) / f"c{i}.onnx"), cases)
    pick = result.record["choice"]
    best = max(range(len(rows)), key=lambda i: rows[i]["real"])
    real = np.array([r["real"] for r in rows])
    inj = np.array([r["vus_pr"] for r in rows])
    rank_corr = float(np.corrcoef(np.argsort(np.argsort(inj)), np.argsort(np.argsort(real)))[0, 1])
    real_rank = int((real > real[pick]).sum()) + 1
    print(f"\n## {name}: {len(rows)} candidates, {UNIT} units, tuned in {seconds:.0f}s\n")
    print("| # | window | hidden | noise | center | VUS-PR injected (rank) | VUS-PR real (rank) |")
    print("|---|---|---|---|---|---|---|")
    real_rank_of = {i: int((real > real[i]).sum()) + 1 for i in range(len(rows))}
    for i in sorted(range(len(rows)), key=lambda i: rows[i]["rank"]):
        r = rows[i]
        mark = " **pick**" if i == pick else (" **best**" if i == best else "")
        print(
            f"| {i + 1}{mark} | {r['window']} | {r['hidden']} | {r['noise']:g} | "
            f"{'on' if r['center'] else 'off'} | {r['vus_pr']:.3f} ({r['rank']}) | "
            f"{r['real']:.3f} ({real_rank_of[i]}) |"
        )
    print(
        f"\ntuned pick: real VUS-PR {real[pick]:.3f} (rank {real_rank} of {len(rows)}); best in "
        f"hindsight {real[best]:.3f}; gap {real[best] - real[pick]:.3f}; median candidate "
        f"{float(np.median(real)):.3f}, worst {real.min():.3f}; Spearman(injected, real) "
        f"{rank_corr:.2f}"
    )


def demo() -> None:
    from anomae.grid import TuneSection
    from anomae.io import TableSpec, read_series
    from anomae.pipeline import load_pipeline
    from anomae.synth import SynthConfig, write_demo
    from anomae.tune import label_free

    with tempfile.TemporaryDirectory(prefix="tune-demo-") as tmp:
        paths = write_demo(tmp, SynthConfig())
        pipe = load_pipeline(ROOT / "pipelines" / "demo.toml")
        pipe = dataclasses.replace(pipe, tune=TuneSection(unit=UNIT))
        series, features = read_series([str(paths["train"])], label_free(TableSpec()))
        test, _ = read_series([str(paths["test"])], TableSpec(), features=features)
    train = {s.name: s.values for s in series}
    cases = [(train[t.name], t.values, (t.labels > 0).astype(np.int8)) for t in test]
    hindsight("demo (4 machines x 8 sensors, 1-minute rows)", pipe, series, features, cases)


def skab(root: Path) -> None:
    from anomae.eval.datasets import load_skab
    from anomae.grid import TuneSection
    from anomae.io import SeriesData
    from anomae.pipeline import load_pipeline

    all_cases = load_skab(root, "anomaly_free")
    free = all_cases[0]
    series = [
        SeriesData(
            "anomaly-free",
            "anomaly-free.csv",
            free.train_timestamps,
            np.ascontiguousarray(free.train, np.float32),
            None,
            np.arange(free.train.shape[0]),
        )
    ]
    pipe = load_pipeline(ROOT / "pipelines" / "skab_anomaly_free.toml")
    pipe = dataclasses.replace(pipe, tune=TuneSection(unit=UNIT))
    cases = [(c.train, c.test, c.test_label.astype(np.int8)) for c in all_cases]
    hindsight("SKAB anomaly_free (34 files, 8 sensors)", pipe, series, free.features, cases)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["demo", "skab"], default=None)
    ap.add_argument("--skab", type=Path, default=ROOT.parent / "shared" / "datasets" / "skab")
    ap.add_argument("--unit", choices=["global", "local"], default="global")
    args = ap.parse_args()
    global UNIT
    UNIT = args.unit
    if args.only in (None, "demo"):
        demo()
    if args.only in (None, "skab"):
        if args.skab.is_dir():
            skab(args.skab)
        else:
            print(f"\n## SKAB: skipped, {args.skab} not found")


if __name__ == "__main__":
    main()
