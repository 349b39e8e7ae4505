"""The ``[benchmark]`` section of an evaluation pipeline: which data, protocol and baselines.

Its own module so that :mod:`anomae.pipeline` can parse the section without importing the
harness (:mod:`anomae.eval.benchmark`), which itself trains through the pipeline.

    >>> BenchmarkSection(dataset="nab").protocol
    'per_file'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchmarkSection:
    """The ``[benchmark]`` section of an evaluation pipeline."""

    dataset: str = "skab"  # skab | nab | matrix | tsb | labelled
    protocol: str = "per_file"  # skab: per_file | anomaly_free
    data: str = ""  # default: ../shared/datasets/<dataset>
    categories: tuple[str, ...] = ("realKnownCause", "realAWSCloudwatch")
    train: str = ""  # labelled: training file
    test: str = ""  # labelled: test file with a label column
    baselines: tuple[str, ...] = ("pca", "ksigma", "windowed_gaussian", "random", "all_anomalous")
    vus_window: int = 100
    limit: int = 0  # only the first N cases (quick runs)

    def __post_init__(self) -> None:
        if self.dataset not in ("skab", "nab", "matrix", "tsb", "labelled"):
            raise ValueError(
                f"dataset must be skab, nab, matrix, tsb or labelled, got {self.dataset!r}"
            )
        from anomae.eval.baselines import BASELINES

        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; known: {sorted(BASELINES)}")
