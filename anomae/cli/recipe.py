"""``anomae train``'s and ``anomae tune``'s settings: a recipe (``--recipe``), with the
options given laid over it.

An option not given takes the recipe's value, so ``anomae train DATA`` trains what
``anomae.fit(DATA)`` trains: with ``--recipe auto`` (the default) the univariate recipe for
data of one feature, the multivariate one for more (:func:`anomae.pipeline.shape_recipe`).
The defaults ``anomae train --help`` shows are the multivariate recipe's; ``anomae tune``
lays its own training options (epochs, batch size, ...) over the recipe always, and the
grid's choice over both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from anomae.cli.options import _ints

# option -> (pipeline section, key)
OPTION_KEYS: dict[str, tuple[str, str]] = {
    **{o: ("window", o) for o in ("stride", "train_stride", "center", "period")},
    "window": ("window", "length"),
    "arch": ("model", "kind"),
    **{o: ("model", o) for o in ("hidden", "code", "channels", "kernel", "activation")},
    "code_activation": ("model", "code_activation"),
    "noise": ("noise", "kind"),
    "sigma": ("noise", "sigma"),
    "noise_p": ("noise", "p"),
    "sparsity": ("sparsity", "kind"),
    **{o: ("sparsity", o) for o in ("rho", "beta")},
    **{
        o: ("train", o)
        for o in ("epochs", "batch_size", "lr", "weight_decay", "val_fraction", "patience")
    },
    **{o: ("train", o) for o in ("seed", "device", "threads", "progress")},
    "error_weights": ("weights", "errors"),
    "constant": ("weights", "constant"),
    "aggregate": ("score", "aggregate"),
    **{o: ("calibrate", o) for o in ("method", "holdout", "holdout_from", "per_feature")},
    **{o: ("calibrate", o) for o in ("per_series", "q", "k", "rate", "alarms_per_day")},
    **{o: ("calibrate", o) for o in ("interval_s", "init_quantile", "false_events_per_day")},
    "search_min_windows": ("calibrate", "min_windows"),
}
# how the command runs, not what it trains: always the option's value
RUN_OPTIONS = ("device", "threads", "progress")
_LISTS = ("hidden", "channels", "search_min_windows")


def recipe_option(shown: str) -> Any:
    """The ``--recipe`` option; ``shown`` says what the defaults ``--help`` shows are."""
    return click.option(
        "--recipe",
        default="auto",
        show_default=True,
        help="Settings to start from: auto (the univariate recipe for data of one feature, "
        "the multivariate one for more), multivariate, univariate, or a recipe TOML file. "
        f"Every option given replaces the recipe's value; {shown}",
    )


RECIPE_OPTION = recipe_option(
    "the defaults shown below are the multivariate recipe's (the univariate recipe's: "
    "anomae/recipes/univariate.toml)."
)


def given_options(ctx: click.Context) -> set[str]:
    """The options of ``ctx`` set on the command line or by their environment variable."""
    chosen = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {name for name in ctx.params if ctx.get_parameter_source(name) in chosen}


def settings_doc(values: dict[str, Any], given: set[str]) -> dict[str, dict[str, Any]]:
    """The pipeline sections of the options in ``given`` (and the run options): what is
    laid over the recipe. ``--hidden`` trains the widths given (code fixed) unless
    ``--code`` says otherwise; ``--sparsity kl`` makes the code sigmoid unless
    ``--code-activation`` is given."""
    doc: dict[str, dict[str, Any]] = {}
    for name, (section, key) in OPTION_KEYS.items():
        if name in given or name in RUN_OPTIONS:
            value = values[name]
            if name in _LISTS:
                value = _ints(value or "")
            doc.setdefault(section, {})[key] = value
    if "hidden" in given:
        doc["model"].setdefault("code", "fixed")
    if values.get("sparsity") == "kl" and "sparsity" in given:
        doc.setdefault("model", {}).setdefault("code_activation", "sigmoid")
    return doc


def recipe_pipeline(
    recipe: str, doc: dict[str, Any], n_features: int, source: str = "anomae train"
) -> tuple[Any, str]:
    """The pipeline of ``doc`` laid over ``recipe`` (``auto``: the shipped recipe for
    ``n_features`` features), and the recipe's name."""
    from anomae.pipeline import AUTO, parse_pipeline, shape_recipe, with_recipe

    name = shape_recipe(n_features) if recipe == AUTO else recipe
    merged = with_recipe({"recipe": name, **doc}, Path(source))
    return parse_pipeline(merged, source), name
