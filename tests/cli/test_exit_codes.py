"""Exit status as click has it: 1 for any AnomaeError (bad data, bad model, failed run),
2 for a bad command line, 130 for Ctrl-C; never a traceback."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import run_cli

from anomae.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_USAGE, _Group, main

USER_ERRORS = [
    ("anomae.errors", "InputError"),
    ("anomae.calibrate", "CalibrationError"),
    ("anomae.spec", "ModelCardError"),
    ("anomae.detector", "DetectorError"),
    ("anomae.pipeline", "PipelineError"),
    ("anomae.atomic", "OutputError"),
    ("anomae.reference", "ReferenceMismatch"),
    ("anomae.eval.benchmark", "DataMissing"),
    ("anomae.eval.plot", "PlotError"),
    ("anomae.train.export", "ExportParityError"),
    ("anomae.monitor.scorer", "MonitorError"),
    ("anomae.monitor.sources.prometheus", "PrometheusError"),
]


def test_the_statuses() -> None:
    assert (EXIT_BAD_INPUT, EXIT_USAGE, EXIT_INTERRUPTED) == (1, 2, 130)


def _group_raising(exc: BaseException) -> _Group:
    group = _Group()

    @group.command()
    def boom() -> None:
        """Raise."""
        raise exc

    return group


@pytest.mark.parametrize(("module", "name"), USER_ERRORS)
def test_every_user_error_is_one_line_and_status_1(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    r = CliRunner().invoke(_group_raising(cls("pump.csv: no column 'temp'")), ["boom"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert r.output == "error: pump.csv: no column 'temp'\n"


def test_other_exceptions_are_not_swallowed() -> None:
    r = CliRunner().invoke(_group_raising(ValueError("a bug")), ["boom"])
    assert isinstance(r.exception, ValueError)


def test_keyboard_interrupt_is_130_without_traceback() -> None:
    r = CliRunner().invoke(_group_raising(KeyboardInterrupt()), ["boom"])
    assert r.exit_code == 130 and r.output == "interrupted\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "--no-such-option"], "No such option"),
        (["inspect"], "Missing argument 'MODEL'"),
        (["demo-data", "--features", "5"], "5 is not in the range 6<=x<=12"),
        (["demo-data", "--series", "0"], "0 is not in the range x>=1"),
        (["train", "x.csv", "-o", "m.onnx", "--device", "tpu"], "cpu, cuda, cuda:N"),
        (["train", "x.csv", "-o", "m.onnx", "--threads", "-1"], "-1 is not in the range x>=0"),
    ],
)
def test_bad_command_lines_are_status_2(args: list[str], message: str, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert message in r.output
    assert not (tmp_path / "m.onnx").exists()


def test_demo_sensor_range_is_the_generator_s() -> None:
    from anomae.cli.pipeline import DEMO_SENSORS
    from anomae.synth import SENSORS

    assert DEMO_SENSORS == len(SENSORS)


def test_missing_model_is_status_1(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["inspect", str(tmp_path / "absent.onnx")])
    assert r.exit_code == 1 and r.output.startswith("error: ") and "absent.onnx" in r.output


@pytest.mark.slow
def test_ctrl_c_during_training_exits_130_and_keeps_the_old_model(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from anomae.synth import SynthConfig, write_demo

    data = write_demo(tmp_path / "d", SynthConfig(seed=1, n_series=1, n_features=6))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"yesterday's model")
    args = [str(data["train"]), "-o", str(model), "--force", "--epochs", "100000"]
    args += ["--patience", "100000", "--progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomae.cli", "train", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # the progress line of epoch 1: training is under way
        if line.startswith("epoch 1/"):
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert rest.strip().splitlines()[-1] == "interrupted" and "Traceback" not in rest
    assert model.read_bytes() == b"yesterday's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "model.onnx"]


def test_the_missing_torch_hint_names_both_installs(tmp_path: Path) -> None:
    from conftest import blocked_imports

    r = run_cli(
        ["train", "x.csv", "-o", str(tmp_path / "m.onnx")],
        env=blocked_imports(tmp_path / "b", "torch"),
    )
    assert r.returncode == 1, r.stderr
    assert "pip install 'anomae[train]' (from PyPI) or pip install -e '.[train]'" in r.stderr
