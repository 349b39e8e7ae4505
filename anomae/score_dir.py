"""Scoring into a folder of partitions that a killed run resumes: ``anomae score MODEL
INPUTS -o OUT/ [--resume]``.

When the output is a folder (a path ending in ``/``, or an existing folder), the series are
split into ``partitions`` groups by the stable hash of :func:`anomae.score_cluster.group_of`
and each group is scored on its own (:func:`anomae.score_cluster.score_group`: its series
read from the files with the filter pushed down) into ``OUT/group=K/scores.parquet`` and
``OUT/group=K/events.parquet`` (``K`` zero-padded; hive style, so ``pl.scan_parquet(OUT)``
reads them all with a ``group`` column; not ``series=``, which would shadow the series
column). Each file is complete in a temporary before it is renamed into place, and then
``OUT/_manifest.json`` is rewritten (atomically) to list the partition as done.

The manifest records the model's sha256, the partition count and the inputs (path, size,
modification time). A killed run leaves its finished partitions and the manifest;
``--resume`` scores only the partitions not listed there, and refuses, saying which, a
manifest written for another model, another partition count or inputs that changed since.
Without ``--resume`` an existing manifest is refused unless ``force`` (start over: the old
partitions are replaced as the new ones finish).

A series lives in one partition, so the numbers are the single file's (scores bitwise).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anomae.atomic import atomic_write_bytes, check_outputs
from anomae.dataset import expand_inputs, plan_dataset
from anomae.detector import Detector
from anomae.errors import InputError
from anomae.io import TableSpec
from anomae.parts import PART_ROWS, TableWriter, commit
from anomae.score import BATCH_ROWS, ScoreOptions, ScoreSummary, events_frame
from anomae.score_cluster import GroupTask, group_of, score_group
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
) -> ScoreSummary:
    """Score ``inputs`` into the folder ``output``, one partition per series group (module
    docstring); returns the summary of the partitions scored by this run."""
    t0 = time.perf_counter()
    folder = Path(output)
    files = expand_inputs(inputs)
    check_outputs([folder / MANIFEST], [model, *files], force=True)
    inside = [f for f in files if folder.resolve() in f.resolve().parents]
    if inside:
        raise InputError(f"{inside[0]}: an input inside the output folder {folder}; write the "
                         "partitions elsewhere")  # fmt: skip
    manifest = folder / MANIFEST
    det = Detector.load(model, device=device, threads=threads)
    want = {"model_sha256": det.sha256, "partitions": partitions, "inputs": _inputs(files)}
    done: set[int] = set()
    if manifest.exists():
        if resume:
            done = _check_manifest(manifest, want)
        elif not force:
            raise InputError(f"{folder}: holds a scoring run ({MANIFEST}); --resume finishes it, "
                             "--force starts over")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    data = plan_dataset(files, table, det.card.features)
    names: dict[int, set[str]] = {}
    for fp in data.files:
        for name in fp.spans:
            names.setdefault(group_of(name, partitions), set()).add(name)
    run_id = uuid.uuid4().hex
    meta = {"anomae.run_id": run_id, "anomae.model_sha256": det.sha256}
    record: dict[str, Any] = {**want, "done": {}}
    if done:
        record["done"] = json.loads(manifest.read_text())["done"]
    else:  # a fresh start: no partition of an earlier run counts
        atomic_write_bytes(manifest, json.dumps(record).encode())
    empty = StreamScorer(det, opts, data.labels).empty_table()
    summary = ScoreSummary(threshold=StreamScorer(det, opts, False).ths.value, run_id=run_id)
    width = len(str(partitions - 1))
    for k in range(partitions):
        if k in done:
            continue
        part = folder / f"group={k:0{width}d}"
        group = frozenset(names.get(k, ()))
        task = GroupTask(str(Path(model).resolve()), det.sha256,
                         [fp for fp in data.files if not group.isdisjoint(fp.spans)], group,
                         table, opts, data.labels, str((part / "scores.parquet").resolve()),
                         device, threads, batch_rows, part_rows)  # fmt: skip
        part.mkdir(exist_ok=True)
        writers = [TableWriter(part / "events.parquet", meta),
                   TableWriter(part / "scores.parquet", meta, part_rows)]  # fmt: skip
        try:
            r = score_group(task)
            writers[1].adopt(r.parts, r.rows)
            if writers[1].rows == 0:
                writers[1].append(empty)
            writers[0].append(events_frame(r.events))
            commit(writers, [w.finish() for w in writers])
        except BaseException:
            for w in writers:
                w.discard()
            raise
        record["done"][str(k)] = {"rows": r.totals.n_rows, "windows": r.totals.n_windows,
                                  "events": len(r.events)}  # fmt: skip
        atomic_write_bytes(manifest, json.dumps(record).encode())
        for key in ("n_series", "n_rows", "n_windows", "n_anomalous"):
            setattr(summary, key, getattr(summary, key) + getattr(r.totals, key))
        summary.n_events += len(r.events)
    for stale in folder.glob("group=*"):  # partitions of another partition count
        if stale.is_dir() and stale.name.removeprefix("group=") not in {
            f"{k:0{width}d}" for k in range(partitions)
        }:
            shutil.rmtree(stale)
    summary.seconds = time.perf_counter() - t0
    summary.outputs = {"scores": str(folder), "resumed": str(len(done))}
    return summary
