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
