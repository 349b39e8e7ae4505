from __future__ import annotations

import importlib
import pickle

import pytest

from anomae.errors import AnomaeError, CalibrationError, InputError, _cell, _show, install_hint

# (module, class, the second base callers already catch it by)
USER_ERRORS = [
    ("anomae.errors", "InputError", ValueError),
    ("anomae.calibrate", "CalibrationError", ValueError),
    ("anomae.spec", "ModelCardError", ValueError),
    ("anomae.detector", "DetectorError", ValueError),
    ("anomae.pipeline", "PipelineError", ValueError),
    ("anomae.atomic", "OutputError", Exception),
    ("anomae.reference", "ReferenceMismatch", ValueError),
    ("anomae.eval.benchmark", "DataMissing", RuntimeError),
    ("anomae.eval.plot", "PlotError", RuntimeError),
    ("anomae.train.export", "ExportParityError", RuntimeError),
    ("anomae.monitor.scorer", "MonitorError", ValueError),
    ("anomae.monitor.sources.prometheus", "PrometheusError", RuntimeError),
]


@pytest.mark.parametrize(("module", "name", "second"), USER_ERRORS)
def test_every_user_facing_error_is_an_anomae_error(
    module: str, name: str, second: type[Exception]
) -> None:
    cls = getattr(importlib.import_module(module), name)
    err = cls("pump.csv: no column 'temp'")
    assert isinstance(err, AnomaeError) and isinstance(err, second)
    assert str(err) == "pump.csv: no column 'temp'"  # the message is unchanged


def test_the_monitor_raises_the_error_it_exports() -> None:
    from anomae.monitor.daemon import MonitorError

    assert issubclass(MonitorError, AnomaeError)


def test_parts_make_the_message() -> None:
    err = InputError(where="pump.csv", what="no column 'temp'", fix="pass --features")
    assert str(err) == "pump.csv: no column 'temp'; pass --features"
    assert (err.where, err.what, err.fix) == ("pump.csv", "no column 'temp'", "pass --features")
    whole = AnomaeError("pump.csv: bad")
    assert (whole.where, whole.what, whole.fix) == (None, "pump.csv: bad", None)
    back = pickle.loads(pickle.dumps(err))  # errors cross process pools
    assert type(back) is InputError and str(back) == str(err)


def test_install_hint_names_both_ways() -> None:
    hint = install_hint("train")
    assert "pip install 'anomae[train]'" in hint and "pip install -e '.[train]'" in hint


@pytest.mark.parametrize(
    ("row", "is_csv", "where"),
    [(0, True, "x.csv: column 'temp', row 1 (line 2)"),
     (9, False, "x.csv: column 'temp', row 10")],
)  # fmt: skip
def test_cell_names_file_column_row(row: int, is_csv: bool, where: str) -> None:
    assert _cell("x.csv", "temp", row, is_csv) == where


def test_show_quotes_and_truncates() -> None:
    assert _show("1,5") == '"1,5"'
    long = _show("x" * 100)
    assert long == '"' + "x" * 40 + '..."'


def test_errors_are_value_errors_and_reexported() -> None:
    import anomae.calibrate
    import anomae.io

    assert issubclass(InputError, ValueError) and issubclass(CalibrationError, ValueError)
    assert anomae.io.InputError is InputError
    assert anomae.calibrate.CalibrationError is CalibrationError
