"""One series group scored into its files of a folder output (:mod:`anomae.score_dir`), in
the process that scores it: the driver's, or a Dask worker's.

:func:`write_group` scores the group (:func:`anomae.score_cluster.score_group`: its
series read with the filter pushed down, scores written in Parquet parts) and puts its
files in place, each complete in a temporary before it is renamed, events before scores:

* ``partition_by="group"``: ``group=K/scores.parquet`` and ``group=K/events.parquet``
  (an empty table when the group has no windows or no events);
* ``partition_by="date"``: per UTC day ``D`` of the window timestamps (the ``timestamp``
  column: a window's end) ``date=D/scores-K.parquet`` and ``date=D/events-K.parquet``
  (``D`` as ``YYYY-MM-DD``; an event goes to the day it starts, whatever day it ends;
  every day with scores gets an events file, empty when none start that day). The group's
  parts are split one at a time, so memory stays one part.

``K`` is the group number, zero-padded to the width of the largest. It returns the
manifest's record of the group: counts and the files (relative to the folder). Files of
the group from an earlier run that this run does not write are the driver's to remove.

Hive style: ``pl.scan_parquet("OUT/date=*/scores-*.parquet", hive_partitioning=True)``
reads the scores with a ``date`` column (``group`` for the group layout); the scores and
events tables have fixed columns, none named ``group`` or ``date``
(:func:`check_key` makes sure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from anomae.atomic import remove_stale_temps
from anomae.dataset import FilePlan
from anomae.errors import InputError
from anomae.parts import TableWriter, commit
from anomae.score import events_frame
from anomae.score_cluster import GroupTask, score_group, worker_detector
from anomae.stream_score import StreamScorer

LAYOUTS = ("group", "date")


@dataclass(frozen=True)
class FolderTask:
    """Group ``key`` of a folder output: what to score (``task``; its ``output`` is unused)
    and where its files go."""

    task: GroupTask
    folder: str
    key: int
    width: int
    partition_by: str
    run_id: str


def check_key(key: str, columns: Sequence[str], where: str) -> None:
    """Refuse a partition ``key`` that is also a column of an output table: reading the
    folder back with hive partitioning would give two columns of that name."""
    if key in columns:
        raise InputError(
            f"{where}: the output has a column {key!r}, which the {key}= partition folders "
            f"would shadow when read back (hive partitioning); choose another --partition-by"
        )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_dates(files: Sequence[FilePlan], timestamp: str, unit: str | None) -> None:
    """Refuse ``--partition-by date`` for data whose timestamps are plain numbers without
    ``--timestamp-unit``: row numbers as often as epoch times, so no calendar day."""
    if unit is not None:
        return
    for fp in files:
        if timestamp not in fp.columns:
            continue
        if fp.text is not None:
            head = pl.read_csv(fp.path, n_rows=1, infer_schema=False, **fp.text.options())
            numeric = head.height > 0 and _number(str(head[timestamp][0]).strip())
        else:
            numeric = pl.read_parquet_schema(fp.path)[timestamp].is_numeric()
        if numeric:
            raise InputError(
                f"{fp.path}: the timestamp column {timestamp!r} holds numbers, not dates (row "
                "numbers or epoch times?), so --partition-by date has no day to go by; give "
                "--timestamp-unit (s, ms, us, ns) if they are epoch times, or partition by group"
            )


def _day(column: str) -> pl.Expr:
    """The UTC day (``YYYY-MM-DD``) of a UTC datetime ``column``, as ``_d``."""
    return pl.col(column).dt.date().cast(pl.Utf8).alias("_d")


def _name(key: int, width: int) -> str:
    return f"{key:0{width}d}"


def write_group(ft: FolderTask) -> dict[str, Any]:
    """Score group ``ft.key`` and put its files in place (module docstring); runs on the
    driver or a Dask worker."""
    folder = Path(ft.folder)
    k = _name(ft.key, ft.width)
    meta = {"anomae.run_id": ft.run_id, "anomae.model_sha256": ft.task.sha256}
    if ft.partition_by == "group":
        part = folder / f"group={k}"
        task = GroupTask(**{**ft.task.__dict__, "output": str(part / "scores.parquet")})
        writers = [TableWriter(part / "events.parquet", meta),
                   TableWriter(part / "scores.parquet", meta, task.part_rows)]  # fmt: skip
        try:
            r = score_group(task)
            writers[1].adopt(r.parts, r.rows)
            if writers[1].rows == 0:
                writers[1].append(_empty(task))
            writers[0].append(events_frame(r.events))
            commit(writers, [w.finish() for w in writers])
        except BaseException:
            for w in writers:
                w.discard()
            raise
        files = [f"group={k}/events.parquet", f"group={k}/scores.parquet"]
        return _record(r, files)
    scratch = folder / f"scores-{k}.parquet"  # the parts' name: never a file of its own
    remove_stale_temps(scratch)
    task = GroupTask(**{**ft.task.__dict__, "output": str(scratch)})
    r = score_group(task)
    days: dict[str, list[TableWriter]] = {}
    try:
        for p in r.parts:
            df = pl.read_parquet(p).with_columns(_day("timestamp"))
            for (d,), rows in df.partition_by("_d", as_dict=True, include_key=False).items():
                if str(d) not in days:
                    sub = folder / f"date={d}"
                    days[str(d)] = [TableWriter(sub / f"events-{k}.parquet", meta),
                                    TableWriter(sub / f"scores-{k}.parquet", meta, 1)]  # fmt: skip
                days[str(d)][1].append(rows)
            p.unlink()
        ev = events_frame(r.events)
        ev = ev.with_columns(_day("start"))
        for d, (ew, _) in days.items():
            ew.append(ev.filter(pl.col("_d") == d).drop("_d"))
        orphans = ev.filter(~pl.col("_d").is_in(list(days)))
        if orphans.height:  # an event starts at a window, whose day has scores
            raise RuntimeError(f"events of group {k} start on days without scores")
        writers = [w for d in sorted(days) for w in days[d][:1]]
        writers += [w for d in sorted(days) for w in days[d][1:]]
        commit(writers, [w.finish() for w in writers])
    except BaseException:
        for p in r.parts:
            p.unlink(missing_ok=True)
        for pair in days.values():
            for w in pair:
                w.discard()
        raise
    files = [f"date={d}/{kind}-{k}.parquet" for d in sorted(days) for kind in ("events", "scores")]
    return _record(r, files)


def _empty(task: GroupTask) -> pl.DataFrame:
    det = worker_detector(task.model, task.sha256, task.device, task.session()[1])
    return StreamScorer(det, task.opts, task.labels).empty_table()


def _record(r: Any, files: list[str]) -> dict[str, Any]:
    t = r.totals
    return {"rows": t.n_rows, "windows": t.n_windows, "events": len(r.events), "files": files,
            "series": t.n_series, "anomalous": t.n_anomalous}  # fmt: skip
