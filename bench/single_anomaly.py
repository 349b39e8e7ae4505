"""Single-anomaly files: false events per file with the shipped pipelines (issue 9).

For every benchmark case whose test part holds exactly one labelled anomaly range, run
anomae and the same-policy baselines exactly as ``anomae evaluate PIPELINE`` does (same
loaders, detectors, calibration and post-rules: :mod:`anomae.eval.benchmark`) and count per
file the events that overlap no labelled row (false events) and whether an event overlaps
the anomaly (detected). Where a pipeline calibrates by ``events``, the budget's expected
false events for the file's span are printed beside them. The target: a median of at most
one false event per file.

    OMP_NUM_THREADS=1 python bench/single_anomaly.py [--only skab,nab] [--per-file]

Reads ``../shared/datasets`` (SKAB, NAB, SMAP) as ``anomae evaluate`` does; a dataset that
is absent is skipped with a message. Nothing is tuned here: the pipelines are read as shipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from anomae.eval.benchmark import (
    AnomaeModels,
    BaselineDetector,
    DataMissing,
    case_events,
    load_cases,
    pipeline_rule,
    span_days,
)
from anomae.eval.metrics import false_events
from anomae.events import runs
from anomae.io import InputError
from anomae.pipeline import load_pipeline

PIPELINES = ("skab", "skab_anomaly_free", "smap", "nab")
BASELINES = ("ksigma", "pca", "windowed_gaussian")
ROOT = Path(__file__).resolve().parents[1] / "pipelines"


def single_anomaly(label: np.ndarray) -> bool:
    """Whether a test part's labels hold exactly one anomaly range."""
    return runs(np.asarray(label).astype(bool))[0].size == 1


def file_rows(pipeline: str, detectors: tuple[str, ...]) -> dict[str, list[dict[str, Any]]] | None:
    """Per detector, one row per single-anomaly file; ``None`` when the data is absent."""
    pipe = load_pipeline(ROOT / f"{pipeline}.toml")
    try:
        cases = load_cases(pipe.benchmark, None, pipe.data.table())
    except (DataMissing, InputError) as exc:
        # smap.toml names its folder ([benchmark] data): absent, that is an InputError
        if not isinstance(exc, DataMissing) and not isinstance(exc.__cause__, FileNotFoundError):
            raise
        print(f"{pipeline}: skipped: {exc}")
        return None
    single = [c for c in cases if single_anomaly(c.test_label)]
    print(
        f"{pipeline}: {len(single)} of {len(cases)} cases hold one anomaly range", file=sys.stderr
    )
    rule = pipeline_rule(pipe)
    dets: dict[str, Any] = {"anomae": AnomaeModels(pipe)}
    # the pipeline's own list decides which baselines apply (NAB leaves out PCA of one feature)
    dets |= {
        b: BaselineDetector(b, pipe.calibrate, pipe)
        for b in detectors
        if b in pipe.benchmark.baselines
    }
    c = pipe.calibrate
    budget = (c.false_events_per_day or 1 / 7) if c.method == "events" else None
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in dets}
    for i, case in enumerate(single):
        days = span_days(case)
        n = case.test.shape[0]
        for name, det in dets.items():
            starts, ends = case_events(det(case), n, rule)
            false = false_events(starts, ends, case.test_label)
            out[name].append(
                {
                    "case": case.name,
                    "events": int(starts.size),
                    "false": false,
                    "detected": starts.size > false,
                    "days": days,
                    "rows": n,
                    "expected": budget * days if budget is not None and days else None,
                }
            )
        print(f"  [{i + 1}/{len(single)}] {case.name}", file=sys.stderr)
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    false = np.array([r["false"] for r in rows], np.float64)
    expected = [r["expected"] for r in rows]
    return {
        "files": len(rows),
        "median": float(np.median(false)),
        "mean": float(false.mean()),
        "le1": float((false <= 1).mean()),
        "detected": float(np.mean([r["detected"] for r in rows])),
        "expected": None if None in expected else float(np.mean(expected)),
        "span": (
            f"{np.median([r['days'] for r in rows]) * 24:.2f} h"
            if rows[0]["days"] is not None
            else f"{np.median([r['rows'] for r in rows]):.0f} rows"
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PIPELINES), help="pipelines to run, comma-separated")
    ap.add_argument("--per-file", action="store_true", help="also print one line per file")
    args = ap.parse_args()
    t0 = time.perf_counter()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for p in args.only.split(","):
        got = file_rows(p, BASELINES)
        if got is not None:
            results[p] = got
    if not results:
        print("no benchmark data: put SKAB, NAB and SMAP in ../shared/datasets/{skab,nab,smap}")
        return
    head = (
        f"| {'pipeline':<18}| {'detector':<18}| files | median span | median false | "
        f"mean false | share <= 1 | detected | expected (budget) |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for p, by_det in results.items():
        for name, rows in by_det.items():
            s = summary(rows)
            exp = "-" if s["expected"] is None else f"{s['expected']:.3g}"
            print(
                f"| {p:<18}| {name:<18}| {s['files']:>5} | {s['span']:>11} | "
                f"{s['median']:>12.1f} | {s['mean']:>10.2f} | {s['le1']:>10.0%} | "
                f"{s['detected']:>8.0%} | {exp:>17} |"
            )
    if args.per_file:
        for p, by_det in results.items():
            names = list(by_det)
            print(f"\n{p}: false events per file (detected: *)")
            print(f"{'case':<56}{'span':>10}" + "".join(f"{n:>19}" for n in names))
            for i, r in enumerate(by_det["anomae"]):
                span = f"{r['days'] * 24:.2f}h" if r["days"] is not None else f"{r['rows']}r"
                cells = "".join(
                    f"{by_det[n][i]['false']:>18}{'*' if by_det[n][i]['detected'] else ' '}"
                    for n in names
                )
                print(f"{r['case']:<56}{span:>10}{cells}")
    print(f"\n{time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
