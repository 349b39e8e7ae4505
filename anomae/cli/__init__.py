"""The ``anomae`` command: a thin shell over the library (parse, call one function, print).

This package holds the ``main`` group; each command lives in the module of its group
(pipeline: demo-data, run, evaluate; training: train; tuning: tune; model: calibrate,
inspect; scoring: score; monitoring: monitor), the options they share in ``options``.
Every option can also be set through an environment variable ``ANOMAE_<COMMAND>_<OPTION>``
(for example ``ANOMAE_SCORE_DEVICE=cuda``). Heavy imports happen inside each command, so
``anomae score`` never imports torch.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from anomae.cli.model import calibrate, inspect
from anomae.cli.monitoring import monitor
from anomae.cli.options import EXIT_BAD_INPUT
from anomae.cli.pipeline import demo_data, evaluate, run
from anomae.cli.quantize import quantize
from anomae.cli.replay import replay
from anomae.cli.scoring import score
from anomae.cli.training import train
from anomae.cli.tuning import tune_command

__all__ = [
    "EXIT_BAD_INPUT",
    "calibrate",
    "demo_data",
    "evaluate",
    "inspect",
    "main",
    "monitor",
    "run",
    "score",
    "train",
    "tune_command",
]


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


for _command in (
    demo_data, run, train, tune_command, calibrate, quantize, score, evaluate, inspect, monitor,
    replay,
):
    main.add_command(_command)
