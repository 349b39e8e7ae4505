"""The typed fast path of :mod:`anomae.monitor.readings`: a msgspec decoder made for one
model's features, which decodes a common reading in ~1.6 µs where ``json.loads`` takes ~6.
It only decodes; :class:`~anomae.monitor.readings.ReadingParser` judges what it returns and
sends whatever it refuses through the general stdlib path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import msgspec


def typed_decoder(features: Sequence[str]) -> tuple[Callable[[bytes], Any], Callable[[Any], Any]]:
    """A msgspec decoder for one reading of these features, and a getter of its value row.

    Struct fields are ``f0``, ``f1``, ... renamed to the feature names (which need not be
    identifiers); a feature that is absent or null is None, other keys are skipped.

    >>> decode, row = typed_decoder(("temp (C)", "rpm"))
    >>> r = decode(b'{"series": "m1", "ts": 60, "values": {"temp (C)": 21, "x": "?"}}')
    >>> r.series, r.ts, r.seq, row(r.values)
    ('m1', 60.0, None, (21.0, None))
    """
    fields = [f"f{i}" for i in range(len(features))]
    values = msgspec.defstruct(
        "Values",
        [(f, float | None, None) for f in fields],
        rename=dict(zip(fields, features, strict=True)),
    )
    reading = msgspec.defstruct(
        "Reading",
        [
            ("series", str | None, None),
            ("ts", float | str),
            ("values", values),
            ("seq", int | None, None),
        ],
        kw_only=True,
    )
    get = attrgetter(*fields) if len(fields) > 1 else (lambda v: (v.f0,))
    return msgspec.json.Decoder(reading).decode, get
