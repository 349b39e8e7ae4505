"""``anomae train``: train an autoencoder on normal data and export one calibrated model."""

from __future__ import annotations

import click

from anomae.cli.options import (
    _HOLDOUT_FROM,
    TRAIN_DEVICE,
    TRAIN_THREADS,
    _force_option,
    _threshold_text,
    calibration_options,
)
from anomae.cli.recipe import RECIPE_OPTION, given_options, recipe_pipeline, settings_doc
from anomae.cli.tables import _data_columns, data_table_options


@click.command()
@click.argument("data", nargs=-1, required=True)
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False), help="Where to write model.onnx."
)
@data_table_options
@RECIPE_OPTION
@click.option("--window", default=8, show_default=True, help="Window length in rows.")
@click.option("--stride", default=1, show_default=True, help="Scoring stride in rows.")
@click.option(
    "--train-stride",
    default=1,
    show_default=True,
    help="Stride of the training windows (larger: faster, fewer windows).",
)
@click.option(
    "--center/--no-center",
    default=False,
    show_default=True,
    help="Subtract each window's per-feature mean before the network: slow level drifts "
    "stop reading as anomalies (level shifts then show only at their edges).",
)
@click.option(
    "--period/--no-period",
    default=False,
    show_default=True,
    help="Lengthen --window to the training rows' period when they have a clear one "
    "(autocorrelation, 3-300 rows): a window that sees whole cycles, for periodic signals "
    "such as heartbeats or machine strokes.",
)
@click.option(
    "--arch",
    type=click.Choice(["dense", "conv"]),
    default="dense",
    show_default=True,
    help="Dense (stacked) or 1-D convolutional autoencoder.",
)
@click.option(
    "--hidden",
    default=None,
    help="Encoder widths, last is the code; wider than the input = over-complete. "
    "[default: a linear code of one unit per feature that varies in training]",
)
@click.option(
    "--code",
    type=click.Choice(["fixed", "features"]),
    default=None,
    help="features: the code (--hidden's last width) becomes the number of features that "
    "vary in training; fixed: --hidden as given. [default: features without --hidden, "
    "fixed with it]",
)
@click.option(
    "--channels",
    default="32,64",
    show_default=True,
    help="Conv AE: channels of the stride-2 convolutions.",
)
@click.option("--kernel", default=5, show_default=True, help="Conv AE kernel size.")
@click.option(
    "--activation",
    default="relu",
    show_default=True,
    type=click.Choice(["relu", "tanh", "elu", "gelu"]),
    help="Activation of the hidden layers.",
)
@click.option(
    "--code-activation",
    default=None,
    type=click.Choice(["linear", "sigmoid", "relu"]),
    help="Bottleneck activation (default linear; sigmoid with --sparsity kl).",
)
@click.option(
    "--noise",
    default="gaussian",
    show_default=True,
    type=click.Choice(["none", "gaussian", "salt_pepper", "masking"]),
    help="Denoising corruption applied to training inputs only.",
)
@click.option("--sigma", default=0.3, show_default=True, help="Gaussian noise std (scaled units).")
@click.option(
    "--noise-p", default=0.1, show_default=True, help="Salt-and-pepper / masking probability."
)
@click.option(
    "--sparsity",
    default="none",
    show_default=True,
    type=click.Choice(["none", "kl", "l1"]),
    help="Sparsity penalty on the code.",
)
@click.option("--rho", default=0.05, show_default=True, help="KL target mean activation.")
@click.option("--beta", default=1e-3, show_default=True, help="Sparsity penalty weight.")
@click.option("--epochs", default=60, show_default=True, help="Most training epochs.")
@click.option("--batch-size", default=64, show_default=True, help="Training batch size.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--weight-decay", default=0.0, show_default=True, help="Adam weight decay (L2).")
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    help="Training windows held out for early stopping.",
)
@click.option("--patience", default=8, show_default=True, help="Early-stopping patience (epochs).")
@click.option(
    "--error-weights",
    type=click.Choice(["spread", "heldout", "equal"]),
    default="spread",
    show_default=True,
    help="spread: each feature's squared error divided by its 0.99 quantile on held-out "
    "normal windows, never by less than the median feature's; heldout: by its mean there, "
    "so no sensor dominates the score; equal: raw scaled errors.",
)
@click.option(
    "--aggregate",
    type=click.Choice(["max", "mean"]),
    default="max",
    show_default=True,
    help="A window's score: its largest per-feature error (max), or the mean over its "
    "observed cells.",
)
@click.option(
    "--constant",
    type=click.Choice(["ignore", "keep"]),
    default="ignore",
    show_default=True,
    help="ignore: features constant in the training rows are left out of the score (and "
    "named); keep: score them (any change will count as an anomaly).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    help="Training seed (on CPU the same seed gives the same weights).",
)
@TRAIN_DEVICE
@TRAIN_THREADS
@click.option(
    "--holdout",
    default=0.2,
    show_default=True,
    help="Fraction of each series held out to calibrate (0: no threshold).",
)
@_HOLDOUT_FROM
@calibration_options
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Training progress on stderr, one line per epoch.",
)
@click.option(
    "--max-windows",
    type=click.IntRange(min=2),
    default=None,
    help="Train on at most N windows: a dataset with more is read in batches and a uniform "
    "sample of N training windows drawn (the scaler over every training row; calibration "
    "on a uniform sample of held-out stretches, about N rows). With no more than N "
    "windows, the same model as without it. Default: every window, the data read whole.",
)
@_force_option("an existing --out file")
def train(
    data: tuple[str, ...],
    out: str,
    timestamp_column: str | None,
    timestamp_unit: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
    recipe: str,
    window: int,
    stride: int,
    train_stride: int,
    center: bool,
    period: bool,
    arch: str,
    hidden: str | None,
    code: str | None,
    channels: str,
    kernel: int,
    activation: str,
    code_activation: str | None,
    noise: str,
    sigma: float,
    noise_p: float,
    sparsity: str,
    rho: float,
    beta: float,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    val_fraction: float,
    patience: int,
    error_weights: str,
    aggregate: str,
    constant: str,
    seed: int,
    device: str,
    threads: int,
    holdout: float,
    holdout_from: str,
    method: str,
    q: float | None,
    k: float | None,
    rate: float | None,
    alarms_per_day: float | None,
    interval_s: float | None,
    init_quantile: float | None,
    false_events_per_day: float | None,
    search_min_windows: str,
    per_feature: bool,
    per_series: bool,
    progress: bool,
    max_windows: int | None,
    force: bool,
) -> None:
    """Train an autoencoder on normal DATA (files, globs, folders) and export one
    calibrated ONNX model.

    A fraction --holdout of each series (blocks spread over its span, or its last rows with
    --holdout-from tail) is never trained on; the threshold is calibrated on it by --method
    (f1 needs labels: calibrate later with `anomae calibrate`). Without --features every
    numeric column is a feature, except integer columns that look like identifiers
    (constant within every series, or named *id*): those are refused. The model is exported
    and calibrated in a temporary file and replaces --out only when complete.

    Settings start from --recipe: by default the univariate recipe for data of one feature
    (dense 16-4 on 16-row windows, alarms on the anomaly likelihood) and the multivariate
    one for more; each option given replaces the recipe's value."""
    from anomae.atomic import check_outputs, target_of, temp_name
    from anomae.calibrate_model import calibrate_trained
    from anomae.dataset import expand_inputs
    from anomae.idcolumns import refuse_identifier_columns
    from anomae.io import SeriesData, read_series
    from anomae.modelfile import rewrite_card
    from anomae.period import period_window
    from anomae.pipeline import AUTO, DataSection
    from anomae.sample import head_features
    from anomae.settings import from_table
    from anomae.train.sampled import train_dataset
    from anomae.train.step import require_torch, train_step

    require_torch()
    ctx = click.get_current_context()
    doc = settings_doc(ctx.params, given_options(ctx))
    feats = [x.strip() for x in features.split(",") if x.strip()]
    columns = _data_columns(timestamp_column, series_column, label_column, timestamp_unit)
    doc["data"] = {"train": list(data), **columns, "features": feats}
    # the columns to read come from [data] alone; the recipe waits for the data's features
    table = from_table(DataSection, doc["data"], "anomae train [data]").table()
    chosen = None  # (pipeline, recipe name), once the recipe is known
    if recipe != AUTO or feats:  # the options checked before the data is read
        chosen = recipe_pipeline(recipe, doc, len(feats))
    files = expand_inputs(data)
    check_outputs([out], files, force)

    def read() -> list[SeriesData]:
        series, found = read_series(files, table, feats_t if max_windows else None)
        if not feats:
            refuse_identifier_columns(series, found, data[0] if len(data) == 1 else "DATA")
        return series

    if max_windows is None:
        series, feats_t = read_series(files, table)
        if not feats:
            refuse_identifier_columns(series, feats_t, data[0] if len(data) == 1 else "DATA")
    else:
        feats_t = tuple(feats) or head_features(files[0], table)
    click.echo(f"features ({len(feats_t)}): {', '.join(feats_t)}")
    pipe, name = chosen or recipe_pipeline(recipe, doc, len(feats_t))
    click.echo(f"recipe: {name}" + (f" (auto: {len(feats_t)} feature(s))" if recipe == AUTO
                                    else ""))  # fmt: skip
    # Export and calibrate beside --out, then replace it once: a kill or a calibration error
    # leaves the old model as it was (the temporary is removed, or cleaned up on next write).
    tmp = temp_name(target_of(out))
    try:
        if max_windows is None:
            pipe, found = period_window(pipe, [s.values for s in series])
            if period:
                click.echo(f"period of the training rows: {found or 'none clear'}; window "
                           f"{pipe.window.length} rows")  # fmt: skip
            card, summary, cal_rows = train_step(pipe, series, feats_t, tmp, calibrated=True)
        else:
            if period:
                click.echo("--period is not applied with --max-windows (it needs the rows "
                           "in memory): the window stays --window rows")  # fmt: skip
            card, summary, cal_rows, got = train_dataset(pipe, files, feats_t, tmp,
                                                         max_windows, read)  # fmt: skip
            series = got or []
            if "sampled" in summary:
                n = summary["sampled"]
                click.echo(f"sampled {min(max_windows, n):,} of {n:,} training windows "
                           "(uniformly, reading in batches)")  # fmt: skip
        click.echo(
            f"trained {pipe.model.get('kind', 'dense')} AE on "
            f"{summary['n_train_windows']:,} windows in "
            f"{summary['seconds']:.1f}s (best epoch {summary['best_epoch']}, "
            f"val loss {summary['best_val_loss']:.4g}); parity max rel diff "
            f"{card.parity['max_rel_diff']:.2g}"
        )
        if summary["ignored_features"]:
            click.echo(
                f"left out of the score (constant in the training rows): "
                f"{', '.join(summary['ignored_features'])}"
            )
        if cal_rows:
            card, _ = calibrate_trained(tmp, card, cal_rows, pipe, series)
        rewrite_card(tmp, card, out)
    finally:
        tmp.unlink(missing_ok=True)
    if card.threshold is not None:
        click.echo(_threshold_text(card.threshold))
    click.echo(f"wrote {out}")
