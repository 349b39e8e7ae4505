"""A wide synthetic plant for the multivariate recipe (issue 9): ``M`` demo machines' 12
sensors side by side in one row, as a plant historian stores them.

Each plant ``p`` is :func:`anomae.synth.generate` with seed ``100 + p`` and ``M`` machines
(5 days train, 2 days test, one row a minute); in its test period one machine (``p mod
M``) carries the synth's labelled anomalies (one of each kind) and the others run normal
(the same machines generated without anomalies). Missing readings carry the last value.
Written as a ``train/ test/ test_label/`` matrix folder that ``load_matrix`` reads, so
:mod:`multivariate_variants` runs SMAP's settings on it:

    python bench/wide_plant.py /tmp/plant48 --machines 4 --plants 4
    OMP_NUM_THREADS=1 python bench/multivariate_variants.py --only smap --matrix /tmp/plant48 \\
        --only-aggregate --code features
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

from anomae.synth import SynthConfig, generate


def plant(seed: int, machines: int, bad: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train [n, 12 M], test [m, 12 M], test labels [m])`` of one plant."""
    cfg = SynthConfig(seed=seed, n_series=machines, n_features=12, train_days=5, test_days=2)
    train, test = generate(cfg)
    _, normal = generate(SynthConfig(**{**cfg.__dict__, "anomalies_per_kind": 0}))
    feats = list(cfg.features)

    def wide(frames: list[pl.DataFrame]) -> np.ndarray:
        cols = [f.filter(pl.col("series") == f"m{i + 1}").select(pl.col(feats).forward_fill())
                .to_numpy() for i, f in enumerate(frames)]  # fmt: skip
        return np.concatenate(cols, axis=1).astype(np.float64)

    test_frames = [test if i == bad else normal for i in range(machines)]
    label = test.filter(pl.col("series") == f"m{bad + 1}")["label"].to_numpy()
    return wide([train] * machines), wide(test_frames), label.astype(np.int8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--machines", type=int, default=4)
    ap.add_argument("--plants", type=int, default=4)
    a = ap.parse_args()
    for part in ("train", "test", "test_label"):
        (a.out / part).mkdir(parents=True, exist_ok=True)
    for p in range(a.plants):
        train, test, label = plant(100 + p, a.machines, p % a.machines)
        for part, x in (("train", train), ("test", test), ("test_label", label)):
            np.save(a.out / part / f"plant{p}.npy", x)
        print(f"plant{p}: train {train.shape}, test {test.shape}, anomalous {label.mean():.1%}")


if __name__ == "__main__":
    main()
