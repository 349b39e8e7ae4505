"""Windows per onnxruntime call on CPU: one call alone against calls side by side.

Batch scoring on CPU runs one one-thread onnxruntime call per core side by side
(:func:`anomae.detector.call_workers`), so a call's working set shares the cache and the
memory bandwidth with the others'. This script scores random rows with
:meth:`~anomae.detector.Detector.score_series` at several ``chunk_windows`` for model shapes
anomae trains (the reference dense 256-64 on 64x8 windows, the multivariate recipe's linear
code on 8-row windows of 8 and 48 sensors, the univariate recipe's 16-4 on 16 rows, a conv
AE), each in a fresh process: one process alone, then ``--procs`` processes at once
(the cores' own scaling), alternating over ``--rounds`` rounds, and prints the median
windows/s, the speed-up, and each chunk against the detector's default for the shape
(:func:`anomae.detector.cpu_chunk_windows`). Ratios are what to read: the machines are
shared.

    python bench/chunk_size.py [--shapes reference mv8 mv48 uv16 conv] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# name: (window rows, features, hidden widths, kind)
SHAPES = {
    "reference": (64, 8, (256, 64), "dense"),
    "mv8": (8, 8, (8,), "dense"),
    "mv48": (8, 48, (48,), "dense"),
    "uv16": (16, 1, (16, 4), "dense"),
    "conv": (32, 8, (16,), "conv"),
}

CHILD = """
import json, sys, time
import numpy as np
from anomae.detector import Detector
det = Detector.load(sys.argv[1], threads=1, spin=False)
chunk, rows = int(sys.argv[2]), int(sys.argv[3])
x = np.random.default_rng(0).normal(size=(rows, len(det.card.features))).astype(np.float32)
det.score_series(x[: rows // 10], chunk)
t0 = time.perf_counter()
n = det.score_series(x, chunk).score.shape[0]
print(json.dumps(n / (time.perf_counter() - t0)))
"""


def export(folder: Path, name: str) -> Path:
    """A model of shape ``name`` (random weights: speed does not depend on them)."""
    from score_bench import random_model

    path = folder / f"{name}.onnx"
    if not path.exists():
        length, n_f, hidden, kind = SHAPES[name]
        random_model(path, length, hidden, n_f, kind=kind)
    return path


def rate(model: Path, chunk: int, rows: int, procs: int) -> float:
    """Windows/s of ``procs`` processes scoring ``rows`` rows each at once (summed)."""
    ps = [subprocess.Popen([sys.executable, "-c", CHILD, str(model), str(chunk), str(rows)],
                           stdout=subprocess.PIPE, text=True) for _ in range(procs)]  # fmt: skip
    out = [p.communicate()[0] for p in ps]
    if any(p.returncode for p in ps):
        raise SystemExit(f"a scoring process failed ({model.name}, chunk {chunk})")
    return sum(json.loads(o.strip().splitlines()[-1]) for o in out)


def main() -> None:
    from anomae.detector import cpu_chunk_windows, usable_cores

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--chunks", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--procs", type=int, default=min(usable_cores(), 2))
    ap.add_argument("--windows", type=int, default=250_000,
                    help="windows each process scores of the reference model; a smaller "
                    "window gets more, as many as cost the same (at most 16x)")  # fmt: skip
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "anomae-chunk"))
    a = ap.parse_args()
    folder = Path(a.folder)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'shape':>9} {'window':>7} {'chunk':>6} {'tensor KiB':>10} {'1 alone':>11} "
          f"{f'{a.procs} at once':>11} {'speed-up':>8} {'vs default':>10}")  # fmt: skip
    for name in a.shapes:
        length, n_f, *_ = SHAPES[name]
        model = export(folder, name)
        rows = int(a.windows * min(64 * 8 / (length * n_f), 16))
        default = cpu_chunk_windows(length, n_f)
        chunks = sorted({*a.chunks, default})
        one: dict[int, list[float]] = {c: [] for c in chunks}
        many: dict[int, list[float]] = {c: [] for c in chunks}
        for _ in range(a.rounds):  # alternate: the machine's speed drifts
            for c in chunks:
                one[c].append(rate(model, c, rows, 1))
                many[c].append(rate(model, c, rows, a.procs))
        base = float(np.median(many[default]))
        for c in chunks:
            o, m = float(np.median(one[c])), float(np.median(many[c]))
            mark = " (default)" if c == default else ""
            print(f"{name:>9} {f'{length}x{n_f}':>7} {c:>6} {c * length * n_f * 4 / 1024:>10,.0f} "
                  f"{o:>11,.0f} {m:>11,.0f} {m / o:>8.2f} {m / base:>10.2f}{mark}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
