"""Numeric columns that identify rather than measure, refused as automatically chosen features.

A ``machine_id`` column is numeric, so "every numeric column" makes it a feature; constant
within each series, it teaches the model that each machine's id is part of normal, and any
series scored under another id (or with the column scaled by a different spread) reads as
anomalous everywhere. :func:`identifier_columns` flags integer-valued columns that are
constant within every series or whose name says *id*; :func:`refuse_identifier_columns`
turns them into an :class:`anomae.io.InputError` that says how to exclude or keep them.
Only features chosen automatically are checked: ``--features`` (or ``[data] features``)
decides.

    >>> import numpy as np
    >>> from anomae.io import SeriesData
    >>> v = np.array([[7, 1.5], [7, 2.5], [7, 0.5]], np.float32)
    >>> s = SeriesData("m1", "a.csv", np.arange(3), v, None, np.arange(3))
    >>> identifier_columns([s], ["machine", "temp"])
    [('machine', 'integer and constant within every series')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from anomae.io import InputError, SeriesData

_CAMEL = re.compile(r"[a-z](Id|ID)$")
_SNAKE = re.compile(r"(^|[_\-\s.])id($|[_\-\s.])", re.IGNORECASE)


def looks_like_id(name: str) -> bool:
    """``id``, ``machine_id``, ``id-2``, ``machineId``, ``hostID``; not ``fluid`` or ``idle``."""
    return bool(_SNAKE.search(name) or _CAMEL.search(name))


def identifier_columns(
    series: Sequence[SeriesData], features: Sequence[str]
) -> list[tuple[str, str]]:
    """``(name, reason)`` for each integer-valued feature that looks like an identifier."""
    found: list[tuple[str, str]] = []
    for j, name in enumerate(features):
        cols = [s.values[:, j] for s in series]
        observed = [c[~np.isnan(c)] for c in cols]
        if not any(o.size for o in observed):
            continue
        if not all(np.array_equal(o, np.round(o)) for o in observed):
            continue
        if all(o.size == 0 or o.min() == o.max() for o in observed):
            found.append((name, "integer and constant within every series"))
        elif looks_like_id(name):
            found.append((name, "integer and named like an identifier"))
    return found


# names of a column that holds anomaly labels in public data (TSB-AD's "Label", SKAB's
# "anomaly", NAB-style "is_anomaly"), said in the refusal when one is taken for a feature
LABEL_NAMES = ("label", "labels", "anomaly", "is_anomaly", "attack")


def refuse_identifier_columns(
    series: Sequence[SeriesData], features: Sequence[str], where: str
) -> None:
    """Raise :class:`InputError` naming the identifier-like columns among ``features``."""
    found = identifier_columns(series, features)
    if not found:
        return
    keep = [f for f in features if f not in {n for n, _ in found}]
    listed = "; ".join(f"'{n}' ({why})" for n, why in found)
    labels = [n for n, _ in found if n.lower() in LABEL_NAMES]
    hint = (
        f"; if '{labels[0]}' holds the anomaly labels, name it: --label-column {labels[0]}"
        if labels
        else ""
    )
    raise InputError(
        f"{where}: column(s) {listed} look like identifiers, not measurements; as features "
        f"they make every other series (or id) look anomalous. Exclude them by naming the "
        f"features: --features {','.join(keep) or '...'} (or list them there too to use "
        f"them anyway){hint}"
    )
