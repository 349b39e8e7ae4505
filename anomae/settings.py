"""Settings dataclasses from TOML tables (or keyword dicts of options).

:func:`from_table` checks the keys and the simple types of a table against a frozen
dataclass, then builds it, so the dataclass's own ``__post_init__`` checks the values. Every
error is a :class:`~anomae.errors.PipelineError` that starts with ``where`` (file and
section), whether the key, its type or its value is wrong.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Example:
    ...     length: int = 8
    ...     rate: float = 0.5
    ...     names: tuple[str, ...] = ()
    >>> from_table(Example, {"rate": 1, "names": "temp"}, "p.toml [example]")
    Example(length=8, rate=1.0, names=('temp',))
    >>> from_table(Example, {"length": "8"}, "p.toml [example]")
    Traceback (most recent call last):
    ...
    anomae.errors.PipelineError: p.toml [example]: key 'length' must be int, got str '8'
"""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Any

from anomae.errors import PipelineError


def from_table(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from TOML values, checking keys and simple types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        hint = hints[key]
        origin = typing.get_origin(hint)
        if origin is tuple:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list):
                raise PipelineError(f"{where}: key '{key}' must be a list, got {value!r}")
            value = tuple(value)
        elif (
            hint in (float, float | None) and isinstance(value, int) and not isinstance(value, bool)
        ):
            value = float(value)
        elif hint in (int, float, str, bool) and not isinstance(value, hint):
            raise PipelineError(
                f"{where}: key '{key}' must be {hint.__name__}, got {type(value).__name__} "
                f"{value!r}"
            )
        if hint is int and isinstance(value, bool):
            raise PipelineError(f"{where}: key '{key}' must be int, got {value!r}")
        out[key] = value
    try:
        return cls(**out)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"{where}: {exc}") from exc
