"""The model's self-check (anomae.reference) on a real ONNX graph: the card digest, the
reference rows kept at export, and check_graph refusing a card that does not match its
graph (window, features, digest, scores) with a message saying which."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anomae.detector import Detector
from anomae.graph import Layer, build_graph
from anomae.modelfile import write_model
from anomae.reference import (
    MAX_WINDOW_ROWS,
    ReferenceMismatch,
    card_digest,
    check_graph,
    reference_record,
    reference_rows,
)
from anomae.spec import ModelCard, Scaler, WindowSpec

FEATURES = ("a", "b")


@pytest.fixture(scope="module")
def det(tmp_path_factory: pytest.TempPathFactory) -> Detector:
    """A zero network: a window's score is the mean square of its scaled rows."""
    window = WindowSpec(4, 2)
    card = ModelCard(FEATURES, window, Scaler((1.0, 0.0), (1.0, 2.0)))
    model = build_graph([Layer("MatMul", [np.zeros((8, 8), np.float32)])], "flat",
                        FEATURES, window, card.scaler)  # fmt: skip
    path = tmp_path_factory.mktemp("ref") / "m.onnx"
    write_model(model, card, path)
    return Detector.load(path, threads=1)


def test_the_digest_follows_what_the_graph_bakes_in(det: Detector) -> None:
    card = det.card
    digest = card_digest(card)
    assert digest == card_digest(replace(card, lineage={"note": "x"}))  # not baked in
    for other in (
        replace(card, features=("b", "a")),
        replace(card, window=WindowSpec(4, 1)),
        replace(card, scaler=Scaler((1.0, 0.0), (1.0, 3.0))),
        replace(card, architecture={"center": True}),
    ):
        assert card_digest(other) != digest


def test_reference_rows_are_a_few_fully_observed_windows(det: Detector) -> None:
    rows = np.arange(40, dtype=np.float32).reshape(20, 2)
    rows[1, 0] = rows[2, 1] = np.nan
    ref = reference_rows(rows, det.card)
    assert ref.shape == (4 + 3 * 2, 2)  # four windows of 4 rows, stride 2
    assert ref[1, 0] == 1.0 and ref[2, 1] == 0.0  # the scaler's centre
    assert np.isnan(rows[1, 0])  # the caller's rows untouched
    assert reference_rows(rows[:5], det.card).shape == (5, 2)


def test_a_recorded_card_checks_and_every_mismatch_is_named(det: Detector) -> None:
    rng = np.random.default_rng(0)
    record = reference_record(det.run, rng.normal(0, 1, (50, 2)), det.card)
    assert len(record["score"]) == 4 and record["card_sha256"] == card_digest(det.card)
    card = replace(det.card, parity={"reference": record})
    check_graph(det.run, card)  # intact
    check_graph(det.run, det.card)  # no record: the probes only

    altered = {**record, "score": [s * 1.01 for s in record["score"]]}
    with pytest.raises(ReferenceMismatch, match="altered or damaged"):
        check_graph(det.run, replace(card, parity={"reference": altered}))
    with pytest.raises(ReferenceMismatch, match="reordered or renamed features"):
        check_graph(det.run, replace(card, features=("b", "a")))
    with pytest.raises(ReferenceMismatch, match="window 4 rows, stride 1, but the graph"):
        check_graph(det.run, replace(card, window=WindowSpec(4, 1)))
    with pytest.raises(ReferenceMismatch, match="does not take the card's 3 features"):
        check_graph(det.run, replace(card, features=("a", "b", "c"),
                                     scaler=Scaler((0.0,) * 3, (1.0,) * 3)))  # fmt: skip
    with pytest.raises(ReferenceMismatch, match="over the 100,000 anomae supports"):
        check_graph(det.run, replace(card, window=WindowSpec(MAX_WINDOW_ROWS + 1, 1)))


def test_non_finite_scores_are_refused(det: Detector) -> None:
    def nan_run(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        score, fe, cov = det.run(rows)
        return score * np.nan, fe, cov

    with pytest.raises(ReferenceMismatch, match="not finite: its weights are damaged"):
        check_graph(nan_run, det.card)
    with pytest.raises(ReferenceMismatch, match="scores its reference windows"):
        reference_record(nan_run, np.zeros((10, 2)), det.card)

