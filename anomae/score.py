"""Batch scoring: files in, one row per window and an event table out, written atomically.

:func:`score_files` (``anomae score``) reads a dataset (:mod:`anomae.dataset`: files, globs,
folders, hive partitions; a series may span files) in bounded batches, scores it with one
:class:`Detector` through :class:`anomae.stream_score.StreamScorer`, and writes the scores
table as it goes (:mod:`anomae.parts`): memory stays flat however large the input. The next
batch is read in a thread (:mod:`anomae.readahead`) and Parquet scores are made into tables
and written in another (:mod:`anomae.parquet_stream`) while onnxruntime scores the current
rows. On CPU, onnxruntime's calls run side by side in ``threads`` worker threads, one
onnxruntime thread each, queued ahead while the main thread reads on and finishes the
calls that are done (``StreamScorer(overlap=threads)``): a call slowed by the reader's or
the writer's thread then holds up no other, where one call on a pool of ``threads`` waits
for its slowest (docs/benchmarks.md, "Calls side by side"). The session's threads sleep
between calls (``Detector.load(spin=False)``).
:func:`score_all` scores series already in memory through the same scorer. The result is
the same as scoring each whole series at once: windows of a series (its gap segments
windowed on their own), their table (series, timestamp of the window end, score,
normalised score, flags, coverage, top features) and its events. **Row order**: the
scores table is in the order windows settle, each series in time order and series
interleaved as their rows are read; events are in the order they end. Sort by
``(series, timestamp)`` (events: ``(series, start)``) for a fixed order.

Both outputs are complete in temporary files beside their targets before either is
renamed, the events file first and the scores file last, so new scores imply new events;
a failure (a full disk) or a kill leaves the previous files in place and the next run
removes the temporaries. Parquet outputs carry the same ``anomae.run_id`` (and the
model's sha256) in their key-value metadata, so a mismatched pair can be told.

The normalised score is ``score / threshold`` (the model card's threshold of the series,
:meth:`~anomae.spec.Threshold.for_series`, or ``threshold`` for every series), or, with
``likelihood`` set, the anomaly likelihood of the series' own scores (:mod:`anomae.likelihood`):
no threshold is needed then, and each series' first ``warmup`` windows get no verdict (NaN),
so give a series its recent history in front when it should be judged from its first row.
"""

from __future__ import annotations

import io as _io
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from anomae import interrupts
from anomae.atomic import check_outputs, write_atomically
from anomae.batches import read_batches
from anomae.dataset import Dataset, FilePlan, expand_inputs, plan_dataset
from anomae.detector import Detector, call_workers
from anomae.events import PostRule
from anomae.io import SeriesData, TableSpec
from anomae.likelihood import Likelihood
from anomae.parts import PART_ROWS, TableWriter, commit
from anomae.progress import Progress
from anomae.readahead import read_ahead
from anomae.spec import WindowSpec
from anomae.stream_score import StreamScorer, StreamTotals

BATCH_ROWS = 262_144  # rows read at a time: ~20 MB of 8 float64 features

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "series": pl.Utf8(),
    "start": pl.Datetime("ns", "UTC"),
    "end": pl.Datetime("ns", "UTC"),
    "peak": pl.Datetime("ns", "UTC"),
    "peak_score_normalised": pl.Float64(),
    "duration_s": pl.Float64(),
    "n_windows": pl.Int64(),
    "top_features": pl.Utf8(),
}


@dataclass(frozen=True)
class ScoreOptions:
    rule: PostRule = PostRule(min_windows=3)
    top_k: int = 3
    threshold: float | None = None  # overrides the model card's
    likelihood: Likelihood | None = None  # alarm on the anomaly likelihood, not the threshold
    chunk_windows: int | None = None  # None: the detector's default for its device
    max_gap_s: float | None = None  # None: the model card's gap rule; 0: window across gaps
    progress: bool | None = None  # None: a bar when stderr is a terminal

    def __post_init__(self) -> None:
        t = self.threshold
        if t is not None and not (np.isfinite(t) and t > 0):
            raise ValueError(f"threshold must be a finite number > 0, got {t}")
        g = self.max_gap_s
        if g is not None and not (np.isfinite(g) and g >= 0):
            raise ValueError(f"max_gap_s must be a finite number >= 0 (0: no gap rule), got {g}")


@dataclass
class ScoreSummary:
    n_series: int = 0
    n_rows: int = 0
    n_windows: int = 0
    n_anomalous: int = 0
    n_events: int = 0
    threshold: float = 0.0
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    run_id: str = ""


def window_labels(labels: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """A window is labelled anomalous when any of its rows is (int8 ``[windows]``)."""
    csum = np.concatenate([[0], np.cumsum(labels > 0, dtype=np.int64)])
    return (csum[ends + 1] - csum[ends + 1 - length] > 0).astype(np.int8)


def window_interval(timestamps: np.ndarray, window: WindowSpec) -> float | None:
    """Median seconds between consecutive windows of a series (None under two rows)."""
    if timestamps.size < 2:
        return None
    return float(np.median(np.diff(timestamps))) * window.stride / 1e9


def encode_table(
    df: pl.DataFrame, path: str | Path, metadata: dict[str, str] | None = None
) -> bytes:
    """``df`` as Parquet bytes (CSV for a ``.csv`` path, which cannot hold ``metadata``;
    its UTC times are RFC 3339, ``2026-01-05T00:01:00Z``)."""
    buf = _io.BytesIO()
    if str(path).lower().endswith(".csv"):
        times = [t for t in df.schema.values() if isinstance(t, pl.Datetime)]
        utc = all(t.time_zone == "UTC" for t in times)
        df.write_csv(buf, datetime_format="%Y-%m-%dT%H:%M:%S%.fZ" if utc else None)
    else:
        df.write_parquet(buf, metadata=metadata)
    return buf.getvalue()


def write_table(df: pl.DataFrame, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write Parquet (or CSV for ``.csv``) atomically: complete file or nothing."""
    write_atomically([(path, encode_table(df, path, metadata))])


def events_frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    """The events table of event records (:class:`anomae.stream_events.EventStream`)."""
    if not events:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    return pl.DataFrame(
        events, schema_overrides={"series": pl.Utf8, "top_features": pl.Utf8}
    ).cast(EVENT_SCHEMA)  # type: ignore[arg-type]


def score_all(
    det: Detector, series: list[SeriesData], opts: ScoreOptions = ScoreOptions()
) -> tuple[pl.DataFrame, pl.DataFrame, ScoreSummary]:
    """Score every series with ``det``; return (windows, events, summary), series after
    series, each in time order (a series named twice continues where it stopped)."""
    t0 = time.perf_counter()
    labels = bool(series) and all(s.labels is not None for s in series)
    sc = StreamScorer(det, opts, labels, later=True)  # one table of every call's pieces
    pieces: list[Any] = []
    with Progress(sum(s.values.shape[0] for s in series), "scoring", "rows",
                  enabled=opts.progress) as bar:  # fmt: skip
        for i, s in enumerate(series):
            pieces += sc.push(s.name, s.timestamps, s.values, s.labels if labels else None)
            if all(o.name != s.name for o in series[i + 1 :]):
                pieces += sc.finish(s.name)
            bar.update(s.values.shape[0])
    windows = sc.table(pieces) if pieces else pl.DataFrame()
    return windows, events_frame(sc.events), run_summary(sc, t0)


def run_summary(
    sc: StreamScorer, t0: float, totals: StreamTotals | None = None, n_events: int | None = None
) -> ScoreSummary:
    """The run's summary: ``sc``'s counts (or ``totals``, summed over several scorers)."""
    t = totals or sc.totals
    return ScoreSummary(
        n_series=t.n_series,
        n_rows=t.n_rows,
        n_windows=t.n_windows,
        n_anomalous=t.n_anomalous,
        n_events=len(sc.events) if n_events is None else n_events,
        threshold=sc.ths.value,
        seconds=time.perf_counter() - t0,
    )


def open_run(
    model: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    events: str | Path | None,
    table: TableSpec,
    opts: ScoreOptions,
    force: bool,
    device: str,
    threads: int,
    later: bool = False,
    overlap: bool = False,
) -> tuple[Detector, Any, StreamScorer]:
    """The start of a scoring run: the inputs expanded, the outputs checked (never over an
    input or the model; an existing one only with ``force``), the model loaded, the dataset
    planned, and the scorer (``later``: :class:`StreamScorer`'s; ``overlap``: calls run in
    worker threads, on CPU ``threads`` of them (0: a core each) with one onnxruntime thread
    each, on a GPU one)."""
    outs = [output] if events is None else [output, events]
    files = expand_inputs(inputs)
    check_outputs(outs, [model, *files], force)
    workers = 0
    if overlap:
        workers, threads = call_workers(device, threads)
    # the reader's and the writer's threads need the cores between calls
    det = Detector.load(model, device=device, threads=threads, spin=False)
    data = plan_dataset(files, table, det.card.features)
    return det, data, StreamScorer(det, opts, data.labels, later, workers)


def run_writers(
    model_sha256: str,
    output: str | Path,
    events: str | Path | None,
    part_rows: int,
    stream: bool = False,
) -> tuple[str, list[TableWriter]]:
    """A run id and the writers of one scoring run: the events file's first (if any), the
    scores' last, which is committed last and so marks a complete run. ``stream``: the
    scores (Parquet) are written in a background thread as they come, in one pass."""
    run_id = uuid.uuid4().hex
    meta = {"anomae.run_id": run_id, "anomae.model_sha256": model_sha256}
    writers = [TableWriter(output, meta, part_rows, stream=stream)]
    if events is not None:
        writers.insert(0, TableWriter(events, meta))
    return run_id, writers


def _dataset_batches(
    data: Dataset, table: TableSpec, features: Sequence[str], batch_rows: int
) -> Iterator[tuple[FilePlan, list[SeriesData] | None, int]]:
    """Every file's batches (:func:`read_batches`) in reading order, each file followed by
    ``(file, None, 0)``: its series in ``file.ends`` are complete."""
    for fp in data.files:
        for chunks, n in read_batches(fp, table, features, data.labels, batch_rows):
            yield fp, chunks, n
            del chunks  # not held here while the next batch is read
        yield fp, None, 0


def _push_batch(sc: StreamScorer, chunks: list[SeriesData], out: TableWriter) -> None:
    for s in chunks:
        out.append_pieces(sc.push(s.name, s.timestamps, s.values, s.labels), sc.table)


def score_files(
    model: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    events: str | Path | None = None,
    table: TableSpec = TableSpec(),
    opts: ScoreOptions = ScoreOptions(),
    device: str = "cpu",
    threads: int = 0,
    force: bool = False,
    batch_rows: int = BATCH_ROWS,
    part_rows: int = PART_ROWS,
) -> ScoreSummary:
    """``anomae score``: score the dataset ``inputs`` with ``model``, write ``output``
    (+ ``events``), reading ``batch_rows`` rows at a time (the next batch read ahead in a
    thread) and writing the scores in pieces of ``part_rows`` rows (at most
    :data:`~anomae.parts.STREAM_ROWS` for Parquet, written in a thread as they come).

    Refuses, before any work, to write over an input or the model, or (unless ``force``)
    to replace an existing output. The outputs are replaced together (module docstring)."""
    t0 = time.perf_counter()
    # the scores table is made of the pieces by the Parquet writer's threads, and each
    # onnxruntime call runs while the main thread finishes the one before
    det, data, sc = open_run(model, inputs, output, events, table, opts, force, device,
                             threads, later=True, overlap=True)  # fmt: skip
    run_id, writers = run_writers(det.sha256, output, events, part_rows, stream=True)
    out = writers[-1]
    try:
        # the next batch is read and split in a thread while this one is scored
        batches = read_ahead(_dataset_batches(data, table, det.card.features, batch_rows))
        with closing(batches), Progress(data.rows, "scoring", "rows",
                                        enabled=opts.progress) as bar:  # fmt: skip
            for fp, chunks, n in batches:
                if chunks is None:  # the end of file fp
                    for name in sorted(fp.ends):
                        out.append_pieces(sc.finish(name), sc.table)
                    continue
                _push_batch(sc, chunks, out)
                del chunks  # copied into the scorer: let the next batch take its place
                bar.update(n)
        out.append_pieces(sc.drain(), sc.table)
        if out.rows == 0 and not out._pending and not out._later:
            out.append(sc.empty_table())
        if events is not None:
            writers[0].append(events_frame(sc.events))
        temps = [w.finish() for w in writers]
        interrupts.check()  # a Ctrl-C during the last series' ends: nothing committed
        commit(writers, temps)  # events first, scores last: marks a complete run
    except BaseException:
        for w in writers:
            w.discard()
        raise
    finally:
        sc.close()
    summary = run_summary(sc, t0)
    summary.run_id = run_id
    summary.outputs["scores"] = str(output)
    if events is not None:
        summary.outputs["events"] = str(events)
    return summary
