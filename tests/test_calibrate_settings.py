"""Calibration settings: a method takes only its own parameters; values are checked."""

from __future__ import annotations

import re

import pytest

from anomae.calibrate import METHODS
from anomae.calibrate_settings import _METHOD_PARAMS, CalibrateSection


def test_every_method_has_its_parameters_listed() -> None:
    assert set(_METHOD_PARAMS) == set(METHODS)


@pytest.mark.parametrize(
    ("kwargs", "params"),
    [
        ({}, {}),
        ({"false_events_per_day": 0.5, "min_windows": (1, 3)},
         {"false_events_per_day": 0.5, "min_windows": [1, 3]}),
        ({"method": "quantile", "q": 0.99}, {"q": 0.99}),
        ({"method": "pot", "q": 1e-3, "init_quantile": 0.98}, {"q": 1e-3, "init_quantile": 0.98}),
        ({"method": "fpr", "alarms_per_day": 2.0}, {"alarms_per_day": 2.0}),
    ],
)  # fmt: skip
def test_params_are_the_ones_set(kwargs: dict, params: dict) -> None:
    assert CalibrateSection(**kwargs).params() == params


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "median"}, "unknown method 'median'; choose from"),
        ({"q": 0.99}, "q is not a parameter of method 'events' (the default): it belongs to "
                      "pot or quantile; set method accordingly or drop it"),
        ({"method": "ksigma", "q": 0.9}, "q is not a parameter of method 'ksigma': it belongs"),
        ({"method": "quantile", "q": 1.0}, "q must be in (0, 1), got 1.0"),
        ({"false_events_per_day": 0.0}, "false_events_per_day must be > 0"),
        ({"min_windows": (0, 2)}, "min_windows candidates must be >= 1, got [0, 2]"),
        ({"holdout": 1.0}, "holdout must be in [0, 1), got 1.0"),
        ({"holdout_from": "middle"}, "holdout_from must be 'spread' or 'tail'"),
    ],
)  # fmt: skip
def test_mistakes_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CalibrateSection(**kwargs)


def test_holdout_from() -> None:
    assert CalibrateSection().holdout_spread
    assert not CalibrateSection(holdout_from="tail").holdout_spread
