"""``anomae tune``: choose the model's settings on normal data alone, then train it."""

from __future__ import annotations

from typing import Any

import click

from anomae.cli.options import (
    _HOLDOUT_FROM,
    TRAIN_DEVICE,
    TRAIN_THREADS,
    _force_option,
    _threshold_text,
    calibration_options,
)
from anomae.cli.recipe import given_options, recipe_option, recipe_pipeline, settings_doc
from anomae.cli.tables import _data_columns, data_table_options

# how the grid's candidates and the chosen model train: tune's own, over any recipe
_TUNE_TRAINING = ("stride", "epochs", "batch_size", "lr", "patience", "seed")


@click.command("tune")
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .onnx model."
)
@data_table_options
@recipe_option(
    "the grid chooses window, code, noise and centring, and the training options below are "
    "tune's own; calibration and alarms are the recipe's unless given."
)
@click.option(
    "--grid",
    multiple=True,
    help="One axis of the grid, repeatable: window=8,32  hidden=4;64,16 (';' between "
    "candidates)  noise=0,0.2 (Gaussian sigma, 0 = none)  center=off,on. Unset axes keep "
    "the default grid (hidden: a code of half the features, and 64,16).",
)
@click.option(
    "--period/--no-period",
    default=True,
    show_default=True,
    help="Also try the training rows' period as a window length when they have a clear one "
    "(autocorrelation, 3-300 rows) that the grid lacks.",
)
@click.option("--tune-epochs", default=8, show_default=True, help="Epochs per candidate.")
@click.option(
    "--tune-stride",
    default=4,
    show_default=True,
    help="Rows between training windows while tuning (the winner trains on every row).",
)
@click.option("--stride", default=1, show_default=True, help="Scoring stride of the model.")
@click.option("--epochs", default=30, show_default=True, help="Epochs for the chosen model.")
@click.option("--batch-size", default=256, show_default=True, help="Training batch size.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--patience", default=5, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--seed", default=0, show_default=True, help="Training and injection seed.")
@TRAIN_DEVICE
@TRAIN_THREADS
@click.option(
    "--holdout",
    default=0.2,
    show_default=True,
    help="Fraction of each series held out: candidates are compared on it, then it "
    "calibrates the chosen model.",
)
@_HOLDOUT_FROM
@calibration_options
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Training progress on stderr, one line per epoch.",
)
@_force_option("an existing --out file")
def tune_command(
    data: tuple[str, ...],
    out: str,
    timestamp_column: str | None,
    timestamp_unit: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
    recipe: str,
    grid: tuple[str, ...],
    period: bool,
    tune_epochs: int,
    tune_stride: int,
    stride: int,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int,
    seed: int,
    device: str,
    threads: int,
    holdout: float,
    holdout_from: str,
    progress: bool,
    force: bool,
    **calibration: Any,
) -> None:
    """Choose window, code size, noise and centring on normal DATA alone, then train the
    chosen model and export it calibrated, like `anomae train`.

    Each candidate of the grid trains --tune-epochs epochs on the fit rows and is ranked by
    VUS-PR on anomalies of six kinds injected into copies of the held-out rows (ties: lower
    reconstruction error). A label column is never read. The model card keeps the grid,
    every candidate's scores and the choice (training.tune; `anomae inspect --json`)."""
    from anomae.atomic import check_outputs, target_of, temp_name
    from anomae.calibrate_model import calibrate_trained
    from anomae.grid import parse_grid
    from anomae.idcolumns import refuse_identifier_columns
    from anomae.io import read_series
    from anomae.modelfile import rewrite_card
    from anomae.pipeline import AUTO, DataSection
    from anomae.settings import from_table
    from anomae.train.step import require_torch
    from anomae.tune import label_free, label_note, tuned_train_step

    require_torch()
    try:
        axes = parse_grid(grid)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid") from exc
    ctx = click.get_current_context()
    doc = settings_doc(ctx.params, given_options(ctx) | set(_TUNE_TRAINING))
    feats = [x.strip() for x in features.split(",") if x.strip()]
    columns = _data_columns(timestamp_column, series_column, label_column, timestamp_unit)
    doc["data"] = {"train": list(data), **columns, "features": feats}
    doc["tune"] = {**axes, "epochs": tune_epochs, "train_stride": tune_stride, "seed": seed,
                   "period": period}  # fmt: skip
    chosen = None  # (pipeline, recipe name), once the recipe is known
    if recipe != AUTO or feats:  # the options checked before the data is read
        chosen = recipe_pipeline(recipe, doc, len(feats), "anomae tune")
    table = from_table(DataSection, doc["data"], "anomae tune [data]").table()
    check_outputs([out], data, force)
    series, feats_t = read_series(list(data), label_free(table))
    if not feats:
        refuse_identifier_columns(series, feats_t, data[0] if len(data) == 1 else "DATA")
    note = label_note(list(data), table.label)
    if note:
        click.echo(note)
    click.echo(f"features ({len(feats_t)}): {', '.join(feats_t)}")
    pipe, name = chosen or recipe_pipeline(recipe, doc, len(feats_t), "anomae tune")
    click.echo(f"recipe: {name}" + (f" (auto: {len(feats_t)} feature(s))" if recipe == AUTO
                                    else ""))  # fmt: skip
    tmp = temp_name(target_of(out))
    try:
        pipe, card, summary, cal_rows = tuned_train_step(pipe, series, feats_t, tmp, click.echo)
        click.echo(
            f"trained the chosen model on {summary['n_train_windows']:,} windows in "
            f"{summary['seconds']:.1f}s (best epoch {summary['best_epoch']}, "
            f"val loss {summary['best_val_loss']:.4g})"
        )
        card, _ = calibrate_trained(tmp, card, cal_rows, pipe, series)
        rewrite_card(tmp, card, out)
    finally:
        tmp.unlink(missing_ok=True)
    assert card.threshold is not None
    click.echo(_threshold_text(card.threshold))
    click.echo(f"wrote {out}")
