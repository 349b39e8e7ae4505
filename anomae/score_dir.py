"""Scoring into a folder of partitions that a killed run resumes: ``anomae score MODEL
INPUTS -o OUT/ [--partition-by group|date] [--resume] [--dask ADDRESS]``.

When the output is a folder (a path ending in ``/``, or an existing folder), the series are
split into ``partitions`` groups by the stable hash of :func:`anomae.score_cluster.group_of`
and each group is scored on its own (:func:`anomae.folder_parts.write_group`: its series
read from the files with the filter pushed down) into its files, each complete in a
temporary before it is renamed into place; then ``OUT/_manifest.json`` is rewritten
(atomically) to list the group as done, with its files. The layouts
(:mod:`anomae.folder_parts`):

* ``group`` (default): ``OUT/group=K/scores.parquet`` and ``OUT/group=K/events.parquet``
  (``K`` zero-padded; hive style, so ``pl.scan_parquet("OUT/group=*/scores.parquet")``
  reads them all with a ``group`` column; not ``series=``, which would shadow the series
  column);
* ``date``: ``OUT/date=YYYY-MM-DD/scores-K.parquet`` and ``events-K.parquet``, per UTC day
  of the window timestamps (an event in the day it starts). The group stays the unit of
  work and of resumption: a day cannot be scored alone (windows, events and the
  likelihood's state cross midnight).

With a Dask ``client`` (:func:`anomae.score_cluster.dask_client`) each group is a task
that writes its own files on a worker; the driver alone rewrites the manifest, as each
task succeeds. A failed task cancels the tasks not started and fails the run: the manifest
lists exactly the groups whose files are in place, and ``--resume`` continues from there.
The files are the single process's, row for row.

The manifest records the model's sha256, the partition count, the layout and the inputs
(path, size, modification time). A killed run leaves its finished partitions and the
manifest; ``--resume`` scores only the groups not listed there, and refuses, saying which,
a manifest written for another model, another partition count or layout, or inputs that
changed since. Without ``--resume`` an existing manifest is refused unless ``force`` (start
over: the old files are replaced as the new ones finish). Once every group is done, files
in ``group=*`` / ``date=*`` folders that the manifest does not list (an earlier run's) are
removed.

A series lives in one group, so the numbers are the single file's (scores bitwise).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from anomae.atomic import atomic_write_bytes, check_outputs
from anomae.dataset import expand_inputs, plan_dataset
from anomae.detector import Detector
from anomae.errors import InputError
from anomae.folder_parts import LAYOUTS, FolderTask, check_dates, check_key, write_group
from anomae.io import TableSpec
from anomae.parts import PART_ROWS
from anomae.progress import Progress
from anomae.score import BATCH_ROWS, ScoreOptions, ScoreSummary, events_frame
from anomae.score_cluster import GroupTask, group_of
from anomae.stream_score import StreamScorer

MANIFEST = "_manifest.json"


def is_folder_output(output: str | Path) -> bool:
    """Whether ``output`` names a folder of partitions (ends with a separator, or is one)."""
    text = str(output)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def _inputs(files: Sequence[Path]) -> list[list[Any]]:
    out = []
    for p in files:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _check_manifest(path: Path, want: dict[str, Any]) -> set[int]:
    """The partitions the manifest at ``path`` lists as done, after checking it was written
    for this model, partition count and inputs."""
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc}); score into a new folder, "
                         "or drop --resume and add --force to start over") from exc  # fmt: skip
    fix = "score into a new folder, or drop --resume and add --force to start over"
    if got.get("model_sha256") != want["model_sha256"]:
        raise InputError(
            f"{path}: written by another model (sha256 {str(got.get('model_sha256'))[:12]}, "
            f"this one {want['model_sha256'][:12]}); its partitions would mix two models' "
            f"scores: {fix}"
        )
    if got.get("partition_by", "group") != want["partition_by"]:
        raise InputError(f"{path}: written with --partition-by {got.get('partition_by', 'group')}"
                         f", this run has {want['partition_by']}: {fix}")  # fmt: skip
    if got.get("partitions") != want["partitions"]:
        raise InputError(f"{path}: written with {got.get('partitions')} partitions, this run "
                         f"has {want['partitions']} (--partitions): {fix}")  # fmt: skip
    if got.get("inputs") != want["inputs"]:
        old = {i[0]: i for i in got.get("inputs", [])}
        new = {i[0]: i for i in want["inputs"]}
        diff = sorted(set(old) ^ set(new)) + sorted(k for k in old.keys() & new.keys()
                                                    if old[k] != new[k])  # fmt: skip
        raise InputError(f"{path}: the inputs changed since it was written ({', '.join(diff[:3])}"
                         f"{' ...' if len(diff) > 3 else ''}): {fix}")  # fmt: skip
    return {int(k) for k in got.get("done", {})}


def score_to_folder(
    model: str | Path,
    inputs: Sequence[str | Path],
    output: str | Path,
    table: TableSpec = TableSpec(),
    opts: ScoreOptions = ScoreOptions(),
    partitions: int = 16,
    resume: bool = False,
    device: str = "cpu",
    threads: int = 0,
    force: bool = False,
    batch_rows: int = BATCH_ROWS,
    part_rows: int = PART_ROWS,
    partition_by: str = "group",
    client: Any = None,
) -> ScoreSummary:
    """Score ``inputs`` into the folder ``output``, one task per series group (module
    docstring), on ``client``'s Dask workers when given; returns the summary of the groups
    scored by this run."""
    t0 = time.perf_counter()
    if partition_by not in LAYOUTS:
        raise InputError(f"partition_by={partition_by!r}: not one of {', '.join(LAYOUTS)}")
    folder = Path(output)
    files = expand_inputs(inputs)
    check_outputs([folder / MANIFEST], [model, *files], force=True)
    inside = [f for f in files if folder.resolve() in f.resolve().parents]
    if inside:
        raise InputError(f"{inside[0]}: an input inside the output folder {folder}; write the "
                         "partitions elsewhere")  # fmt: skip
    manifest = folder / MANIFEST
    det = Detector.load(
        model, device=device, threads=1 if client is not None else threads, spin=False
    )
    want = {"model_sha256": det.sha256, "partitions": partitions, "inputs": _inputs(files),
            "partition_by": partition_by}  # fmt: skip
    done: set[int] = set()
    if manifest.exists():
        if resume:
            done = _check_manifest(manifest, want)
        elif not force:
            raise InputError(f"{folder}: holds a scoring run ({MANIFEST}); --resume finishes it, "
                             "--force starts over")  # fmt: skip
    data = plan_dataset(files, table, det.card.features)
    empty = StreamScorer(det, opts, data.labels).empty_table()
    for name in (partition_by, "group", "date"):
        check_key(name, empty.columns, str(folder))
        check_key(name, events_frame([]).columns, str(folder))
    if partition_by == "date":
        check_dates(data.files, table.timestamp, table.timestamp_unit)
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[int, set[str]] = {}
    for fp in data.files:
        for name in fp.spans:
            names.setdefault(group_of(name, partitions), set()).add(name)
    run_id = uuid.uuid4().hex
    record: dict[str, Any] = {**want, "done": {}}
    if done:
        record["done"] = json.loads(manifest.read_text())["done"]
    else:  # a fresh start: no partition of an earlier run counts
        atomic_write_bytes(manifest, json.dumps(record).encode())
    summary = ScoreSummary(threshold=StreamScorer(det, opts, False).ths.value, run_id=run_id)
    width = len(str(partitions - 1))
    tasks: list[FolderTask] = []
    for k in range(partitions):
        if k in done:
            continue
        group = frozenset(names.get(k, ()))
        task = GroupTask(str(Path(model).resolve()), det.sha256,
                         [fp for fp in data.files if not group.isdisjoint(fp.spans)], group,
                         table, opts, data.labels, "", device,
                         (threads or 1) if client is not None else threads, batch_rows,
                         part_rows, side_by_side=client is None)  # fmt: skip
        tasks.append(FolderTask(task, str(folder.resolve()), k, width, partition_by, run_id))

    def finished(ft: FolderTask, got: dict[str, Any]) -> None:
        record["done"][str(ft.key)] = got
        record["done"] = dict(sorted(record["done"].items(), key=lambda kv: int(kv[0])))
        atomic_write_bytes(manifest, json.dumps(record).encode())
        for key in ("series", "rows", "windows", "anomalous", "events"):
            setattr(summary, f"n_{key}", getattr(summary, f"n_{key}") + got.get(key, 0))

    rows = [sum(fp.spans[n][2] for fp in ft.task.files for n in ft.task.names & fp.spans.keys())
            for ft in tasks]  # fmt: skip
    with Progress(sum(rows), "scoring", "rows", enabled=opts.progress) as bar:
        if client is None:
            for ft, n in zip(tasks, rows, strict=True):
                finished(ft, write_group(ft))
                bar.update(n)
        else:
            _on_dask(client, tasks, rows, finished, bar)
    _remove_unlisted(folder, record["done"], width)
    summary.seconds = time.perf_counter() - t0
    summary.outputs = {"scores": str(folder), "resumed": str(len(done))}
    return summary


def _on_dask(
    client: Any,
    tasks: list[FolderTask],
    rows: list[int],
    finished: Callable[[FolderTask, dict[str, Any]], None],
    bar: Progress,
) -> None:
    """Run ``tasks`` on ``client``'s workers, each writing its own files; the manifest is
    the driver's alone, rewritten as each task succeeds. On a failure the tasks not started
    are cancelled and the error raised: the manifest lists exactly the groups whose files
    are in place (a running task may still put its files in place unlisted: --resume
    rescores and replaces them)."""
    from distributed import as_completed

    futures = client.map(write_group, tasks, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    try:
        for fut in as_completed(futures):
            i = index[fut.key]
            finished(tasks[i], fut.result())
            bar.update(rows[i])
    except BaseException:
        client.cancel(futures)
        raise


def _remove_unlisted(folder: Path, done: dict[str, Any], width: int) -> None:
    """After a complete run: delete the output files in ``group=*`` / ``date=*`` folders
    that the manifest does not list (an earlier run's, of another partition count or
    layout), and the folders left empty."""
    listed = {f for rec in done.values() for f in rec.get("files", ())}
    # a manifest written before records listed their files: the group layout's two
    listed |= {f"group={int(k):0{width}d}/{t}.parquet" for k, rec in done.items()
               if "files" not in rec for t in ("scores", "events")}  # fmt: skip
    for sub in [*folder.glob("group=*"), *folder.glob("date=*")]:
        if not sub.is_dir():
            continue
        for f in sub.iterdir():
            name = f.name
            ours = name.endswith(".parquet") and name.startswith(("scores", "events"))
            if ours and f"{sub.name}/{name}" not in listed:
                f.unlink()
        if not any(sub.iterdir()):
            sub.rmdir()
