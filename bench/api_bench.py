"""The Python API's scoring paths on the same rows, in one process (ratios in one run).

Trains one small model on demo data (``anomae.fit``, 1 epoch: speed does not depend on
the weights), then scores the same test rows four ways and prints rows per second:

* ``AnomalyModel.score`` (DataFrame in, windows and events tables out, as ``anomae score``),
* ``AnomalyModel.score_rows`` (one series' rows as a numpy array, scores only),
* ``AnomaeOD.decision_function`` (PyOD style, rows in),
* ``OnlineScorer.score_one`` (one reading per call, river style).

    python bench/api_bench.py [--series 4] [--test-days 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np


def best_of(rounds: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=4)
    ap.add_argument("--test-days", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import anomae
    from anomae.adapters import AnomaeOD
    from anomae.synth import SynthConfig, generate

    train, test = generate(
        SynthConfig(n_series=args.series, train_days=2.0, test_days=args.test_days)
    )
    model = anomae.fit(train, epochs=1, calibration={"method": "quantile", "q": 0.99})
    rows = test.height
    one = test.filter(test["series"] == test["series"][0])
    values = one.select(model.features).to_numpy().astype(np.float32)
    od = AnomaeOD()
    od.model_, od.threshold_ = model, float(model.threshold or 1.0)  # fitted above

    def stream() -> None:
        scorer = anomae.OnlineScorer(model)
        for rec in test.select("series", "timestamp", *model.features).iter_rows():
            scorer.score_one(dict(zip(model.features, rec[2:], strict=True)), rec[0], rec[1])

    cases = [
        ("AnomalyModel.score (tables)", rows, lambda: model.score(test)),
        ("AnomalyModel.score_rows (array)", len(values), lambda: model.score_rows(values)),
        ("AnomaeOD.decision_function", len(values), lambda: od.decision_function(values)),
        ("OnlineScorer.score_one", rows, stream),
    ]
    print(
        f"{rows:,} rows ({args.series} series x {len(model.features)} features), window "
        f"{model.window}, best of {args.rounds}"
    )
    print(f"{'path':34} {'rows':>9} {'seconds':>9} {'rows/s':>12}")
    for name, n, fn in cases:
        s = best_of(args.rounds if name != "OnlineScorer.score_one" else 1, fn)
        print(f"{name:34} {n:9,} {s:9.3f} {n / s:12,.0f}")


if __name__ == "__main__":
    main()
