"""Calibration settings: the threshold method a pipeline's ``[calibrate]`` section (or
``anomae train``/``anomae calibrate`` options) chooses, the parameters it sets, and the
held-out rows it calibrates on. Torch-free; :mod:`anomae.calibrate` holds the methods and
:mod:`anomae.calibrate_model` carries the settings out.

    >>> CalibrateSection(method="quantile", q=0.99).params()
    {'q': 0.99}
    >>> CalibrateSection(method="quantile", k=3.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: k is not a parameter of method 'quantile': it belongs to ksigma or mad; ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_METHOD_PARAMS = {
    "events": ("false_events_per_day", "interval_s", "init_quantile", "min_windows"),
    "quantile": ("q",),
    "ksigma": ("k",),
    "mad": ("k",),
    "pot": ("q", "init_quantile"),
    "fpr": ("rate", "alarms_per_day", "interval_s"),
    "f1": (),
}


@dataclass(frozen=True)
class CalibrateSection:
    """How the threshold is set. Parameters left unset take the method's defaults (see
    :mod:`anomae.calibrate`): events (the default) false_events_per_day=1/7 (one per
    series per week) with the [score] post-rule, or the one of the ``min_windows``
    candidates that allows the lowest threshold; quantile q=0.995; ksigma/mad k=3; pot
    q=1e-3, init_quantile=0.98; fpr rate, or alarms_per_day. ``interval_s`` (events, fpr)
    is inferred from the data's timestamps when unset. A parameter the method does not
    take is an error. ``per_series`` also calibrates a threshold per series on its own
    held-out data, the fleet threshold kept for the rest (:mod:`anomae.calibrate_series`)."""

    method: str = "events"
    holdout: float = 0.2
    holdout_from: str = "spread"  # spread: blocks over each series' span; tail: its last rows
    per_feature: bool = False
    per_series: bool = False
    q: float | None = None
    k: float | None = None
    rate: float | None = None
    alarms_per_day: float | None = None
    interval_s: float | None = None
    init_quantile: float | None = None
    false_events_per_day: float | None = None
    min_windows: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        from anomae.calibrate import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {sorted(METHODS)}")
        given = [n for n in _params_of(self) if n not in _METHOD_PARAMS[self.method]]
        if given:
            takers = sorted(m for m, ps in _METHOD_PARAMS.items() if given[0] in ps)
            raise ValueError(
                f"{given[0]} is not a parameter of method {self.method!r}"
                + (" (the default)" if self.method == "events" else "")
                + f": it belongs to {' or '.join(takers)}; set method accordingly or drop it"
            )
        fe = self.false_events_per_day
        if fe is not None and not fe > 0:
            raise ValueError(f"false_events_per_day must be > 0, got {fe}")
        if any(int(m) < 1 for m in self.min_windows):
            raise ValueError(f"min_windows candidates must be >= 1, got {list(self.min_windows)}")
        if self.q is not None and not 0.0 < self.q < 1.0:
            raise ValueError(f"q must be in (0, 1), got {self.q}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.holdout_from not in ("spread", "tail"):
            raise ValueError(f"holdout_from must be 'spread' or 'tail', got {self.holdout_from!r}")

    @property
    def holdout_spread(self) -> bool:
        return self.holdout_from == "spread"

    def params(self) -> dict[str, Any]:
        return _params_of(self)


def method_params(method: str) -> tuple[str, ...]:
    """The keys of ``[calibrate]`` that only ``method`` takes (its parameters)."""
    return _METHOD_PARAMS.get(method, ())


def _params_of(section: CalibrateSection) -> dict[str, Any]:
    """The method parameters ``section`` sets (unset: None, or no min_windows candidates)."""
    names = (
        "q",
        "k",
        "rate",
        "alarms_per_day",
        "interval_s",
        "init_quantile",
        "false_events_per_day",
    )
    out: dict[str, Any] = {n: getattr(section, n) for n in names if getattr(section, n) is not None}
    if section.min_windows:
        out["min_windows"] = [int(m) for m in section.min_windows]
    return out
