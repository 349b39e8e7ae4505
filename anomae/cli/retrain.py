"""``anomae retrain``: a candidate model from recent data the current model calls normal."""

from __future__ import annotations

import click

from anomae.cli.options import _force_option


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Write the candidate model here (atomically: a complete file or none).",
)
@click.option("--epochs", type=int, default=None, help="Training epochs (default: MODEL's).")
@click.option("--seed", type=int, default=None, help="Training seed (default: MODEL's).")
@click.option("--device", default=None, help="Training device (default: MODEL's).")
@click.option(
    "--holdout",
    default=0.2,
    show_default=True,
    help="Fraction of the normal rows held out to calibrate the threshold on.",
)
@click.option(
    "--min-rows",
    type=int,
    default=None,
    help="Refuse to train on fewer normal rows than this (default: 20 windows' rows).",
)
@_force_option("an existing --out file")
def retrain(
    model: str,
    data: tuple[str, ...],
    out: str,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    holdout: float,
    min_rows: int | None,
    force: bool,
) -> None:
    """Train a candidate for MODEL on the rows of DATA that MODEL calls normal.

    DATA is read with MODEL's columns and features and scored with MODEL as `anomae score`
    does; the rows of every flagged window, and of every event widened by one window
    length, are dropped. The candidate is trained with MODEL's settings (window,
    architecture, noise, training loop, as its card records them), calibrated with its
    threshold method and post-rule, and its card records the lineage (parent sha256, data
    span, rows used and dropped). Run it from cron or a timer; `anomae monitor --shadow`
    tries the candidate beside MODEL. Needs torch."""
    from anomae.atomic import check_outputs
    from anomae.retrain import RetrainOptions
    from anomae.retrain import retrain as run_retrain

    check_outputs([out], [model, *data], force)
    opts = RetrainOptions(
        epochs=epochs, seed=seed, device=device, holdout=holdout, min_rows=min_rows
    )
    card, normal = run_retrain(model, data, out, opts)
    th = card.threshold
    click.echo(
        f"wrote {out}: {normal.rows:,} normal rows used, {normal.rows_dropped:,} dropped; "
        f"threshold {th.value:.6g} by {th.method}" if th else f"wrote {out}"
    )
