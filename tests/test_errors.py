"""Error types and how input errors point at the bad cell (anomae/errors.py)."""

from __future__ import annotations

import pytest

from anomae.errors import CalibrationError, InputError, _cell, _show


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
