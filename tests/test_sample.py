"""The training sampler (anomae.sample) against the in-memory path: every window, held-out
block, scaler statistic and interval when all fit; a uniform sample of window origins
(chi-square) and a bounded one when they do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.calibrate_model import sampling_interval
from anomae.holdout import split_holdout_named
from anomae.io import TableSpec, read_series
from anomae.sample import Reservoir, count_windows, sample_dataset
from anomae.spec import WindowSpec
from anomae.windows import sliding_windows

FEATS = ("a", "b")


def write(folder: Path, spec: dict[str, tuple[int, int]]) -> list[Path]:
    """One Parquet file per entry: ``{file: (series in it, rows per series)}``, rows of
    its series interleaved, NaN here and there."""
    rng = np.random.default_rng(7)
    out = []
    for i, (fname, (k, n)) in enumerate(spec.items()):
        ts = 1_700_000_000 + np.arange(n) * 60 + (np.arange(n) // 97) * 7
        x = rng.normal(size=(n * k, 2))
        x[rng.random(x.shape) < 0.02] = np.nan
        df = pl.DataFrame({
            "timestamp": np.repeat(ts, k) * 10**9,
            "series": np.tile([f"f{i}s{j}" for j in range(k)], n),
            "a": x[:, 0], "b": x[:, 1],
        }).with_columns(pl.col("timestamp").cast(pl.Datetime("ns", "UTC")))  # fmt: skip
        p = folder / fname
        df.write_parquet(p)
        out.append(p)
    return out


@pytest.mark.parametrize(
    ("length", "stride", "spread", "batch"),
    [(5, 1, True, 7), (5, 2, True, 64), (3, 7, True, 5), (8, 3, False, 1000), (1, 1, True, 1)],
)  # fmt: skip
def test_every_window_block_and_statistic_when_all_fit(
    tmp_path: Path, length: int, stride: int, spread: bool, batch: int
) -> None:
    files = write(tmp_path, {"z.parquet": (2, 230), "a.parquet": (1, 171)})
    spec = TableSpec()
    series, _ = read_series(files, spec, FEATS)
    fit, cal, names = split_holdout_named(series, 0.2, spread, min_rows=length)
    want = np.concatenate([sliding_windows(r, WindowSpec(length, stride)) for r in fit])
    s = sample_dataset(files, spec, FEATS, length, stride, 10**6, 0.2, spread,
                       segment_rows=10**5, batch_rows=batch)  # fmt: skip
    assert s.windows.shape == want.shape and s.n_windows == want.shape[0]
    assert np.array_equal(s.windows, want, equal_nan=True)
    assert count_windows(files, spec, FEATS, length, stride, 0.2, spread) == (
        want.shape[0], False)  # fmt: skip
    assert s.cal_names == names and len(s.cal_rows) == len(cal)
    for got, block in zip(s.cal_rows, cal, strict=True):
        assert np.array_equal(got, block, equal_nan=True)
    rows = np.concatenate(fit).astype(np.float64)
    np.testing.assert_allclose(s.center, np.nanmean(rows, axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.std, np.nanstd(rows, axis=0), rtol=1e-12)
    assert np.array_equal(s.lo, np.nanmin(rows, axis=0))
    assert np.array_equal(s.hi, np.nanmax(rows, axis=0))
    assert s.interval_s == sampling_interval(series)


def test_window_origins_are_uniform(tmp_path: Path) -> None:
    files = write(tmp_path, {"d.parquet": (4, 5000)})
    n, bins = 2000, 20
    s = sample_dataset(files, TableSpec(), FEATS, 4, 1, n, 0.0, batch_rows=333, seed=3)
    assert s.windows.shape[0] == n and s.n_windows == 4 * 4997
    # which window each sample is: match its first row against every window's
    series, _ = read_series(files, TableSpec(), FEATS)
    origin = {}
    for k, ser in enumerate(series):
        for i, row in enumerate(ser.values[:4997]):
            origin[row.tobytes()] = k * 4997 + i
    idx = np.array([origin[w[0].tobytes()] for w in s.windows])
    assert np.unique(idx).size == n  # no window twice
    counts = np.bincount(idx * bins // s.n_windows, minlength=bins)
    expected = n / bins
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8, (chi2, counts)  # 19 degrees of freedom, p = 0.001


def test_sample_and_calibration_rows_are_bounded(tmp_path: Path) -> None:
    files = write(tmp_path, {"d.parquet": (3, 4000)})
    s = sample_dataset(files, TableSpec(), FEATS, 6, 1, 500, 0.2, segment_rows=50,
                       batch_rows=1000)  # fmt: skip
    assert s.windows.shape[0] == 500 < s.n_windows
    assert sum(r.shape[0] for r in s.cal_rows) <= 500 < s.n_cal_rows
    assert len(s.cal_rows) == 10 and all(r.shape[0] <= 50 for r in s.cal_rows)


def test_reservoir_keeps_each_item_with_equal_probability() -> None:
    hits = np.zeros(100)
    for seed in range(400):
        r = Reservoir(10, np.random.default_rng(seed))
        kept = np.full(10, -1)
        start = 0
        for size in (3, 40, 1, 56):
            pick, slots = r.offer(size)
            kept[slots] = start + pick
            start += size
        assert (kept >= 0).all() and np.unique(kept).size == 10
        hits[kept] += 1
    # each item kept 40 times in expectation (400 x 10 / 100)
    chi2 = float(((hits - 40) ** 2 / 40).sum())
    assert chi2 < 148.2, chi2  # 99 degrees of freedom, p = 0.001
