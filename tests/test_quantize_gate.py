"""The int8 gate's parts (anomae.quantize_gate) on score arrays, no model: Spearman's
rank correlation, the figures of (a) false alarms, (b) false events per day and (c)
ranking, the settings' validation, and the refusal text. The gate applied to real
quantised models is tested in test_quantize.py."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.quantize_gate import (
    GateRefused,
    GateSettings,
    gate_figures,
    gate_text,
    refuse_unless_passed,
    spearman,
    speed_text,
)
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec

QUANTILE = Threshold(3.0, "quantile")


def _card(threshold: Threshold | None = QUANTILE) -> ModelCard:
    return ModelCard(("a",), WindowSpec(4), Scaler((0.0,), (1.0,)), threshold=threshold)


def _scores(n: int = 5000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).exponential(1.0, n)


def test_spearman_ranks_not_values() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a**3) == 1.0  # monotone: the same ranks
    assert spearman(a, -a) == -1.0
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0])) == 0.5
    assert np.isnan(spearman(np.array([1.0]), np.array([2.0])))


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"min_spearman": 0.0}, r"min_spearman must be in \(0, 1\], got 0.0"),
     ({"min_spearman": 1.5}, r"min_spearman must be in \(0, 1\]"),
     ({"block": 0}, "bootstrap block must be >= 1 windows, got 0")],
)  # fmt: skip
def test_settings_out_of_range_are_refused(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GateSettings(**kw)


def test_close_scores_pass_and_shifted_ones_fail_each_check() -> None:
    s = _scores()
    ok = gate_figures([s], [s * 1.001], None, _card(), None)
    assert ok["passed"] and ok["far_ok"] and ok["spearman_ok"] and ok["n_windows"] == 5000
    assert ok["max_rel_error"] == pytest.approx(0.001, rel=1e-3)
    high = gate_figures([s], [s * 1.5], None, _card(), None)  # same ranks, more alarms
    assert high["spearman_ok"] and not high["far_ok"] and not high["passed"]
    noisy = s + np.random.default_rng(1).normal(0, 0.2, s.size)
    shuffled = gate_figures([s], [noisy], None, _card(), None, GateSettings(min_spearman=0.999))
    assert not shuffled["spearman_ok"] and not shuffled["passed"]


def test_a_window_scored_by_one_model_only_fails_the_gate() -> None:
    s = _scores()
    t = s.copy()
    t[10] = np.nan
    f = gate_figures([s], [t], None, _card(), None)
    assert f["unscored_differ"] == 1 and f["n_windows"] == 4999 and not f["passed"]


def test_false_events_per_day_where_the_card_has_a_budget() -> None:
    th = Threshold(3.0, "events", expected_false_events_per_day=0.5)
    s = _scores(20_000)
    f = gate_figures([s], [s * 1.001], None, _card(th), 60.0)
    assert f["events_ok"] and f["passed"]
    assert f["series_days"] == pytest.approx(20_000 * 60 / 86400)
    assert "false events per day int8" in gate_text(f)
    blind = gate_figures([s], [s], None, _card(th), None)  # no interval anywhere
    assert blind["events_why"] == "no sampling interval to count events per day"
    assert not blind["passed"] and "not checked: no sampling interval" in gate_text(blind)


def test_per_series_thresholds_apply_by_name() -> None:
    s = _scores()
    th = Threshold(3.0, "quantile", per_series={"hot": 100.0})
    f = gate_figures([s, s], [s * 1.5, s * 1.5], ["hot", "cold"], _card(th), None)
    g = gate_figures([s], [s * 1.5], ["hot"], _card(th), None)
    assert g["far_fp32"] == 0.0 and g["far_int8"] == 0.0 and g["far_ok"]
    assert f["far_fp32"] == pytest.approx(np.mean(s > 3.0) / 2)


def test_no_threshold_no_gate() -> None:
    with pytest.raises(ValueError, match="the card has none"):
        gate_figures([_scores()], [_scores()], None, _card(None), None)


def test_the_refusal_says_what_failed_and_what_to_do() -> None:
    s = _scores()
    f = gate_figures([s], [s * 1.5], None, _card(), None)
    text = gate_text(f)
    assert "OUTSIDE" in text and "Spearman 1.00000 (>= 0.999 ok)" in text
    assert "5,000 windows of 1 series" in text
    with pytest.raises(GateRefused, match="Keep the float32 model") as err:
        refuse_unless_passed(f)
    assert err.value.figures is f
    refuse_unless_passed(gate_figures([s], [s], None, _card(), None))  # passed: no error


@pytest.mark.parametrize("speedup, worth", [(1.31, True), (0.96, False)])
def test_speed_text_says_when_int8_gives_no_speed(speedup: float, worth: bool) -> None:
    speed = {"speedup": speedup, "int8_us": 100.0, "fp32_us": 100.0 * speedup,
             "windows_per_call": 2048, "worth": worth}  # fmt: skip
    text = speed_text(speed)
    assert text.startswith(f"int8 {speedup:.2f}x float32's speed") and "2,048 windows" in text
    assert ("no speed-up for this model" in text) == (not worth)
