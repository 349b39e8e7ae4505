"""The errors anomae raises for its users, and how their messages say where an input is wrong.

Every user-facing error derives from :class:`AnomaeError`: the command line turns any of
them into one line on stderr and exit status 1 (usage errors are click's, status 2).
``str(err)`` is the whole message; ``where``, ``what`` and ``fix`` hold its parts when the
raiser gave them apart.

    >>> err = AnomaeError(where="pump.csv", what="no column 'temp'", fix="pass --features")
    >>> print(err)
    pump.csv: no column 'temp'; pass --features
    >>> err.where, err.fix
    ('pump.csv', 'pass --features')

Input messages name the file, the column and the row: ``row`` counts data rows from 1 and,
for CSV, adds the file line, where line 1 is the header.

    >>> print(InputError(_cell("pump.csv", "temp", 0, True) + ": value " + _show("1,5")))
    pump.csv: column 'temp', row 1 (line 2): value "1,5"
"""

from __future__ import annotations

import json

INSTALL_HINT = (
    "pip install 'anomae[{extra}]' (from PyPI) or pip install -e '.[{extra}]' (from a checkout)"
)


def install_hint(extra: str) -> str:
    """How to install the optional dependencies of ``extra``, for both kinds of install.

    >>> install_hint("train")
    "pip install 'anomae[train]' (from PyPI) or pip install -e '.[train]' (from a checkout)"
    """
    return INSTALL_HINT.format(extra=extra)


class AnomaeError(Exception):
    """The base of every error anomae raises for its users; ``str(err)`` is the full message.

    Raise it (or a subclass) with the whole message, ``AnomaeError("pump.csv: ...")``, or
    with its parts, ``AnomaeError(where=..., what=..., fix=...)``, which are then joined as
    ``"where: what; fix"``. ``what`` is the whole message when only that is given."""

    def __init__(
        self,
        *args: object,
        where: str | None = None,
        what: str | None = None,
        fix: str | None = None,
    ) -> None:
        if not args and (where or what or fix):
            text = (f"{where}: " if where else "") + (what or "") + (f"; {fix}" if fix else "")
            args = (text,)
        super().__init__(*args)
        self.where = where
        self.what = what if what is not None else (str(args[0]) if len(args) == 1 else None)
        self.fix = fix


class InputError(AnomaeError, ValueError):
    """Raised for any bad input; ``str(err)`` is the full user-facing message."""


class CalibrationError(AnomaeError, ValueError):
    """The calibration data cannot support the requested threshold."""


class PipelineError(AnomaeError, ValueError):
    """A pipeline file or option is invalid; the message names file, section and key."""


def _row(row: int, is_csv: bool) -> str:
    return f"row {row + 1}" + (f" (line {row + 2})" if is_csv else "")


def _cell(source: str, column: str, row: int, is_csv: bool) -> str:
    return f"{source}: column '{column}', {_row(row, is_csv)}"


def _show(value: object) -> str:
    text = str(value)
    return json.dumps(text if len(text) <= 40 else text[:40] + "...")
