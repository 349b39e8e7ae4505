"""The ``anomae`` command: a thin shell over the library (parse, call one function, print).

This package holds the ``main`` group; each command lives in the module of its group
(pipeline: demo-data, run, evaluate; training: train; tuning: tune; model: calibrate,
inspect; scoring: score; monitoring: monitor; retrain: retrain), the options they share
in ``options``.
Every option can also be set through an environment variable ``ANOMAE_<COMMAND>_<OPTION>``
(the long option name, upper-cased, dashes as underscores: ``ANOMAE_SCORE_DEVICE=cuda``,
``ANOMAE_DEMO_DATA_SERIES=2``). Exit status: 0 done, 1 bad data, a bad model or a failed
run (any :class:`~anomae.errors.AnomaeError`: one ``error:`` line), 2 a bad command line
(click's usage errors), 130 interrupted (Ctrl-C). Heavy imports happen inside each
command, so ``anomae score`` never imports torch.
"""

from __future__ import annotations

from typing import Any

import click

from anomae.cli.model import calibrate, inspect
from anomae.cli.monitoring import monitor
from anomae.cli.options import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_USAGE, set_envvars
from anomae.cli.pipeline import demo_data, evaluate, run
from anomae.cli.quantize import quantize
from anomae.cli.replay import replay
from anomae.cli.retrain import retrain
from anomae.cli.scoring import score
from anomae.cli.training import train
from anomae.cli.tuning import tune_command

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "calibrate",
    "demo_data",
    "evaluate",
    "inspect",
    "main",
    "monitor",
    "retrain",
    "run",
    "score",
    "train",
    "tune_command",
]


class _Group(click.Group):
    """Turns the library's user-facing errors into one clean line and exit status 1, Ctrl-C
    into "interrupted" and 130 (outputs are written atomically: the old ones stay), and
    gives every option of a command added its ``ANOMAE_<COMMAND>_<OPTION>`` variable."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        set_envvars(cmd, name or cmd.name or "")

    def invoke(self, ctx: click.Context) -> Any:
        from anomae.errors import AnomaeError, install_hint

        try:
            return super().invoke(ctx)
        except AnomaeError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except ImportError as exc:
            if getattr(exc, "name", "") == "torch":
                click.echo(f"error: training needs PyTorch: {install_hint('train')}", err=True)
                ctx.exit(EXIT_BAD_INPUT)
            raise


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
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

    Every option is also an environment variable ANOMAE_<COMMAND>_<OPTION> (each
    command's --help names it: ANOMAE_SCORE_DEVICE, ANOMAE_DEMO_DATA_SERIES); the command
    line wins over the environment.

    \b
    Exit status:
      0    done
      1    bad data, a bad model or a failed run (one "error:" line on stderr)
      2    a bad command line: unknown option, bad option value, missing argument
      130  interrupted (Ctrl-C); files already there are left as they were
    """


for _command in (
    demo_data,
    run,
    train,
    tune_command,
    calibrate,
    quantize,
    score,
    evaluate,
    inspect,
    monitor,
    replay,
    retrain,
):
    main.add_command(_command)
