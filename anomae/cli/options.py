"""The option groups and option builders the ``anomae`` commands share, and the values
they turn into (table, calibration, post-rule and likelihood settings)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

EXIT_BAD_INPUT = 1  # bad data, a bad model, a failed run: any AnomaeError
EXIT_USAGE = 2  # click's own: an unknown option, a bad option value, a missing argument
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT (128 + 2)


def envvar_name(command: str, option: click.Option) -> str:
    """``ANOMAE_<COMMAND>_<OPTION>``: the command and the option's (first) long name
    upper-cased, dashes as underscores (``--json`` of inspect: ``ANOMAE_INSPECT_JSON``)."""
    long = next((o for o in option.opts if o.startswith("--")), option.opts[0])
    return f"ANOMAE_{command}_{long.lstrip('-')}".upper().replace("-", "_")


def set_envvars(command: click.Command, name: str) -> None:
    """Give every option of ``command`` (registered as ``name``) its environment variable,
    shown in ``--help``. Explicit names, not click's ``auto_envvar_prefix``, which derives
    them from the Python parameter name and so silently drops a renamed option's."""
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:
            param.envvar = envvar_name(name, param)
            param.show_envvar = True


def post_rule_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The post-rule and threshold options ``score`` and ``monitor`` share. The post-rule
    options default to the model card's alarm policy (else 3, 0, 1.0, 0): given explicitly
    they override it, and the command says which setting came from where."""
    opts = [
        click.option(
            "--min-windows",
            default=None,
            type=int,
            help="Consecutive anomalous windows needed to open an event "
            "[default: the model card's, else 3].",
        ),
        click.option(
            "--max-gap",
            default=None,
            type=int,
            help="Merge events separated by at most this many windows "
            "[default: the model card's, else 0].",
        ),
        click.option(
            "--off",
            default=None,
            type=float,
            help="Hysteresis: an open event holds while the normalised score stays "
            "above this level (0-1; 1 = no hysteresis) [default: the model card's, else 1].",
        ),
        click.option(
            "--cooldown",
            default=None,
            type=int,
            help="Suppress events that start within this many windows after the previous one "
            "[default: the model card's, else 0].",
        ),
        click.option(
            "--top-k", default=3, show_default=True, help="Top contributing features to report."
        ),
        click.option(
            "--threshold",
            default=None,
            type=float,
            callback=_positive_threshold,
            help="Override the model's calibrated threshold (a finite number > 0).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


LIKELIHOOD_PARAMS = ("epsilon", "short", "long", "warmup", "season_s")


def likelihood_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The anomaly likelihood options ``score`` and ``monitor`` share; the command passes
    them to :func:`_card_likelihood` as ``**likelihood``. Left unset, each follows the
    model card's alarm policy."""
    opts = [
        click.option(
            "--likelihood/--no-likelihood",
            default=None,
            help="Alarm on the anomaly likelihood (how improbable each series' recent scores "
            "are given its own history) instead of the threshold; needs no threshold, follows "
            "drift [default: as the model card's alarm policy says, else off].",
        ),
        click.option(
            "--likelihood-epsilon",
            default=None,
            type=float,
            help="Likelihood: tail probability that alarms [default: the card's, else 1e-05].",
        ),
        click.option(
            "--likelihood-short",
            default=None,
            type=int,
            help="Likelihood: windows averaged into the recent score "
            "[default: the card's, else 5].",
        ),
        click.option(
            "--likelihood-long",
            default=None,
            type=int,
            help="Likelihood: windows of history the normal range is fitted on "
            "[default: the card's, else 8640].",
        ),
        click.option(
            "--likelihood-warmup",
            default=None,
            type=int,
            help="Likelihood: windows of each series with no verdict while its history "
            "builds up [default: the card's, else 100].",
        ),
        click.option(
            "--likelihood-season-s",
            default=None,
            type=float,
            help="Likelihood: cycle in seconds (86400: daily); what the last cycles saw at the "
            "same time does not alarm (0: off; score only, the monitor refuses it) "
            "[default: the card's, else 0].",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _card_likelihood(alarm: dict[str, Any], likelihood: bool | None, **params: Any) -> Any:
    """The :class:`anomae.likelihood.Likelihood` to alarm with (None: the threshold): the
    options given, else the model card's alarm policy; says where it came from (stderr)."""
    from anomae.events import resolve_likelihood

    lk = {k: params[f"likelihood_{k}"] for k in LIKELIHOOD_PARAMS}
    try:
        policy, source = resolve_likelihood(alarm, likelihood, lk)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"likelihood {'off' if policy is None else 'on'} ({source})", err=True)
    return policy


def _positive_threshold(ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(
            f"{value} is not a usable threshold: scores are divided by it, so it must be a "
            f"finite number above 0 (or leave it out to use the model's calibrated one)"
        )
    return value


def _force_option(what: str) -> Callable[..., Any]:
    return click.option(
        "--force/--no-force",
        default=False,
        show_default=True,
        help=f"Replace {what} when already there (an input is never overwritten).",
    )


def _card_alarm(model: str | Path) -> dict[str, Any]:
    """The model card's alarm policy; {} when the file cannot be read, so that loading the
    model reports what is wrong with it, as it does for every command."""
    from anomae.modelfile import read_card
    from anomae.spec import ModelCardError

    try:
        return read_card(model).alarm
    except ModelCardError:
        return {}


def _card_rule(
    model: str | dict[str, Any],
    min_windows: int | None,
    max_gap: int | None,
    off: float | None,
    cooldown: int | None,
) -> Any:
    """The post-rule: options given explicitly, else the alarm policy of the model card
    (``model``: its path, or the policy itself); prints where each setting came from (to
    stderr: stdout may be a data stream)."""
    from anomae.events import resolve_post_rule, rule_text

    alarm = model if isinstance(model, dict) else _card_alarm(model)
    given = {"min_windows": min_windows, "max_gap": max_gap, "off": off, "cooldown": cooldown}
    try:
        rule, source = resolve_post_rule(alarm, given)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(rule_text(rule, source), err=True)
    return rule


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from exc


TRAIN_THREADS = click.option(
    "--threads",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="PyTorch intra-op threads while training (0: torch's default, one per core); 1 is "
    "often fastest on a small machine other work shares ([train] threads in a pipeline).",
)


def _train_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", value):
        raise click.BadParameter(f"{value!r}: use cpu, cuda, cuda:N (N: the GPU's index) or auto")
    return value


TRAIN_DEVICE = click.option(
    "--device",
    default="cpu",
    show_default=True,
    callback=_train_device,
    help="cpu, cuda, cuda:N or auto (CUDA when available).",
)

_HOLDOUT_FROM = click.option(
    "--holdout-from",
    type=click.Choice(["spread", "tail"]),
    default="spread",
    show_default=True,
    help="spread: held-out blocks sampled over each series' whole span; tail: its last rows.",
)


def calibration_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--method",
            default="events",
            show_default=True,
            type=click.Choice(["events", "quantile", "ksigma", "mad", "pot", "fpr", "f1"]),
            help="events: threshold and post-rule for a budget of false events per series per "
            "day (--false-events-per-day); quantile: q-quantile of normal scores; ksigma: "
            "mean+k*std; mad: median+k*MAD; pot: extreme-value tail fit (SPOT), risk q; fpr: "
            "target false-alarm rate per window (--rate, or --alarms-per-day); f1: "
            "F1-optimal on LABELLED data.",
        ),
        click.option(
            "--false-events-per-day",
            type=float,
            default=None,
            help="events: false events per series per day the threshold allows on normal "
            "data (default 0.143: one per week).",
        ),
        click.option(
            "--search-min-windows",
            default="",
            help="events: comma-separated --min-windows candidates (e.g. 1,2,3,5); the one "
            "allowing the lowest threshold is kept and written to the model card "
            "(default: the model's post-rule, else 3).",
        ),
        click.option(
            "--q",
            type=float,
            default=None,
            help="quantile: the quantile (default 0.995); pot: the risk (1e-3).",
        ),
        click.option("--k", type=float, default=None, help="ksigma/mad multiplier (default 3)."),
        click.option("--rate", type=float, default=None, help="fpr: false-alarm rate per window."),
        click.option(
            "--alarms-per-day",
            type=float,
            default=None,
            help="fpr: expected false alarms per day per series.",
        ),
        click.option(
            "--interval-s",
            type=float,
            default=None,
            help="events/fpr: sampling interval in seconds (default: from the data).",
        ),
        click.option(
            "--init-quantile",
            type=float,
            default=None,
            help="pot/events: quantile where the tail starts (default 0.98).",
        ),
        click.option(
            "--per-feature/--no-per-feature",
            default=False,
            show_default=True,
            help="Also store a threshold per feature, for attribution.",
        ),
        click.option(
            "--per-series/--no-per-series",
            default=False,
            show_default=True,
            help="Also calibrate a threshold per series on its own held-out data, by the same "
            "method; series with too little data (named in the output and the card) and "
            "series not in the data use the fleet threshold.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _calibration(method: str, holdout: float = 0.2, **kw: Any) -> Any:
    """The :class:`CalibrateSection` of :func:`calibration_options`' values."""
    from anomae.calibrate_settings import CalibrateSection

    if "search_min_windows" in kw:  # the option's text, as the section's candidates
        kw["min_windows"] = tuple(_ints(kw.pop("search_min_windows") or ""))
    try:
        return CalibrateSection(method=method, holdout=holdout, **kw)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _threshold_text(th: Any) -> str:
    from anomae.report import false_events_text, far_text, params_text, per_series_text

    return (
        f"threshold {th.value:.6g} by {th.method} {params_text(th.params)} on "
        f"{th.n_calibration:,} windows; expected false-alarm rate "
        f"{far_text(th.expected_far, th.expected_far_ci)}"
        + (f"; {false_events_text(th)}" if th.expected_false_events_per_day is not None else "")
        + (f"\n{per_series_text(th)}" if th.per_series or th.per_series_fallback else "")
    )
