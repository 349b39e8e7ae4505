"""``anomae calibrate`` and ``anomae inspect``: the commands that read or rewrite a
model file without torch."""

from __future__ import annotations

import json

import click

from anomae.cli.options import (
    _calibration,
    _force_option,
    _ints,
    _threshold_text,
    calibration_options,
)
from anomae.cli.tables import _table, table_options


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@table_options
@calibration_options
@click.option(
    "-o",
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the calibrated model here instead of rewriting MODEL in place.",
)
@_force_option("an existing --out file")
def calibrate(
    model: str,
    data: tuple[str, ...],
    timestamp_column: str | None,
    timestamp_unit: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
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
    out: str | None,
    force: bool,
) -> None:
    """Set MODEL's threshold from held-out DATA (no torch).

    DATA must be normal for every method but f1, which needs a label column with both
    normal and anomalous windows. Only the model card changes; the graph is kept. MODEL is
    rewritten in place (keeping its permissions; a symlink is followed) unless --out is
    given; an existing --out needs --force. Method events calibrates for the card's
    post-rule (else min_windows 3) and stores the rule it chose in the card's alarm policy,
    which `anomae score` applies."""
    from anomae.atomic import check_outputs, same_file
    from anomae.calibrate_model import recalibrate_card
    from anomae.detector import Detector
    from anomae.io import read_series
    from anomae.modelfile import read_card, rewrite_card

    section = _calibration(
        method,
        q=q,
        k=k,
        rate=rate,
        alarms_per_day=alarms_per_day,
        interval_s=interval_s,
        init_quantile=init_quantile,
        false_events_per_day=false_events_per_day,
        min_windows=tuple(_ints(search_min_windows)),
        per_feature=per_feature,
        per_series=per_series,
    )
    if out is not None and not same_file(out, model):
        check_outputs([out], data, force)
    else:
        check_outputs([model], data, force=True)  # in place: only never over an input
    read_card(model)  # refuses external data before onnxruntime would read it
    det = Detector.load(model)
    table = _table(
        timestamp_column, series_column, label_column, features, timestamp_unit, det.card
    )
    series, _ = read_series(list(data), table, features=det.card.features)
    card = recalibrate_card(det, series, section)
    th = card.threshold
    assert th is not None
    rewrite_card(model, card, out)
    click.echo(f"{_threshold_text(th)} -> {out or model}")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the model card as JSON.")
def inspect(model: str, as_json: bool) -> None:
    """Show MODEL's card: features, window, scaler, threshold, training, provenance."""
    from anomae.modelfile import read_card
    from anomae.report import card_text

    card = read_card(model)
    click.echo(json.dumps(card.to_dict(), indent=2) if as_json else card_text(card, model))
