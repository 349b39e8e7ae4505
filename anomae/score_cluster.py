"""Batch scoring spread over Dask workers: ``anomae score MODEL INPUTS -o OUT --dask ADDRESS``.

The driver plans the dataset (:func:`anomae.dataset.plan_dataset`: the one pass over the
timestamp and series columns, with all its checks), splits the series into ``groups`` by a
stable hash (:func:`group_of`: CRC-32 of the name modulo the group count, as
:func:`anomae.monitor.series.shard_of` shards a fleet, the same on every machine) and
submits one task per group. A task (:func:`score_group`) loads the model (once per worker
process), reads every file holding one of its series with a filter on the series column
pushed down into the scan, scores its series through
:class:`~anomae.stream_score.StreamScorer` and writes its scores in Parquet parts beside
the output (temporaries named as :mod:`anomae.atomic` names them); it returns the parts,
its events and its counts. The driver merges the parts into the output and writes the
events as :func:`anomae.score.score_files` does: both complete in temporaries, then
renamed into place, events first and scores last. A failed task fails the run and leaves
the old outputs as they were.

A series lives in one task, so the numbers are the single process's (scores bitwise);
rows come group after group, each group's in the order :func:`~anomae.score.score_files`
would give them: sort by ``(series, timestamp)`` (events: ``(series, start)``) for a fixed
order.

``ADDRESS`` is a scheduler (``tcp://host:8786``) or ``local:N``, a :class:`LocalCluster` of
``N`` worker processes with one thread each on this machine, each bound to its own share of
the cores (:func:`bind_workers`). Workers need anomae (the same
version) and must reach the model, the inputs and the output's folder by the same paths as
the driver (a shared file system); a task checks that the model it opens is the driver's
(sha256). Each task runs onnxruntime on ``threads`` threads (0: one, as each Dask thread
runs one task).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from anomae.batches import read_batches
from anomae.dataset import FilePlan
from anomae.detector import Detector, DetectorError, call_workers
from anomae.errors import AnomaeError, InputError, install_hint
from anomae.io import TableSpec
from anomae.parts import PART_ROWS, TableWriter, commit
from anomae.progress import Progress
from anomae.score import (
    BATCH_ROWS,
    ScoreOptions,
    ScoreSummary,
    events_frame,
    open_run,
    run_summary,
    run_writers,
)
from anomae.stream_score import StreamScorer, StreamTotals

_DETECTORS: dict[tuple[str, str, str, int], Detector] = {}  # per worker process


def group_of(name: str, n: int) -> int:
    """The group (``0 .. n - 1``) of series ``name``, the same in every process.

    >>> [group_of(s, 3) for s in ("m1", "m2", "m3", "pump-17")]
    [0, 0, 1, 1]
    """
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % n


@dataclass(frozen=True)
class GroupTask:
    """What one task scores: the series ``names`` in ``files`` (reading order)."""

    model: str
    sha256: str
    files: list[FilePlan]
    names: frozenset[str]
    table: TableSpec
    opts: ScoreOptions
    labels: bool
    output: str
    device: str = "cpu"
    threads: int = 1
    batch_rows: int = BATCH_ROWS
    part_rows: int = PART_ROWS
    # the calls side by side in ``threads`` worker threads (a single process's groups); a
    # Dask task makes its own calls on the one thread Dask gives it (extra threads per task
    # cut local:2's rate against one worker from 1.47-1.50x to 1.22-1.30x on 2 cores)
    side_by_side: bool = False

    def session(self) -> tuple[int, int]:
        """``(worker threads for the calls, the session's threads)``."""
        if self.side_by_side:
            return call_workers(self.device, self.threads)
        return 0, self.threads


@dataclass
class GroupResult:
    parts: list[Path]
    rows: int
    events: list[dict[str, Any]]
    totals: StreamTotals


def worker_detector(model: str, sha256: str, device: str = "cpu", threads: int = 1) -> Detector:
    """The model for a task on this Dask worker, loaded once per worker process and checked
    to be the caller's (the same sha256): workers must see the same file by the same path."""
    key = (model, sha256, device, threads)
    det = _DETECTORS.get(key)
    if det is None:
        det = Detector.load(model, device=device, threads=threads)
        if det.sha256 != sha256:
            raise DetectorError(
                f"{model}: on this Dask worker the model is not the caller's (sha256 "
                f"{det.sha256[:12]} vs {sha256[:12]}); workers must see the same files "
                "by the same paths (a shared file system)"
            )
        _DETECTORS[key] = det
    return det


def score_group(task: GroupTask) -> GroupResult:
    """Score one group's series (module docstring); runs on a worker (``side_by_side``: its
    onnxruntime calls in worker threads, as ``score_files``')."""
    workers, threads = task.session()
    det = worker_detector(task.model, task.sha256, task.device, threads)
    sc = StreamScorer(det, replace(task.opts, progress=False), task.labels, later=True,
                      overlap=workers)  # fmt: skip
    out = TableWriter(task.output, None, task.part_rows, parts_only=True)
    feats = det.card.features
    try:
        for fp in task.files:
            for chunks, _ in read_batches(fp, task.table, feats, task.labels, task.batch_rows,
                                          task.names):  # fmt: skip
                for s in chunks:
                    out.append_pieces(sc.push(s.name, s.timestamps, s.values, s.labels),
                                      sc.table)  # fmt: skip
            for name in sorted(fp.ends & task.names):
                out.append_pieces(sc.finish(name), sc.table)
        out.append_pieces(sc.drain(), sc.table)
        parts = out.hand_over()
    except BaseException:
        out.discard()
        raise
    finally:
        sc.close()
    return GroupResult(parts, out.rows, sc.events, sc.totals)


def parse_address(address: str) -> tuple[str, int]:
    """``("local", N)`` for ``local:N``, else ``("remote", 0)``; refuses a bad ``N``."""
    if address.startswith("local:"):
        n = address.removeprefix("local:")
        if not (n.isdigit() and int(n) >= 1):
            raise InputError(
                f"--dask {address}: N in local:N is the number of worker processes, an "
                "integer >= 1 (e.g. local:2)"
            )
        return "local", int(n)
    return "remote", 0


def core_shares(cores: Sequence[int], n: int) -> list[list[int]] | None:
    """``cores`` split into ``n`` contiguous, disjoint shares as even as can be, or None
    when there are fewer cores than ``n`` (workers would have to share one).

    >>> core_shares([0, 1, 2, 3, 4], 2)
    [[0, 1, 2], [3, 4]]
    >>> core_shares([0, 1], 3) is None
    True
    """
    if n < 1 or len(cores) < n:
        return None
    size, extra = divmod(len(cores), n)
    shares, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        shares.append(list(cores[start:end]))
        start = end
    return shares


def _bind_here(cores: list[int]) -> list[int]:
    """Bind every thread of this process (and the threads it starts later) to ``cores``."""
    import os

    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that has just ended
            pass
    return sorted(os.sched_getaffinity(0))


def bind_workers(client: Any) -> list[list[int]] | None:
    """Give each worker process of a ``local:N`` cluster its own share of this process's
    cores (Linux; elsewhere, or with fewer cores than workers, nothing is bound).

    A worker's reader and writer threads otherwise run on its neighbours' cores: one
    worker alone then holds more than one core, and two on two cores evict each other's
    threads (docs/benchmarks.md, "Dask on this machine": local:2 against local:1 on one
    core 1.56-1.77x bound, 1.43-1.62x free, in the same runs)."""
    import os

    if not (hasattr(os, "sched_setaffinity") and os.path.isdir("/proc/self/task")):
        return None
    workers = sorted(client.scheduler_info()["workers"])
    shares = core_shares(sorted(os.sched_getaffinity(0)), len(workers))
    if shares is None or len(shares) < 2:
        return None
    return [client.run(_bind_here, share, workers=[w])[w]
            for w, share in zip(workers, shares, strict=True)]  # fmt: skip


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (``local:N`` or a scheduler address)."""
    kind, n = parse_address(address)
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise AnomaeError(f"--dask needs Dask: {install_hint('dask')}") from exc
    if kind == "local":
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster:  # fmt: skip
            with Client(cluster) as client:
                bind_workers(client)
                yield client
        return
    try:
        client = Client(address, timeout="30s")
    except OSError as exc:
        raise AnomaeError(
            f"--dask {address}: cannot reach the Dask scheduler ({exc}); start one "
            "(`dask scheduler`, or see the README's 'Scoring on a Dask cluster') or check "
            "the address"
        ) from exc
    with client:
        yield client


def score_files_dask(
    model: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    events: str | Path | None = None,
    table: TableSpec = TableSpec(),
    opts: ScoreOptions = ScoreOptions(),
    client: Any = None,
    groups: int | None = None,
    device: str = "cpu",
    threads: int = 0,
    force: bool = False,
    batch_rows: int = BATCH_ROWS,
    part_rows: int = PART_ROWS,
) -> ScoreSummary:
    """:func:`anomae.score.score_files` with the series scored by ``client``'s workers in
    ``groups`` tasks (None: four per worker thread); see the module docstring."""
    t0 = time.perf_counter()
    # the driver's scorer makes only the empty table and the threshold: one thread
    det, data, sc = open_run(model, inputs, output, events, table, opts, force, device, 1)
    n_groups = groups or max(1, 4 * sum(client.nthreads().values()))
    names: dict[int, set[str]] = {}
    for fp in data.files:
        for name in fp.spans:
            names.setdefault(group_of(name, n_groups), set()).add(name)
    tasks = [
        GroupTask(str(Path(model).resolve()), det.sha256,
                  [fp for fp in data.files if not group.isdisjoint(fp.spans)],
                  frozenset(group), table, opts, data.labels, str(Path(output).resolve()),
                  device, threads or 1, batch_rows, part_rows)  # fmt: skip
        for _, group in sorted(names.items())
    ]
    run_id, writers = run_writers(det.sha256, output, events, part_rows)
    out = writers[-1]
    results: list[GroupResult | None] = [None] * len(tasks)
    futures: list[Any] = []
    try:
        from distributed import as_completed

        futures = client.map(score_group, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        rows = [sum(fp.spans[n][2] for fp in t.files for n in t.names & fp.spans.keys())
                for t in tasks]  # fmt: skip
        with Progress(data.rows, "scoring", "rows", enabled=opts.progress) as bar:
            for fut in as_completed(futures):
                i = index[fut.key]
                results[i] = fut.result()
                bar.update(rows[i])
        totals = StreamTotals()
        found: list[dict[str, Any]] = []
        for r in results:
            assert r is not None
            out.adopt(r.parts, r.rows)
            found += r.events
            totals.add(r.totals)
        if out.rows == 0 and not out._pending:
            out.append(sc.empty_table())
        if events is not None:
            writers[0].append(events_frame(found))
        temps = [w.finish() for w in writers]
        commit(writers, temps)  # events first, scores last: marks a complete run
    except BaseException:
        client.cancel(futures)  # tasks not started; running ones finish, their parts stale
        for r in results:
            for p in r.parts if r is not None else []:
                p.unlink(missing_ok=True)
        for w in writers:
            w.discard()
        raise
    summary = run_summary(sc, t0, totals, len(found))
    summary.run_id = run_id
    summary.outputs = {"scores": str(output), **({"events": str(events)} if events else {})}
    return summary
