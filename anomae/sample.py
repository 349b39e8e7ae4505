"""Training data drawn from a dataset of any size in bounded memory: ``anomae train
--max-windows N``.

:func:`sample_dataset` plans the dataset (:mod:`anomae.dataset`: files, globs, folders,
hive partitions, a series spanning files) and reads it in batches. Each series is cut into
fit and held-out blocks exactly as the in-memory path cuts it
(:func:`anomae.holdout.holdout_bounds` on the series' row count, known from the plan), and:

* **fit windows**: every training window of a fit block (stride ``train_stride``, never
  across a block's cut) is offered to a reservoir of ``max_windows`` (Algorithm R with a
  seeded generator): each of the dataset's windows ends up in the sample with the same
  probability, ``max_windows / windows``, whatever file or series it comes from. Only
  accepted windows are copied; a series keeps at most ``length - 1 + stride`` rows between
  batches. The sample is returned in the in-memory order (series, then row), so when every
  window fits it *is* the in-memory path's window array.
* **scaler and extent**: the fit rows' per-feature mean and standard deviation (merged
  batch by batch in float64, Chan's formula), min and max, over every fit row, not only
  the sampled ones.
* **calibration rows**: held-out blocks are cut into segments of at most ``segment_rows``
  rows (contiguous rows of one series: events calibration counts excursions within them),
  and a second reservoir keeps a uniform sample of ``max_windows // segment_rows`` segments
  (at least one): about ``max_windows`` rows in all. Calibration then sees a uniform
  sample of the held-out stretches instead of all of them.
* **sampling interval**: the median of the seconds between consecutive rows of each
  series, over a reservoir of at most ``DIFFS`` of them (exact below that).

The fingerprint hashes the rows in reading order, so it differs from the in-memory path's
for the same rows. Memory: ``max_windows`` windows, about as many held-out rows, and per
series a few rows.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomae.batches import read_batches
from anomae.dataset import expand_inputs, plan_dataset
from anomae.holdout import holdout_bounds
from anomae.io import TableSpec

DIFFS = 1_000_000  # row intervals kept for the median
RANK_SHIFT = 40  # key = series rank << 40 | row: series in file order, then rows


class Reservoir:
    """Algorithm R over items offered in batches: ``offer(c)`` says which of the next ``c``
    items to keep and in which slots (a slot taken twice in one batch goes to the later)."""

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self.capacity, self.rng, self.seen = capacity, rng, 0

    def offer(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices among the ``count`` items to keep, their slots)."""
        t = self.seen + np.arange(count, dtype=np.int64)
        self.seen += count
        slot = t.copy()
        late = t >= self.capacity
        if late.any():
            slot[late] = self.rng.integers(0, t[late] + 1)
        keep = np.flatnonzero(slot < self.capacity)
        slots = slot[keep]
        # the last item offered to a slot wins, as one item at a time would have it
        _, last = np.unique(slots[::-1], return_index=True)
        pick = keep[::-1][last]
        return pick, slot[pick]


class _Store:
    """Arrays filled by reservoir slots, grown as the fill phase needs."""

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: type) -> None:
        self.capacity, self.shape, self.dtype = capacity, shape, dtype
        self.data: np.ndarray = np.empty((min(capacity, 1024), *shape), dtype)
        self.n = 0

    def put(self, slots: np.ndarray, items: np.ndarray) -> None:
        if slots.size == 0:
            return
        top = int(slots.max()) + 1
        if top > self.data.shape[0]:
            size = min(self.capacity, max(top, 2 * self.data.shape[0]))
            grown: np.ndarray = np.empty((size, *self.shape), self.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[slots] = items
        self.n = max(self.n, top)


@dataclass
class _Cursor:
    name: str
    rank: int
    bounds: list[tuple[int, int, bool]]
    pos: int = 0  # rows of the series read so far
    buf: np.ndarray | None = None  # fit rows from row ``origin`` on, not windowed yet
    origin: int = 0  # the next window's first row
    segment: list[np.ndarray] = field(default_factory=list)
    segment_lo: int = 0
    last_ts: int | None = None


@dataclass
class Sample:
    """What training needs from a dataset (module docstring)."""

    features: tuple[str, ...]
    windows: np.ndarray  # [n, length, F] raw float32, in (series, row) order
    n_windows: int  # fit windows in the dataset
    center: np.ndarray  # float64 [F]
    std: np.ndarray  # float64 [F] (population)
    lo: np.ndarray
    hi: np.ndarray
    cal_rows: list[np.ndarray]
    cal_names: list[str]
    n_cal_rows: int  # held-out rows in the dataset
    interval_s: float | None
    data_span: tuple[float, float] | None
    fingerprint: str
    sources: list[str]


class _Sampler:
    def __init__(self, features: tuple[str, ...], length: int, stride: int, max_windows: int,
                 segment_rows: int, seed: int) -> None:  # fmt: skip
        f = len(features)
        self.length, self.stride = length, stride
        rng = np.random.default_rng(seed)
        self.fit = Reservoir(max_windows, rng)
        self.windows = _Store(max_windows, (length, f), np.float32)
        self.keys = _Store(max_windows, (), np.int64)
        self.segment_rows = segment_rows
        self.cal = Reservoir(max(1, max_windows // segment_rows), rng)
        self.segments: dict[int, tuple[int, str, np.ndarray]] = {}
        self.diffs = Reservoir(DIFFS, rng)
        self.diff_store = _Store(DIFFS, (), np.int64)
        self.n, self.mean, self.m2 = np.zeros(f), np.zeros(f), np.zeros(f)
        self.lo, self.hi = np.full(f, np.inf), np.full(f, -np.inf)
        self.n_cal_rows = 0
        self.span: list[int] = []
        self.hash = hashlib.sha256(json.dumps(list(features)).encode())

    def push(self, c: _Cursor, ts: np.ndarray, values: np.ndarray) -> None:
        m = values.shape[0]
        self.hash.update(json.dumps([c.name, m]).encode())
        self.hash.update(np.where(np.isnan(values), np.float32(np.nan), values).tobytes())
        prev = ts[:1] if c.last_ts is None else np.array([c.last_ts])
        diffs = np.diff(np.concatenate([prev, ts]))[0 if c.last_ts is not None else 1 :]
        pick, slots = self.diffs.offer(diffs.size)
        self.diff_store.put(slots, diffs[pick])
        first, end = int(ts[0]), int(ts[-1])
        self.span = [min(self.span[0], first), max(self.span[1], end)] if self.span else [
            first, end]  # fmt: skip
        c.last_ts = int(ts[-1])
        for lo, hi, held in c.bounds:
            a, b = max(lo, c.pos), min(hi, c.pos + m)
            if a >= b:
                continue
            rows = values[a - c.pos : b - c.pos]
            if held:
                self._held(c, rows, a, b == hi)
            else:
                self._stats(rows)
                self._windows(c, rows, a, lo, b == hi)
        c.pos += m

    def _stats(self, rows: np.ndarray) -> None:
        x = rows.astype(np.float64)
        ok = ~np.isnan(x)
        n = ok.sum(axis=0)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN feature
            mean = np.where(n > 0, np.nansum(x, axis=0) / np.maximum(n, 1), 0.0)
            m2 = np.nansum((x - mean) ** 2, axis=0)
            self.lo = np.fmin(self.lo, np.nanmin(x, axis=0))
            self.hi = np.fmax(self.hi, np.nanmax(x, axis=0))
        total = self.n + n
        delta = mean - self.mean
        with np.errstate(all="ignore"):
            w = np.where(total > 0, n / np.maximum(total, 1), 0.0)
            self.m2 = self.m2 + m2 + delta**2 * self.n * w
        self.mean = self.mean + delta * w
        self.n = total

    def _windows(self, c: _Cursor, rows: np.ndarray, a: int, lo: int, last: bool) -> None:
        if a == lo:  # a new fit block
            c.buf, c.origin = None, lo
        base = a if c.buf is None else a - c.buf.shape[0]  # the first row of ``held``
        held = rows if c.buf is None else np.concatenate([c.buf, rows])
        held = held[c.origin - base :]  # a stride longer than the window skips rows
        n, size, step = held.shape[0], self.length, self.stride
        count = (n - size) // step + 1 if n >= size else 0
        if count:
            pick, slots = self.fit.offer(count)
            if pick.size:
                self.windows.put(slots, held[pick[:, None] * step + np.arange(size)])
                self.keys.put(slots, (np.int64(c.rank) << RANK_SHIFT) + c.origin + pick * step)
        c.origin += count * step
        c.buf = None if last else held[count * step :].copy()

    def _held(self, c: _Cursor, rows: np.ndarray, a: int, last: bool) -> None:
        if not c.segment:
            c.segment_lo = a
        self.n_cal_rows += rows.shape[0]
        c.segment.append(rows)
        size = sum(r.shape[0] for r in c.segment)
        while size >= self.segment_rows or (last and size):
            rows_all = np.concatenate(c.segment)
            seg, rest = rows_all[: self.segment_rows], rows_all[self.segment_rows :]
            pick, slots = self.cal.offer(1)
            if pick.size:
                key = (c.rank << RANK_SHIFT) + c.segment_lo
                self.segments[int(slots[0])] = (key, c.name, seg.copy())
            c.segment_lo += seg.shape[0]
            c.segment = [rest] if rest.shape[0] else []
            size = rest.shape[0]


def sample_dataset(
    inputs: Sequence[str | Path],
    table: TableSpec,
    features: Sequence[str],
    length: int,
    train_stride: int,
    max_windows: int,
    holdout: float,
    spread: bool = True,
    min_rows: int | None = None,
    seed: int = 0,
    segment_rows: int | None = None,
    batch_rows: int = 262_144,
) -> Sample:
    """Read ``inputs`` in batches and draw the training sample (module docstring)."""
    feats = tuple(features)
    files = expand_inputs(inputs)
    data = plan_dataset(files, table, feats)
    by_path = {fp.path: fp for fp in data.files}
    totals: dict[str, int] = {}
    rank: dict[str, int] = {}
    for p in files:  # ranks: series in file order, then first appearance (as read_series)
        for name, (_, _, n) in by_path[p].spans.items():
            totals[name] = totals.get(name, 0) + n
            rank.setdefault(name, len(rank))
    rows = min_rows or length
    cursors = {n: _Cursor(n, rank[n], holdout_bounds(totals[n], holdout, spread, rows))
               for n in totals}  # fmt: skip
    seg = segment_rows or max(64 * length, 4096)
    sp = _Sampler(feats, length, train_stride, max_windows, seg, seed)
    for fp in data.files:
        for chunks, _ in read_batches(fp, table, feats, False, batch_rows):
            for s in chunks:
                sp.push(cursors[s.name], s.timestamps, s.values)
    order = np.argsort(sp.keys.data[: sp.keys.n], kind="stable")
    segs = sorted(sp.segments.values(), key=lambda t: t[0])
    diffs = sp.diff_store.data[: sp.diff_store.n]
    with np.errstate(all="ignore"):
        std = np.sqrt(sp.m2 / sp.n)
        center = np.where(sp.n > 0, sp.mean, np.nan)
    return Sample(
        features=feats, windows=sp.windows.data[: sp.windows.n][order], n_windows=sp.fit.seen,
        center=center, std=std, lo=sp.lo, hi=sp.hi,
        cal_rows=[s for _, _, s in segs], cal_names=[n for _, n, _ in segs],
        n_cal_rows=sp.n_cal_rows,
        interval_s=float(np.median(diffs)) / 1e9 if diffs.size else None,
        data_span=(sp.span[0] / 1e9, sp.span[1] / 1e9) if sp.span else None,
        fingerprint="sha256:" + sp.hash.hexdigest()[:16], sources=data.sources,
    )  # fmt: skip


def count_windows(
    inputs: Sequence[str | Path], table: TableSpec, features: Sequence[str], length: int,
    train_stride: int, holdout: float, spread: bool = True, min_rows: int | None = None,
) -> tuple[int, bool]:  # fmt: skip
    """The fit windows of ``inputs`` (from the plan: no feature values read), and whether
    a series spans files (which :func:`anomae.io.read_series` refuses)."""
    data = plan_dataset(expand_inputs(inputs), table, tuple(features))
    totals: dict[str, int] = {}
    files: dict[str, int] = {}
    for fp in data.files:
        for name, (_, _, n) in fp.spans.items():
            totals[name] = totals.get(name, 0) + n
            files[name] = files.get(name, 0) + 1
    count = 0
    for n in totals.values():
        for lo, hi, held in holdout_bounds(n, holdout, spread, min_rows or length):
            if not held and hi - lo >= length:
                count += (hi - lo - length) // train_stride + 1
    return count, any(k > 1 for k in files.values())


def head_features(path: Path, table: TableSpec, rows: int = 10_000) -> tuple[str, ...]:
    """The feature columns ``read_series`` would take from ``path``, judged on its first
    ``rows`` rows (identifier-like columns refused as there)."""
    import polars as pl

    from anomae.idcolumns import refuse_identifier_columns
    from anomae.io import read_series
    from anomae.textfile import kind, sniff

    if kind(path) == "parquet":
        head = pl.scan_parquet(path).head(rows).collect()
    else:
        head = pl.read_csv(path, n_rows=rows, **sniff(path).options())
    series, feats = read_series(head, table)
    refuse_identifier_columns(series, feats, str(path))
    return feats
