"""The table options of the commands that read CSV/Parquet, and the columns they resolve to:
the option if given, else the model card's columns (commands given a model), else
``timestamp`` / ``series`` / ``label``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def table_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The table options of a command given a model (score, calibrate, quantize). Left
    unset, the column options take the model card's columns, else the defaults:
    :func:`_columns` resolves them, once for every command."""
    return _table_options(f, card=True)


def data_table_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The same options for a command that reads data without a model (train, tune,
    replay): left unset, the defaults."""
    return _table_options(f, card=False)


def _table_options(f: Callable[..., Any], card: bool) -> Callable[..., Any]:
    first = "the model card's, else " if card else ""
    features = (
        " The model's features are read: a list other than the model's is refused."
        if card
        else ""
    )
    opts = [
        click.option(
            "--timestamp-column",
            default=None,
            help="Column with the time of each row (datetime, RFC 3339 or epoch number); '' "
            "for none: rows in time order, one a second, numbered in each file "
            f"[default: {first}timestamp].",
        ),
        click.option(
            "--timestamp-unit",
            type=click.Choice(["s", "ms", "us", "ns"]),
            default=None,
            help=f"Unit of epoch-number timestamps [default: {first}seconds, "
            "refusing numbers beyond years 1677-2262].",
        ),
        click.option(
            "--series-column",
            default=None,
            help="Column naming the series (machine); absent: one series per file "
            f"[default: {first}series].",
        ),
        click.option(
            "--label-column",
            default=None,
            help="Optional 0/1 label column, never used as a feature; '' for none "
            f"[default: {first}label].",
        ),
        click.option(
            "--features",
            default="",
            help=f"Comma-separated feature columns (default: all numeric columns).{features}",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _columns(
    model: str | Path | Any | None,
    timestamp_column: str | None,
    series_column: str | None,
    label_column: str | None,
    timestamp_unit: str | None = None,
) -> dict[str, str | None]:
    """The table columns: each option given, else the model card's (``model``: its path, or
    the card itself when the caller has read it; None or an unreadable card: none), else the
    default. Says on stderr which came from
    the card when they differ from the defaults."""
    from anomae.spec import DEFAULT_COLUMNS

    if model is None:
        card = DEFAULT_COLUMNS
    elif isinstance(model, (str, Path)):
        card = _card_columns(model)
    else:  # a ModelCard already read: no second read of the file
        card = model.columns
    given = {
        "timestamp": timestamp_column,
        "series": series_column,
        "label": label_column,
        "timestamp_unit": timestamp_unit,
    }
    out = {k: card[k] if v is None else v for k, v in given.items()}
    out["label"] = out["label"] or None
    out["timestamp_unit"] = out["timestamp_unit"] or None
    from_card = [
        f"{k} {card[k]!r}" for k, v in given.items() if v is None and card[k] != DEFAULT_COLUMNS[k]
    ]
    if from_card:
        click.echo(f"columns from the model card: {', '.join(from_card)}", err=True)
    return out


def _data_columns(
    timestamp_column: str | None,
    series_column: str | None,
    label_column: str | None,
    timestamp_unit: str | None,
) -> dict[str, str]:
    """The ``[data]`` keys of a pipeline built from the options (training: no card)."""
    cols = _columns(None, timestamp_column, series_column, label_column, timestamp_unit)
    return {k: v or "" for k, v in cols.items()}


def _card_or_none(model: str | Path) -> Any:
    """The model file's card, or None when it cannot be read (loading the model then
    reports what is wrong with it)."""
    from anomae.modelfile import read_card
    from anomae.spec import ModelCardError

    try:
        return read_card(model)
    except ModelCardError:
        return None


def _card_columns(model: str | Path) -> dict[str, str | None]:
    """The model card's columns; the defaults when the file cannot be read."""
    from anomae.spec import DEFAULT_COLUMNS

    card = _card_or_none(model)
    return dict(DEFAULT_COLUMNS) if card is None else card.columns


def _table(
    timestamp_column: str | None,
    series_column: str | None,
    label_column: str | None,
    features: str,
    timestamp_unit: str | None = None,
    model: str | Path | Any | None = None,
) -> Any:
    """The :class:`~anomae.io.TableSpec` of :func:`table_options`' values (columns by
    :func:`_columns`)."""
    from anomae.io import TableSpec

    if isinstance(model, (str, Path)):  # read once, for the columns and the features
        model = _card_or_none(model)
    cols = _columns(model, timestamp_column, series_column, label_column, timestamp_unit)
    feats = tuple(x.strip() for x in features.split(",") if x.strip())
    if feats and model is not None:
        _same_features(feats, model)
    return TableSpec(
        timestamp="timestamp" if cols["timestamp"] is None else cols["timestamp"],  # "": rows
        series=cols["series"],
        features=feats or None,
        label=cols["label"],
        timestamp_unit=cols["timestamp_unit"],
    )


def _same_features(given: tuple[str, ...], card: Any) -> None:
    """A command given a model scores the model's features, by name: ``--features`` may
    only repeat them (in any order)."""
    if set(given) != set(card.features):
        raise click.BadParameter(
            f"{', '.join(given)}: the model was trained on {', '.join(card.features)} and "
            "reads those columns by name; leave --features out (or list those)",
            param_hint="--features",
        )
