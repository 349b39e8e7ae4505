"""``anomae quantize``: an int8 copy of a model, written only if its alarms hold (no torch)."""

from __future__ import annotations

import click

from anomae.cli.options import (
    EXIT_BAD_INPUT,
    _force_option,
)
from anomae.cli.tables import _table, table_options

EXIT_REFUSED = 1


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@table_options
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Where to write the int8 model (e.g. model.int8.onnx); MODEL is never changed.",
)
@click.option(
    "--min-spearman",
    default=0.999,
    show_default=True,
    type=float,
    help="Least rank correlation of int8 and float32 scores on DATA for the gate to pass.",
)
@click.option(
    "--interval-s",
    type=float,
    default=None,
    help="Seconds between rows, to count false events per day (default: from the data's "
    "timestamps, else the model card's).",
)
@click.option(
    "--per-channel/--no-per-channel",
    default=True,
    show_default=True,
    help="One int8 scale per weight column instead of one per matrix.",
)
@click.option(
    "--backoff/--no-backoff",
    default=True,
    show_default=True,
    help="When the whole network in int8 fails the gate, return its layers to float32 one "
    "at a time (the one that ranks worst in int8 first) until the gate passes.",
)
@click.option(
    "--threads",
    default=0,
    show_default=True,
    help="onnxruntime intra-op threads for the gate's scoring (0: all cores).",
)
@_force_option("an existing --out file")
@click.pass_context
def quantize(
    ctx: click.Context,
    model: str,
    data: tuple[str, ...],
    timestamp_column: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
    timestamp_unit: str | None,
    out: str,
    min_spearman: float,
    interval_s: float | None,
    per_channel: bool,
    backoff: bool,
    threads: int,
    force: bool,
) -> None:
    """Write an int8 copy of MODEL to --out: faster CPU scoring, same alarms.

    The network's matrix products become int8 (dynamic quantisation); scaling, windowing,
    masking and the score stay float32. Both models score the held-out normal DATA (read
    as `anomae calibrate` reads it), and the int8 model is written only if, at the card's
    threshold (per series where it has them), its false-alarm rate per window lies inside
    the float32 model's 95% bootstrap interval, its false events per day too (models
    calibrated for a false-events budget), and the rank correlation of the scores is at
    least --min-spearman. Where the whole network fails, its layers go back to float32 one
    at a time until the gate passes (--backoff); if none can stay int8, nothing is written
    (an existing --out is kept) and the exit status is 1. The written card records the
    gate's figures and the layers kept float32 (`anomae inspect`). A call of one window
    (batch 1), which int8 would not speed up, stays float32: it scores exactly as MODEL.
    Both models are then timed on calls of up to 2,048 calibration windows: the output and
    the card say how much faster int8 is, and say so when it is not (small models, whose
    matrix products are a small share of the call)."""
    from anomae.atomic import check_outputs
    from anomae.calibrate_model import sampling_interval
    from anomae.io import read_series
    from anomae.modelfile import read_card
    from anomae.quantize import QuantizeError, QuantizeSettings, quantize_model
    from anomae.quantize_gate import GateRefused, GateSettings, gate_text, speed_text

    try:
        settings = QuantizeSettings(
            per_channel=per_channel,
            backoff=backoff,
            gate=GateSettings(min_spearman=min_spearman),
            threads=threads,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--min-spearman") from exc
    check_outputs([out], [model, *data], force)
    card = read_card(model)
    table = _table(timestamp_column, series_column, label_column, features, timestamp_unit, card)
    series, _ = read_series(list(data), table, features=card.features)
    try:
        q = quantize_model(
            model,
            [s.values for s in series],
            out,
            names=[s.name for s in series],
            interval_s=interval_s or sampling_interval(series),
            settings=settings,
        )
    except GateRefused as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_REFUSED)
    except QuantizeError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(EXIT_BAD_INPUT)
    kept = f" (layers {q['fp32_layers']} of {q['layers']} kept float32)" if q["fp32_layers"] else ""
    click.echo(
        f"int8 gate passed: {gate_text(q['gate'])}\n"
        f"{q['quantized_products']} matrix products int8{kept} -> {out}\n"
        f"speed: {speed_text(q['speed'])}"
    )
