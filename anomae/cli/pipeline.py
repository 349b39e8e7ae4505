"""``anomae demo-data``, ``anomae run`` and ``anomae evaluate``: the pipeline-file
commands and the demo data they start from."""

from __future__ import annotations

from pathlib import Path

import click

from anomae.cli.options import EXIT_BAD_INPUT
from anomae.errors import install_hint

DEMO_SENSORS = 12  # len(anomae.synth.SENSORS), not imported here: the CLI imports lazily


@click.command("demo-data")
@click.option(
    "-o",
    "--out",
    "out_dir",
    default="data/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for train/test files.",
)
@click.option(
    "--seed",
    default=7,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed (same seed, same data).",
)
@click.option(
    "--series",
    "n_series",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of machines.",
)
@click.option(
    "--features",
    "n_features",
    default=8,
    show_default=True,
    type=click.IntRange(6, DEMO_SENSORS),
    help=f"Sensors per machine (6-{DEMO_SENSORS}).",
)
def demo_data(out_dir: str, seed: int, n_series: int, n_features: int) -> None:
    """Generate the demo dataset: normal training period and a labelled test period."""
    from anomae.synth import SynthConfig, write_demo

    try:
        cfg = SynthConfig(seed=seed, n_series=n_series, n_features=n_features)
    except ValueError as exc:  # what the option types above do not already refuse
        raise click.UsageError(str(exc)) from exc
    paths = write_demo(out_dir, cfg)
    for name, p in paths.items():
        click.echo(f"{name}: {p}")


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: model.onnx (and model.int8.onnx with [export] quantize = "
    '"int8"), scores.parquet, events.csv, report.json. An existing folder is reused: those '
    "files are replaced (each atomically), others are left alone.",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=0),
    help="PyTorch intra-op threads while training (0: torch's default, one per core) "
    "[default: the pipeline's [train] threads, else 0].",
)
def run(pipeline: str, out_dir: str, threads: int | None) -> None:
    """Run the PIPELINE file (TOML): train → export → calibrate → score → report."""
    from anomae.report import summary_text
    from anomae.run import run_pipeline

    report = run_pipeline(pipeline, out_dir, threads)
    click.echo(summary_text(report))


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: report.json and report.md.",
)
@click.option(
    "--data",
    default=None,
    type=click.Path(file_okay=False),
    help="Benchmark data folder (default: ../shared/datasets/<dataset>).",
)
@click.option("--limit", default=0, show_default=True, help="Only the first N cases (0: all).")
@click.option(
    "--plot/--no-plot",
    default=False,
    show_default=True,
    help="Also write OUT/plots/<case>.png: each detector's score / threshold, labelled "
    "ranges and events (needs matplotlib: " + install_hint("plot") + ").",
)
def evaluate(pipeline: str, out_dir: str, data: str | None, limit: int, plot: bool) -> None:
    """Evaluate anomae and baselines on a public benchmark, as PIPELINE's [benchmark] says.

    Thresholds are calibrated without labels; F1/FAR/MAR are pooled, point-wise, without
    point-adjust; VUS-PR/ROC follow TSB-AD. Exits 0 with a message when the data is absent."""
    import dataclasses
    import json as _json

    from anomae.errors import PipelineError
    from anomae.eval.benchmark import DataMissing, run_benchmark
    from anomae.eval.plot import CasePlotter, PlotError
    from anomae.eval.report import benchmark_markdown, benchmark_table
    from anomae.modelfile import atomic_write_bytes
    from anomae.pipeline import load_pipeline
    from anomae.train.step import require_torch

    pipe = load_pipeline(pipeline)
    require_torch()  # anomae's detector is trained in every benchmark
    if pipe.benchmark is None:
        raise PipelineError(f"{pipeline}: no [benchmark] section; use `anomae run` for it")
    if pipe.auto:
        raise PipelineError(
            f'{pipeline}: recipe = "auto" would choose per case; a benchmark pipeline names '
            'its recipe ("multivariate" or "univariate"), as the shipped ones do'
        )
    if limit:
        pipe = dataclasses.replace(pipe, benchmark=dataclasses.replace(pipe.benchmark, limit=limit))
    out = Path(out_dir)
    try:
        plotter = CasePlotter(out / "plots") if plot else None  # fails now, not after the run
        report = run_benchmark(
            pipe, data, progress=lambda m: click.echo(m, err=True), on_case=plotter
        )
    except DataMissing as exc:
        click.echo(f"skipped: {exc}")
        return
    except PlotError as exc:
        click.echo(f"error: {exc}", err=True)
        click.get_current_context().exit(EXIT_BAD_INPUT)
    command = f"anomae evaluate {pipeline} --out {out_dir}" + (f" --limit {limit}" if limit else "")
    command += " --plot" if plot else ""
    plots = [(case, p.relative_to(out).as_posix()) for case, p in plotter.paths] if plotter else []
    atomic_write_bytes(out / "report.json", _json.dumps(report, indent=2, default=float).encode())
    atomic_write_bytes(out / "report.md", benchmark_markdown(report, command, plots).encode())
    click.echo(benchmark_table(report))
    if plot:
        click.echo(f"{len(plots)} plots -> {out / 'plots'}")
