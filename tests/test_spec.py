from __future__ import annotations

import json

import pytest

from anomae.spec import ModelCard, ModelCardError, Scaler, Threshold, WindowSpec


def _card(**kw: object) -> ModelCard:
    base = dict(
        features=("temp", "rpm", "flow"),
        window=WindowSpec(16, 2),
        scaler=Scaler(center=(1.0, 2.0, 3.0), scale=(0.5, 1.0, 2.0)),
        threshold=Threshold(0.25, "quantile", {"q": 0.99}, 1234, 0.01),
        architecture={"kind": "dense", "hidden": [64, 8]},
        training={"epochs_run": 3, "noise": {"kind": "masking", "p": 0.1}},
        data_fingerprint="sha256:abc",
        versions={"anomae": "0.1.0"},
        created_at="2026-11-27T00:00:00+00:00",
        parity={"max_rel_diff": 1e-7},
    )
    base.update(kw)
    return ModelCard(**base)  # type: ignore[arg-type]


def test_round_trip_is_exact() -> None:
    card = _card()
    assert ModelCard.from_json(card.to_json()) == card
    assert ModelCard.from_json(_card(threshold=None).to_json()).threshold is None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
        (lambda d: d.pop("features"), "malformed"),
        (lambda d: d["window"].update(length=0), "window length"),
        (lambda d: d["scaler"].update(scale=[1.0, 0.0, 1.0]), "scale must be finite"),
        (lambda d: d["threshold"].update(value=-1), "threshold must be finite and > 0"),
        (lambda d: d.update(features=["a", "a", "b"]), "duplicate feature"),
        (lambda d: d["scaler"].update(center=[1.0]), "differ in length"),
    ],
)
def test_bad_cards_are_rejected(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    d = json.loads(_card().to_json())
    mutate(d)
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_json(json.dumps(d))


def test_not_json() -> None:
    with pytest.raises(ModelCardError, match="not valid JSON"):
        ModelCard.from_json("{nope")


def test_threshold_interval_and_per_feature_round_trip() -> None:
    th = Threshold(
        0.25,
        "pot",
        {"q": 1e-3, "init_quantile": 0.98, "gamma": 0.1, "sigma": 0.3, "n_peaks": 40},
        2000,
        1e-3,
        expected_far_ci=(0.00061, 0.0014),
        per_feature={"temp": 0.5, "rpm": 1.0 / 3.0, "flow": 2e-9},
    )
    card = _card(threshold=th)
    d = json.loads(card.to_json())
    assert d["threshold"]["expected_far_ci"] == [0.00061, 0.0014]  # a JSON list ...
    back = ModelCard.from_json(card.to_json())
    assert back == card
    assert back.threshold is not None and back.threshold.expected_far_ci == (0.00061, 0.0014)
    assert isinstance(back.threshold.expected_far_ci, tuple)  # ... back to the tuple


def test_old_card_without_the_new_threshold_keys_loads() -> None:
    d = json.loads(_card().to_json())
    keys = ("expected_far_ci", "per_feature", "false_events_per_day", "post_rule")
    for key in (*keys, "expected_false_events_per_day", "expected_false_events_per_day_ci"):
        d["threshold"].pop(key)
    d.pop("alarm")
    card = ModelCard.from_json(json.dumps(d))
    th = card.threshold
    assert th == Threshold(0.25, "quantile", {"q": 0.99}, 1234, 0.01)
    assert th.expected_far_ci is None and th.per_feature == {}
    assert th.expected_false_events_per_day is None and th.post_rule == {}
    assert card.alarm == {}


def test_events_threshold_and_alarm_policy_round_trip() -> None:
    rule = {"min_windows": 2, "max_gap": 16, "off": 1.0, "cooldown": 0}
    th = Threshold(
        0.3,
        "events",
        {"fit": "gpd", "series_days": 3.9},
        5636,
        0.0004,
        false_events_per_day=1 / 7,
        post_rule=rule,
        expected_false_events_per_day=1 / 7,
        expected_false_events_per_day_ci=(0.05, 0.4),
    )
    card = _card(threshold=th, alarm={"post_rule": rule, "likelihood": {"short": 5}})
    back = ModelCard.from_json(card.to_json())
    assert back == card
    assert back.threshold is not None
    assert back.threshold.expected_false_events_per_day_ci == (0.05, 0.4)
    assert back.alarm["post_rule"] == rule


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ({"expected_far_ci": [0.1]}, "malformed"),
        ({"expected_far_ci": [0.1, 0.2, 0.3]}, "malformed"),
        ({"expected_far_ci": [0.2, 0.1]}, r"0 <= lo <= hi <= 1"),
        ({"expected_far_ci": [0.1, 1.5]}, r"0 <= lo <= hi <= 1"),
        ({"per_feature": {"temp": 0.0}}, "per-feature threshold of 'temp' must be finite and > 0"),
        ({"per_feature": {"temp": "x"}}, "malformed"),
        ({"expected_false_events_per_day_ci": [0.3, 0.1]}, r"per_day_ci must be 0 <= lo"),
        ({"false_events_per_day": 0}, "false_events_per_day must be > 0"),
    ],
)
def test_bad_threshold_fields_are_rejected(threshold: dict, message: str) -> None:
    d = json.loads(_card().to_json())
    d["threshold"].update(threshold)
    with pytest.raises(ModelCardError, match=message):
        ModelCard.from_json(json.dumps(d))


def test_gap_rule_round_trips_and_old_cards_load_without_one() -> None:
    card = _card(interval_s=60.0, max_gap_s=600.0)
    assert ModelCard.from_json(card.to_json()) == card
    d = json.loads(card.to_json())
    d.pop("interval_s"), d.pop("max_gap_s")
    old = ModelCard.from_json(json.dumps(d))
    assert old.interval_s == old.max_gap_s == 0.0  # no gap rule, as before it existed
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="max_gap_s must be finite and >= 0"):
            _card(max_gap_s=bad)
    d["max_gap_s"] = -5
    with pytest.raises(ModelCardError, match="max_gap_s must be finite"):
        ModelCard.from_json(json.dumps(d))


def test_columns_round_trip_and_older_cards_default() -> None:
    cols = {"timestamp": "time", "series": "machine_id", "label": None, "timestamp_unit": "ms"}
    card = _card(columns=cols)
    back = ModelCard.from_json(card.to_json())
    assert back.columns == cols
    d = json.loads(card.to_json())
    d.pop("columns")  # a card written before the key existed
    assert ModelCard.from_dict(d).columns == {
        "timestamp": "timestamp",
        "series": "series",
        "label": "label",
        "timestamp_unit": None,
    }
