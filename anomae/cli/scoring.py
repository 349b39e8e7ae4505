"""``anomae score``: batch scoring of CSV/Parquet files and datasets into scores and events."""

from __future__ import annotations

from typing import Any

import click

from anomae.cli.options import (
    _card_alarm,
    _card_likelihood,
    _card_rule,
    _force_option,
    likelihood_options,
    post_rule_options,
)
from anomae.cli.tables import _table, table_options


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "--output",
    "output",
    required=True,
    type=click.Path(),
    help="Scores file: .parquet (default) or .csv; written atomically (--output: its older "
    "name). A folder (ending in /, or existing): one partition per series group, "
    "group=K/scores.parquet and events.parquet (or by day: --partition-by date), with a "
    "manifest for --resume.",
)
@click.option(
    "--events",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the event table (.csv or .parquet).",
)
@table_options
@post_rule_options
@likelihood_options
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, or cuda / cuda:N with onnxruntime-gpu installed.",
)
@click.option(
    "--threads",
    default=0,
    show_default=True,
    help="onnxruntime threads (0 = one per core): on CPU that many calls run side by side, "
    "one thread each; with --dask: per task, 0 = one.",
)
@click.option(
    "--max-gap-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="A longer gap between a series' rows starts its windows afresh. Default: the model "
    "card's gap limit (10x the training data's median interval), as `anomae monitor` "
    "applies it; 0: window straight across gaps.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    default=None,
    help="Score on Dask workers: a scheduler address (tcp://host:8786) or local:N (N worker "
    "processes here, one thread each, each bound to its share of the cores). Series are "
    "split into groups by a hash; workers need anomae installed and the model, inputs and "
    "output folder at the same paths. Needs the dask extra.",
)
@click.option(
    "--dask-groups",
    type=click.IntRange(min=1),
    default=None,
    help="With --dask and a scores file: tasks (series groups). Default: 4 per worker "
    "thread. (With a folder --out the tasks are its --partitions.)",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="With a folder output: series groups (partitions; with --dask, the tasks).",
)
@click.option(
    "--partition-by",
    type=click.Choice(["group", "date"]),
    default="group",
    show_default=True,
    help="With a folder output: group=K/{scores,events}.parquet per series group, or date: "
    "date=YYYY-MM-DD/{scores,events}-K.parquet per UTC day of the window timestamp and "
    "group (an event goes to the day it starts). Timestamps must be dates (numbers only "
    "with --timestamp-unit).",
)
@click.option(
    "--resume",
    is_flag=True,
    default=False,
    help="With a folder output: score only the partitions its manifest does not list as "
    "done (refused for another model, partition count or changed inputs).",
)
@_force_option("existing scores and events files")
def score(
    model: str,
    inputs: tuple[str, ...],
    output: str,
    events: str | None,
    timestamp_column: str | None,
    timestamp_unit: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
    min_windows: int | None,
    max_gap: int | None,
    off: float | None,
    cooldown: int | None,
    top_k: int,
    threshold: float | None,
    device: str,
    threads: int,
    max_gap_seconds: float | None,
    progress: bool | None,
    dask_address: str | None,
    dask_groups: int | None,
    partitions: int,
    partition_by: str,
    resume: bool,
    force: bool,
    **likelihood: Any,
) -> None:
    """Score CSV/Parquet INPUTS with MODEL: one row per window, plus events.

    INPUTS are files (Parquet, or CSV, TSV, .txt and .dat text, each also gzipped), glob
    patterns ('lake/*/*.parquet') or folders (every Parquet, CSV or TSV file below;
    key=value folders, hive partitions, add a column such as series=pump-1).
    A series may span files, each holding a later stretch of it (overlaps are refused);
    its windows cross file boundaries. Input is read in batches and output written in
    parts, so memory stays flat however large the data. Output rows come in the order
    they are scored: each series in time order, series interleaved.

    Both files are written completely before either replaces an old one (events first,
    scores last); existing outputs need --force, and an input or the model is never
    overwritten. With --dask, series groups are scored on Dask workers and merged into
    the same files (rows group after group). A folder --out gets one partition per series
    group (or per day and group: --partition-by date) and a manifest; a killed run is
    finished with --resume. With --dask too, each task writes its group's files and the
    driver lists them in the manifest."""
    from anomae.score import ScoreOptions, score_files

    alarm = _card_alarm(model)
    policy = _card_likelihood(alarm, **likelihood)
    opts = ScoreOptions(
        rule=_card_rule(alarm, min_windows, max_gap, off, cooldown),
        top_k=top_k,
        threshold=threshold,
        likelihood=policy,
        progress=progress,
        max_gap_s=max_gap_seconds,
    )
    table = _table(timestamp_column, series_column, label_column, features, timestamp_unit, model)
    from anomae.score_dir import is_folder_output, score_to_folder

    if is_folder_output(output):
        if events is not None or dask_groups is not None:
            raise click.UsageError(
                "with a folder --out, events are written into each partition and the tasks "
                "are its --partitions: drop --events / --dask-groups, or name a scores file"
            )
        if dask_address is None:
            s = score_to_folder(model, inputs, output, table, opts, partitions, resume, device,
                                threads, force, partition_by=partition_by)  # fmt: skip
        else:
            from anomae.score_cluster import dask_client, parse_address

            parse_address(dask_address)
            with dask_client(dask_address) as client:
                s = score_to_folder(model, inputs, output, table, opts, partitions, resume,
                                    device, threads, force, partition_by=partition_by,
                                    client=client)  # fmt: skip
    elif resume or partition_by != "group":
        raise click.UsageError("--resume and --partition-by need a folder --out (ending in /)")
    elif dask_address is not None:
        from anomae.score_cluster import dask_client, parse_address, score_files_dask

        parse_address(dask_address)
        with dask_client(dask_address) as client:
            s = score_files_dask(model, inputs, output, events, table, opts, client,
                                 dask_groups, device, threads, force)  # fmt: skip
    else:
        from anomae.interrupts import deferred

        with deferred():  # Ctrl-C lands between batches, never inside polars' callbacks
            s = score_files(
                model, inputs, output, events, table, opts, device=device, threads=threads,
                force=force,
            )
    click.echo(
        f"scored {s.n_series} series, {s.n_rows:,} rows, {s.n_windows:,} windows in "
        f"{s.seconds:.2f}s ({s.n_windows / max(s.seconds, 1e-9):,.0f} windows/s): "
        f"{s.n_anomalous:,} anomalous windows, {s.n_events} events -> {output}"
        + (f", {events}" if events else "")
    )
