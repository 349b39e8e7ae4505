"""The error every bad input raises, and how its message says where the input is wrong.

Messages name the file, the column and the row: ``row`` counts data rows from 1 and, for
CSV, adds the file line, where line 1 is the header.

    >>> print(InputError(_cell("pump.csv", "temp", 0, True) + ": value " + _show("1,5")))
    pump.csv: column 'temp', row 1 (line 2): value "1,5"
"""

from __future__ import annotations

import json


class InputError(ValueError):
    """Raised for any bad input; ``str(err)`` is the full user-facing message."""


class CalibrationError(ValueError):
    """The calibration data cannot support the requested threshold."""


def _row(row: int, is_csv: bool) -> str:
    return f"row {row + 1}" + (f" (line {row + 2})" if is_csv else "")


def _cell(source: str, column: str, row: int, is_csv: bool) -> str:
    return f"{source}: column '{column}', {_row(row, is_csv)}"


def _show(value: object) -> str:
    text = str(value)
    return json.dumps(text if len(text) <= 40 else text[:40] + "...")
