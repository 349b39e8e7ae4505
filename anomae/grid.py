"""The tuning grid: what ``anomae tune`` and ``[tune]`` try (see :mod:`anomae.tune`).

:class:`TuneSection` is the ``[tune]`` table (the grid's axes and how candidates are
compared); :func:`candidates` lists every combination; :func:`candidate_pipeline` turns one
into the pipeline that trains it; :func:`parse_grid` reads ``--grid`` options.

    >>> section = TuneSection(window=(8,), noise=(0.2,), center=(True,))
    >>> for c in candidates(section, n_features=6):
    ...     print(c.label)
    window 8   hidden [3]       noise 0.2  center on
    window 8   hidden [64, 16]  noise 0.2  center on
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

AXES = ("window", "hidden", "noise", "center")
DENSE_DEFAULT = (64, 16)


@dataclass(frozen=True)
class TuneSection:
    """The grid (every combination is a candidate) and how candidates are compared.

    ``hidden`` lists code sizes / layer widths (``[[4], [64, 16]]``); left empty it is a
    linear code of half the features (at least 2) and a dense ``[64, 16]``. ``noise`` is
    the Gaussian sigma in scaled units, 0 for none. ``epochs`` trains each candidate; the
    winner then trains with ``[train] epochs``. While tuning, training windows start every
    ``train_stride`` rows (the winner: ``[window] train_stride``). ``copies`` injected
    copies per held-out block and anomaly kind, magnitudes in ``unit``s of each feature's
    spread ("global": over the training rows; "local": around the anomaly, see
    :mod:`anomae.inject`); ``vus_window`` the VUS buffer (0: the largest window).
    ``period``: when the training rows have a clear period (:mod:`anomae.period`) not in
    ``window``, it is one more window length (if the held-out blocks can hold it)."""

    window: tuple[int, ...] = (8, 32)
    hidden: tuple[tuple[int, ...], ...] = ()
    noise: tuple[float, ...] = (0.0, 0.2)
    center: tuple[bool, ...] = (False, True)
    epochs: int = 8
    train_stride: int = 4
    copies: int = 1
    unit: str = "global"
    seed: int = 0
    vus_window: int = 0
    period: bool = True  # also try the training rows' clear period as a window

    def __post_init__(self) -> None:
        hidden = tuple(
            tuple(int(w) for w in ([h] if isinstance(h, int) else h)) for h in self.hidden
        )
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "noise", tuple(float(s) for s in self.noise))
        object.__setattr__(self, "window", tuple(int(w) for w in self.window))
        if not self.window or min(self.window) < 2:
            raise ValueError(f"window lengths must be >= 2, got {list(self.window)}")
        if any(not h or min(h) < 1 for h in hidden):
            raise ValueError(f"hidden entries must be lists of positive widths, got {hidden}")
        if not self.noise or min(self.noise) < 0:
            raise ValueError(f"noise sigmas must be >= 0 (0 = none), got {list(self.noise)}")
        if not self.center or any(not isinstance(c, bool) for c in self.center):
            raise ValueError(f"center must list true and/or false, got {list(self.center)}")
        if self.unit not in ("global", "local"):
            raise ValueError(f"unit must be 'global' or 'local', got {self.unit!r}")
        if min(self.epochs, self.copies, self.train_stride) < 1 or self.vus_window < 0:
            raise ValueError("epochs, train_stride and copies must be >= 1, vus_window >= 0")

    def grid(self, n_features: int) -> dict[str, list[Any]]:
        hidden = self.hidden or ((max(2, n_features // 2),), DENSE_DEFAULT)
        return {
            "window": list(self.window),
            "hidden": [list(h) for h in hidden],
            "noise": list(self.noise),
            "center": list(self.center),
        }


@dataclass(frozen=True)
class Candidate:
    window: int
    hidden: tuple[int, ...]
    noise: float
    center: bool

    @property
    def label(self) -> str:
        return (
            f"window {self.window:<3} hidden {list(self.hidden)!s:<9} noise {self.noise:<4g} "
            f"center {'on' if self.center else 'off'}"
        )


def parse_grid(items: list[str] | tuple[str, ...]) -> dict[str, list[Any]]:
    """``--grid`` options as ``[tune]`` keys: ``window=8,32``, ``hidden=4;64,16`` (``;``
    between candidates, ``,`` between layers), ``noise=0,0.2``, ``center=off,on``.

        >>> parse_grid(["window=16,32", "hidden=8;64,16", "center=on"])
        {'window': [16, 32], 'hidden': [[8], [64, 16]], 'center': [True]}
    """
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in AXES:
            raise ValueError(f"--grid {item!r}: expected AXIS=VALUES with AXIS one of {AXES}")
        try:
            if key == "hidden":
                out[key] = [[int(w) for w in c.split(",")] for c in text.split(";")]
            elif key == "center":
                flags = {"on": True, "true": True, "off": False, "false": False}
                out[key] = [flags[v.strip().lower()] for v in text.split(",")]
            elif key == "noise":
                out[key] = [0.0 if v.strip() == "none" else float(v) for v in text.split(",")]
            else:
                out[key] = [int(v) for v in text.split(",")]
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"--grid {item!r}: cannot read {text!r} ({exc}); e.g. window=8,32 "
                f"hidden=4;64,16 noise=0,0.2 center=off,on"
            ) from exc
    return out


def candidates(section: TuneSection, n_features: int) -> list[Candidate]:
    g = section.grid(n_features)
    return [
        Candidate(w, tuple(h), s, c)
        for w in g["window"]
        for h in g["hidden"]
        for s in g["noise"]
        for c in g["center"]
    ]


def candidate_pipeline(pipe: Any, cand: Candidate, tuning: TuneSection | None = None) -> Any:
    """``pipe`` with ``cand``'s window, code, noise and centring; with ``tuning``, also its
    epochs and train_stride, quiet, scoring every row (window ends align with rows)."""
    window = replace(pipe.window, length=cand.window, center=cand.center, center_features=(),
                     period=False)  # fmt: skip
    noise = {"kind": "gaussian", "sigma": cand.noise} if cand.noise > 0 else {"kind": "none"}
    train = dict(pipe.train)
    if tuning is not None:
        window = replace(window, stride=1, train_stride=tuning.train_stride)
        train.update(epochs=tuning.epochs, progress=False)
    model = {**pipe.model, "hidden": list(cand.hidden), "code": "fixed"}  # the grid's code
    return replace(pipe, window=window, model=model, noise=noise, train=train)
