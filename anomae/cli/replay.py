"""``anomae replay``: CSV/Parquet rows to the monitor's JSON readings."""

from __future__ import annotations

import sys

import click

from anomae.cli.tables import _table, data_table_options


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    "output",
    default="-",
    show_default=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON-lines file to write (written atomically), or - for stdout.",
)
@data_table_options
def replay(
    inputs: tuple[str, ...],
    output: str,
    timestamp_column: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
    timestamp_unit: str | None,
) -> None:
    """Write the rows of INPUTS as the JSON readings `anomae monitor --source -` reads.

    One reading per row, all series merged in time order, read with the same table options
    as `anomae score` (labels are not replayed), e.g.

    \b
      anomae replay today.parquet | anomae monitor model.onnx --source - --sink out.jsonl
    """
    from anomae.replay import replay as write_readings

    spec = _table(timestamp_column, series_column, label_column, features, timestamp_unit)
    if output == "-":
        n, n_series = write_readings(inputs, sys.stdout, spec)
    else:
        from anomae.atomic import atomic_text_writer

        with atomic_text_writer(output) as out:
            n, n_series = write_readings(inputs, out, spec)
    click.echo(f"replay: {n:,} readings of {n_series} series", err=True)
