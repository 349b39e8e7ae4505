"""Training time against torch's intra-op threads (``anomae train --threads N``).

Fits the default multivariate recipe's network (dense, window 8, code 8) and the demo
pipeline's wider one on windows of the demo data, the same epochs and seed each time, with
``threads`` 0 (torch's default: one per core), 1 and 2, interleaved and repeated, and prints
the median seconds and the ratio to the default. The machine's other load is part of the
measurement: run it on the machine and under the load the training will see.

    python bench/train_threads.py [--epochs 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from anomae.spec import WindowSpec
from anomae.synth import SynthConfig, generate
from anomae.train.config import ArchConfig, TrainConfig
from anomae.train.fit import fit
from anomae.windows import sliding_windows


def windows(length: int) -> np.ndarray:
    cfg = SynthConfig(seed=7, n_series=4, n_features=8)
    train, _ = generate(cfg)
    feats = list(cfg.features)
    blocks = []
    for part in train.partition_by("series", maintain_order=True):
        x = part.select(feats).to_numpy().astype(np.float32)
        x = (x - np.nanmean(x, 0)) / (np.nanstd(x, 0) + 1e-6)
        blocks.append(sliding_windows(x, WindowSpec(length, 1)))
    return np.ascontiguousarray(np.concatenate(blocks), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    models = {
        "window 8, code 8, batch 64": (8, ArchConfig(hidden=(8,), activation="relu"), 64),
        "window 32, 256-32, batch 256": (32, ArchConfig(hidden=(256, 32)), 256),
    }
    print(
        f"torch {torch.__version__}, default threads {torch.get_num_threads()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"{args.epochs} epochs, median of {args.repeats}"
    )
    print(f"{'model':<32}{'windows':>9}{'threads':>13}{'seconds':>9}{'vs default':>12}")
    for name, (length, arch, batch) in models.items():
        w = windows(length)
        times: dict[int, list[float]] = {0: [], 1: [], 2: []}
        for _ in range(args.repeats):
            for threads in times:
                cfg = TrainConfig(
                    arch=arch, epochs=args.epochs, patience=args.epochs, batch_size=batch,
                    progress=False, threads=threads,
                )  # fmt: skip
                t0 = time.perf_counter()
                fit(w, cfg)
                times[threads].append(time.perf_counter() - t0)
        base = statistics.median(times[0])
        for threads, ts in times.items():
            med = statistics.median(ts)
            label = "0 (default)" if threads == 0 else str(threads)
            print(f"{name:<32}{len(w):>9,}{label:>13}{med:>9.2f}{base / med:>11.2f}x")


if __name__ == "__main__":
    main()
