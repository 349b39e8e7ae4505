"""The ``anomae`` command: a thin shell over the library (parse, call one function, print).

Every option can also be set through an environment variable ``ANOMAE_<COMMAND>_<OPTION>``
(for example ``ANOMAE_SCORE_DEVICE=cuda``). Heavy imports happen inside each command, so
``anomae score`` never imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

EXIT_BAD_INPUT = 2


def _user_errors() -> tuple[type[BaseException], ...]:
    from anomae.atomic import OutputError
    from anomae.calibrate import CalibrationError
    from anomae.detector import DetectorError
    from anomae.io import InputError
    from anomae.pipeline import PipelineError
    from anomae.spec import ModelCardError

    errs: list[type[BaseException]] = [
        InputError,
        DetectorError,
        ModelCardError,
        PipelineError,
        CalibrationError,
        OutputError,
    ]
    if "anomae.train.export" in sys.modules:
        errs.append(sys.modules["anomae.train.export"].ExportParityError)
    return tuple(errs)


class _Group(click.Group):
    """Turns the library's user-facing errors into one clean line and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _user_errors() as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except ImportError as exc:
            if getattr(exc, "name", "") == "torch":
                click.echo(
                    "error: training needs PyTorch: pip install 'anomae[train]' "
                    "(or pip install torch)",
                    err=True,
                )
                ctx.exit(EXIT_BAD_INPUT)
            raise


def table_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--timestamp-column",
            default="timestamp",
            show_default=True,
            help="Column with the time of each row (datetime, RFC 3339 or epoch s).",
        ),
        click.option(
            "--series-column",
            default="series",
            show_default=True,
            help="Column naming the series (machine); absent: one series per file.",
        ),
        click.option(
            "--label-column",
            default="label",
            show_default=True,
            help="Optional 0/1 label column, never used as a feature.",
        ),
        click.option(
            "--features",
            default="",
            help="Comma-separated feature columns (default: all numeric columns).",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _table(timestamp_column: str, series_column: str, label_column: str, features: str) -> Any:
    from anomae.io import TableSpec

    feats = tuple(x.strip() for x in features.split(",") if x.strip())
    return TableSpec(
        timestamp=timestamp_column,
        series=series_column,
        features=feats or None,
        label=label_column or None,
    )


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


@click.group(
    cls=_Group,
    context_settings={"auto_envvar_prefix": "ANOMAE", "help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="anomae")
def main() -> None:
    """anomae: autoencoder anomaly detection for sensor and metrics time series.

    \b
    Typical flow:
      anomae demo-data --out data/demo                    # bundled synthetic data
      anomae run pipelines/demo.toml --out runs/demo      # train→calibrate→export→score→report
      anomae score runs/demo/model.onnx new.parquet -o scores.parquet --events events.csv
      anomae inspect runs/demo/model.onnx

    A score above the threshold (normalised score > 1) is an anomaly.
    """


@main.command("demo-data")
@click.option(
    "--out",
    "out_dir",
    default="data/demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for train/test files.",
)
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same data).")
@click.option("--series", "n_series", default=4, show_default=True, help="Number of machines.")
@click.option(
    "--features", "n_features", default=8, show_default=True, help="Sensors per machine (6-12)."
)
def demo_data(out_dir: str, seed: int, n_series: int, n_features: int) -> None:
    """Generate the demo dataset: normal training period and a labelled test period."""
    from anomae.synth import SynthConfig, write_demo

    paths = write_demo(out_dir, SynthConfig(seed=seed, n_series=n_series, n_features=n_features))
    for name, p in paths.items():
        click.echo(f"{name}: {p}")


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder: model.onnx, scores.parquet, events.csv, report.json. An existing "
    "folder is reused: those files are replaced (each atomically), others are left alone.",
)
def run(pipeline: str, out_dir: str) -> None:
    """Run a pipeline file: train → export → calibrate → score → report."""
    from anomae.report import summary_text
    from anomae.run import run_pipeline

    report = run_pipeline(pipeline, out_dir)
    click.echo(summary_text(report))


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
    from anomae.pipeline import CalibrateSection

    if "search_min_windows" in kw:  # the option's text, as the section's candidates
        kw["min_windows"] = tuple(_ints(kw.pop("search_min_windows") or ""))
    try:
        return CalibrateSection(method=method, holdout=holdout, **kw)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _threshold_text(th: Any) -> str:
    from anomae.report import false_events_text, per_series_text

    ci = th.expected_far_ci
    far = f"{th.expected_far:.3g}" if th.expected_far is not None else "?"
    ci_text = f" (95% CI {ci[0]:.3g}-{ci[1]:.3g})" if ci else ""
    return (
        f"threshold {th.value:.6g} by {th.method} {th.params} on {th.n_calibration:,} "
        f"windows; expected false-alarm rate {far}{ci_text} per window"
        + (f"; {false_events_text(th)}" if th.expected_false_events_per_day is not None else "")
        + (f"\n{per_series_text(th)}" if th.per_series or th.per_series_fallback else "")
    )


@main.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False), help="Where to write model.onnx."
)
@table_options
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
    "--arch",
    type=click.Choice(["dense", "conv"]),
    default="dense",
    show_default=True,
    help="Dense (stacked) or 1-D convolutional autoencoder.",
)
@click.option(
    "--hidden",
    default="8",
    show_default=True,
    help="Encoder widths, last is the code; wider than the input = over-complete.",
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
@click.option("--weight-decay", default=0.0, show_default=True)
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    help="Training windows held out for early stopping.",
)
@click.option("--patience", default=8, show_default=True, help="Early-stopping patience (epochs).")
@click.option(
    "--error-weights",
    type=click.Choice(["heldout", "equal"]),
    default="equal",
    show_default=True,
    help="heldout: each feature's squared error divided by its mean on held-out normal "
    "windows, so no sensor dominates the score; equal: raw scaled errors.",
)
@click.option(
    "--constant",
    type=click.Choice(["ignore", "keep"]),
    default="ignore",
    show_default=True,
    help="ignore: features constant in the training rows are left out of the score (and "
    "named); keep: score them (any change will count as an anomaly).",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--holdout",
    default=0.2,
    show_default=True,
    help="Fraction of each series held out to calibrate (0: no threshold).",
)
@_HOLDOUT_FROM
@calibration_options
@click.option("--progress/--no-progress", default=True, show_default=True)
@_force_option("an existing --out file")
def train(
    data: tuple[str, ...],
    out: str,
    timestamp_column: str,
    series_column: str,
    label_column: str,
    features: str,
    window: int,
    stride: int,
    train_stride: int,
    center: bool,
    arch: str,
    hidden: str,
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
    constant: str,
    seed: int,
    device: str,
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
    force: bool,
) -> None:
    """Train an autoencoder on normal DATA files and export one calibrated ONNX model.

    A fraction --holdout of each series (blocks spread over its span, or its last rows with
    --holdout-from tail) is never trained on; the threshold is calibrated on it by --method
    (f1 needs labels: calibrate later with `anomae calibrate`). Without --features every
    numeric column is a feature, except integer columns that look like identifiers
    (constant within every series, or named *id*): those are refused. The model is exported
    and calibrated in a temporary file and replaces --out only when complete."""
    from anomae.atomic import check_outputs, target_of, temp_name
    from anomae.calibrate_model import calibrate_trained
    from anomae.idcolumns import refuse_identifier_columns
    from anomae.io import read_series
    from anomae.modelfile import rewrite_card
    from anomae.pipeline import parse_pipeline
    from anomae.train.step import train_step

    section = _calibration(
        method,
        holdout,
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

    feats = [x.strip() for x in features.split(",") if x.strip()]
    doc = {
        "data": {
            "train": list(data),
            "timestamp": timestamp_column,
            "series": series_column,
            "label": label_column,
            "features": feats,
        },
        "window": {
            "length": window,
            "stride": stride,
            "train_stride": train_stride,
            "center": center,
        },
        "model": {
            "kind": arch,
            "hidden": _ints(hidden),
            "channels": _ints(channels),
            "kernel": kernel,
            "activation": activation,
            "code_activation": code_activation or ("sigmoid" if sparsity == "kl" else "linear"),
        },
        "noise": {"kind": noise, "sigma": sigma, "p": noise_p},
        "sparsity": {"kind": sparsity, "rho": rho, "beta": beta},
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "weight_decay": weight_decay,
            "val_fraction": val_fraction,
            "patience": patience,
            "seed": seed,
            "device": device,
            "progress": progress,
        },
        "weights": {"errors": error_weights, "constant": constant},
        "calibrate": {
            "method": method,
            "holdout": holdout,
            "holdout_from": holdout_from,
            "per_feature": per_feature,
            "per_series": per_series,
            **section.params(),
        },
    }
    pipe = parse_pipeline(doc, "anomae train")
    check_outputs([out], data, force)
    series, feats_t = read_series(list(data), pipe.data.table())
    if not feats:
        refuse_identifier_columns(series, feats_t, data[0] if len(data) == 1 else "DATA")
    click.echo(f"features ({len(feats_t)}): {', '.join(feats_t)}")
    # Export and calibrate beside --out, then replace it once: a kill or a calibration error
    # leaves the old model as it was (the temporary is removed, or cleaned up on next write).
    tmp = temp_name(target_of(out))
    try:
        card, summary, cal_rows = train_step(pipe, series, feats_t, tmp)
        click.echo(
            f"trained {arch} AE on {summary['n_train_windows']:,} windows in "
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


@main.command("tune")
@click.argument("data", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False), help="Output .onnx model."
)
@table_options
@click.option(
    "--grid",
    multiple=True,
    help="One axis of the grid, repeatable: window=8,32  hidden=4;64,16 (';' between "
    "candidates)  noise=0,0.2 (Gaussian sigma, 0 = none)  center=off,on. Unset axes keep "
    "the default grid (hidden: a code of half the features, and 64,16).",
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
@click.option("--batch-size", default=256, show_default=True)
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--patience", default=5, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--seed", default=0, show_default=True, help="Training and injection seed.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option(
    "--holdout",
    default=0.2,
    show_default=True,
    help="Fraction of each series held out: candidates are compared on it, then it "
    "calibrates the chosen model.",
)
@_HOLDOUT_FROM
@calibration_options
@click.option("--progress/--no-progress", default=True, show_default=True)
@_force_option("an existing --out file")
def tune_command(
    data: tuple[str, ...],
    out: str,
    timestamp_column: str,
    series_column: str,
    label_column: str,
    features: str,
    grid: tuple[str, ...],
    tune_epochs: int,
    tune_stride: int,
    stride: int,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int,
    seed: int,
    device: str,
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
    from anomae.pipeline import parse_pipeline
    from anomae.tune import label_free, label_note, tuned_train_step

    try:
        axes = parse_grid(grid)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid") from exc
    section = _calibration(calibration["method"], holdout, **{
        k: v for k, v in calibration.items() if k != "method"
    })  # fmt: skip
    feats = [x.strip() for x in features.split(",") if x.strip()]
    doc = {
        "data": {
            "train": list(data),
            "timestamp": timestamp_column,
            "series": series_column,
            "label": label_column,
            "features": feats,
        },
        "window": {"stride": stride},
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "patience": patience,
            "seed": seed,
            "device": device,
            "progress": progress,
        },
        "calibrate": {
            "method": section.method,
            "holdout": holdout,
            "holdout_from": holdout_from,
            "per_feature": section.per_feature,
            "per_series": section.per_series,
            **section.params(),
        },
        "tune": {**axes, "epochs": tune_epochs, "train_stride": tune_stride, "seed": seed},
    }
    pipe = parse_pipeline(doc, "anomae tune")
    check_outputs([out], data, force)
    series, feats_t = read_series(list(data), label_free(pipe.data.table()))
    if not feats:
        refuse_identifier_columns(series, feats_t, data[0] if len(data) == 1 else "DATA")
    note = label_note(list(data), label_column)
    if note:
        click.echo(note)
    click.echo(f"features ({len(feats_t)}): {', '.join(feats_t)}")
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


@main.command()
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
    timestamp_column: str,
    series_column: str,
    label_column: str,
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
    from anomae.calibrate_model import calibrate_blocks, chosen_rule, sampling_interval
    from anomae.detector import Detector
    from anomae.events import resolve_post_rule
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
    rule, _ = resolve_post_rule(det.card.alarm, {})
    table = _table(timestamp_column, series_column, label_column, features)
    series, _ = read_series(list(data), table, features=det.card.features)
    th = calibrate_blocks(
        det,
        [s.values for s in series],
        section,
        interval_s=sampling_interval(series),
        labels=[s.labels for s in series],
        rule=rule,
        names=[s.name for s in series],
    )
    alarm = {**det.card.alarm, "post_rule": dataclasses.asdict(chosen_rule(th, rule))}
    rewrite_card(model, dataclasses.replace(det.card.with_threshold(th), alarm=alarm), out)
    click.echo(f"{_threshold_text(th)} -> {out or model}")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Scores file: .parquet (default) or .csv; written atomically.",
)
@click.option(
    "--events",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the event table (.csv or .parquet).",
)
@table_options
@post_rule_options
@likelihood_options
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu, or cuda / cuda:N with onnxruntime-gpu installed.",
)
@click.option("--threads", default=0, show_default=True, help="onnxruntime threads (0 = all).")
@click.option(
    "--max-gap-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="A longer gap between a series' rows starts its windows afresh. Default: the model "
    "card's gap limit (10x the training data's median interval), as `anomae monitor` "
    "applies it; 0: window straight across gaps.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@_force_option("existing scores and events files")
def score(
    model: str,
    inputs: tuple[str, ...],
    output: str,
    events: str | None,
    timestamp_column: str,
    series_column: str,
    label_column: str,
    features: str,
    min_windows: int | None,
    max_gap: int | None,
    off: float | None,
    cooldown: int | None,
    top_k: int,
    threshold: float | None,
    device: str,
    threads: int,
    max_gap_seconds: float | None,
    progress: bool | None,
    force: bool,
    **likelihood: Any,
) -> None:
    """Score CSV/Parquet INPUTS with MODEL: one row per window, plus events.

    Both files are written completely before either replaces an old one (events first,
    scores last); existing outputs need --force, and an input or the model is never
    overwritten."""
    from anomae.score import ScoreOptions, score_files

    alarm = _card_alarm(model)
    policy = _card_likelihood(alarm, **likelihood)
    opts = ScoreOptions(
        rule=_card_rule(alarm, min_windows, max_gap, off, cooldown),
        top_k=top_k,
        threshold=threshold,
        likelihood=policy,
        progress=progress,
        max_gap_s=max_gap_seconds,
    )
    table = _table(timestamp_column, series_column, label_column, features)
    s = score_files(
        model, inputs, output, events, table, opts, device=device, threads=threads, force=force
    )
    click.echo(
        f"scored {s.n_series} series, {s.n_rows:,} rows, {s.n_windows:,} windows in "
        f"{s.seconds:.2f}s ({s.n_windows / max(s.seconds, 1e-9):,.0f} windows/s): "
        f"{s.n_anomalous:,} anomalous windows, {s.n_events} events -> {output}"
        + (f", {events}" if events else "")
    )


@main.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option(
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
    "ranges and events (needs matplotlib: pip install 'anomae[plot]').",
)
def evaluate(pipeline: str, out_dir: str, data: str | None, limit: int, plot: bool) -> None:
    """Evaluate anomae and baselines on a public benchmark, as PIPELINE's [benchmark] says.

    Thresholds are calibrated without labels; F1/FAR/MAR are pooled, point-wise, without
    point-adjust; VUS-PR/ROC follow TSB-AD. Exits 0 with a message when the data is absent."""
    import dataclasses
    import json as _json

    from anomae.benchmark import DataMissing, run_benchmark
    from anomae.modelfile import atomic_write_bytes
    from anomae.pipeline import PipelineError, load_pipeline
    from anomae.plot import CasePlotter, PlotError
    from anomae.report import benchmark_markdown, benchmark_table

    pipe = load_pipeline(pipeline)
    if pipe.benchmark is None:
        raise PipelineError(f"{pipeline}: no [benchmark] section; use `anomae run` for it")
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


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the model card as JSON.")
def inspect(model: str, as_json: bool) -> None:
    """Show MODEL's card: features, window, scaler, threshold, training, provenance."""
    from anomae.modelfile import read_card
    from anomae.report import card_text

    card = read_card(model)
    click.echo(json.dumps(card.to_dict(), indent=2) if as_json else card_text(card, model))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--source",
    required=True,
    help="'-' (stdin), file:PATH or PATH (JSON lines), mqtt[s]://host:port/topic/#, "
    "prometheus://host:port.",
)
@click.option(
    "--source-opt",
    "source_opts",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option of an mqtt/prometheus source (repeatable); query.FEATURE=PROMQL for "
    "Prometheus queries.",
)
@click.option(
    "--follow/--no-follow",
    default=False,
    show_default=True,
    help="Keep reading a file as it grows (tail -F: survives truncation and rotation).",
)
@click.option("--from-end", is_flag=True, help="With --follow: start at the file's end.")
@click.option(
    "--sink",
    default=None,
    type=click.Path(dir_okay=False),
    help="Append one JSON line per scored window and per event here.",
)
@click.option(
    "--listen",
    default="127.0.0.1:9108",
    show_default=True,
    help="host:port of /metrics, /healthz, /readyz (port 0: any free port, logged).",
)
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False), help="TLS cert (PEM).")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False), help="TLS key (PEM).")
@click.option("--batch-size", default=1024, show_default=True, help="Windows per scoring call.")
@click.option(
    "--flush-ms",
    default=20.0,
    show_default=True,
    help="Score a partial batch once its oldest window waited this long.",
)
@click.option(
    "--queue-size", default=65536, show_default=True, help="Readings the intake queue holds."
)
@click.option(
    "--queue-bytes",
    default=128 * 2**20,
    show_default=True,
    help="Payload bytes the intake queue holds (a live source's readings beyond either bound "
    "are dropped and counted as queue_full; a file waits).",
)
@click.option("--threads", default=1, show_default=True, help="onnxruntime intra-op threads.")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda / cuda:N.")
@click.option(
    "--max-series",
    default=10000,
    show_default=True,
    help="Series tracked at most (the rest is dropped and counted).",
)
@click.option(
    "--series-ttl",
    default=0.0,
    show_default=True,
    help="Forget series silent for this many seconds (0: never).",
)
@click.option(
    "--max-gap-seconds",
    type=float,
    default=None,
    help="A longer gap between readings restarts the series' window. Default: the model "
    "card's gap limit (10x the training data's median interval), the one `anomae score` "
    "applies, so both window alike; a value given here overrides it (0: auto, 10x each "
    "series' recent typical interval, also what a card without a gap limit gets).",
)
@click.option(
    "--max-line-bytes", default=65536, show_default=True, help="Longer readings are invalid."
)
@click.option(
    "--max-future",
    default=300.0,
    show_default=True,
    help="Refuse readings dated more than this many seconds after this host's clock "
    "(counted as invalid, reason future_timestamp; 0: accept any date up to year 5000).",
)
@post_rule_options
@likelihood_options
@click.option(
    "--reload-check-seconds",
    default=5.0,
    show_default=True,
    help="Reload the model when its file changed, checked this often (0: only on SIGHUP).",
)
@click.option(
    "--drain-seconds",
    default=5.0,
    show_default=True,
    help="On SIGTERM, score what is queued for at most this long.",
)
@click.option(
    "--log-format", type=click.Choice(["json", "logfmt"]), default="json", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def monitor(
    model: str,
    source: str,
    source_opts: tuple[str, ...],
    follow: bool,
    from_end: bool,
    sink: str | None,
    listen: str,
    tls_cert: str | None,
    tls_key: str | None,
    batch_size: int,
    flush_ms: float,
    queue_size: int,
    queue_bytes: int,
    threads: int,
    device: str,
    max_series: int,
    series_ttl: float,
    max_gap_seconds: float | None,
    max_line_bytes: int,
    max_future: float,
    min_windows: int | None,
    max_gap: int | None,
    off: float | None,
    cooldown: int | None,
    top_k: int,
    threshold: float | None,
    reload_check_seconds: float,
    drain_seconds: float,
    log_format: str,
    log_level: str,
    **likelihood: Any,
) -> None:
    """Score a live stream with MODEL and serve Prometheus metrics.

    One JSON reading per line or message: {"series": "m1", "ts": RFC 3339 or epoch s,
    "values": {"temp": 21.5, ...}, "seq": 17}. SIGTERM drains and exits 0; SIGHUP reloads
    the model. With --source - and --sink it replays a file: at the end of the input it
    drains and exits 0."""
    from anomae.monitor.app import MonitorConfig, run_monitor
    from anomae.monitor.daemon import MonitorError, MonitorOptions

    try:
        opts = MonitorOptions(
            rule=_card_rule(model, min_windows, max_gap, off, cooldown),
            top_k=top_k,
            threshold=threshold,
            likelihood=_card_likelihood(_card_alarm(model), **likelihood),
            batch_size=batch_size,
            flush_ms=flush_ms,
            queue_size=queue_size,
            queue_bytes=queue_bytes,
            max_series=max_series,
            max_gap_seconds=max_gap_seconds,
            series_ttl_seconds=series_ttl,
            max_line_bytes=max_line_bytes,
            max_future_seconds=max_future,
            reload_check_seconds=reload_check_seconds,
            drain_seconds=drain_seconds,
        )
        cfg = MonitorConfig(
            model=model,
            source=source,
            source_opts=source_opts,
            follow=follow,
            from_end=from_end,
            sink=sink,
            listen=listen,
            tls_cert=tls_cert,
            tls_key=tls_key,
            device=device,
            threads=threads,
            log_format=log_format,
            log_level=log_level,
            options=opts,
        )
        code = run_monitor(cfg)
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code)


if __name__ == "__main__":
    main()
