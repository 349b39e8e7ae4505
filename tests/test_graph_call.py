"""The scoring graph's branch for a call of one window (anomae.graph_call): picked on the
input's shape alone, and scoring as the other paths and the numpy reference do."""

from __future__ import annotations

import numpy as np
import pytest
from test_graph import FEATURES, SCALER, reference, run, session

from anomae.graph import Layer, build_graph, center_mask
from anomae.spec import Scaler, WindowSpec

SHAPE_OPS = {"Shape", "Sub", "Abs", "Mul", "ReduceMax", "Equal", "LessOrEqual", "If"}


@pytest.mark.parametrize(
    "window, extra, scaler, center, layout",
    [
        (WindowSpec(4, 1), 0, SCALER, False, "flat"),
        (WindowSpec(4, 3), 2, SCALER, False, "flat"),  # rows past the window: sliced off
        (WindowSpec(4, 1), 0, Scaler(SCALER.center, SCALER.scale, (2.0, 0.0, 0.5)), False, "flat"),
        (WindowSpec(4, 2), 1, SCALER, ["a"], "flat"),
        (WindowSpec(5, 1), 0, SCALER, True, "channels"),
    ],
)
def test_a_one_window_call_is_told_by_its_shape_and_scores_as_any_call(
    window: WindowSpec, extra: int, scaler: Scaler, center: object, layout: str
) -> None:
    """A call of one window (batch 1) runs nothing but a test of the input's shape before
    its own branch; its outputs are the other paths' for the same window (that window as a
    row of a batch), with and without NaN, left-out features, centring, either layout."""
    rng = np.random.default_rng(window.length + extra)
    size = window.length * len(FEATURES)
    w = rng.normal(0, 0.3, (size, size)).astype(np.float32)
    if layout == "channels":
        w = rng.normal(0, 0.3, (window.length, window.length)).astype(np.float32)
    layers = [Layer("MatMul", [w]), Layer("Relu"), Layer("Add", [np.float32(0.1)])]
    model = build_graph(layers, layout, FEATURES, window, scaler, center=center)  # type: ignore[arg-type]
    assert {n.op_type for n in model.graph.node} <= SHAPE_OPS
    sess = session(model)
    rows = rng.normal(0, 3, (2, window.length + extra, 3))
    rows[1, :] = rng.normal(0, 3, (window.length + extra, 3))
    for nan in (False, True):
        if nan:
            rows[0, 1, 2] = rows[0, 0, 0] = np.nan
        alone = run(sess, rows[:1])
        batch = run(sess, rows)
        for a, b in zip(alone, batch, strict=True):
            assert a.shape[:2] == (1, 1)
            np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-7)
    # a zero network: the numpy reference
    zero = [Layer("MatMul", [np.zeros((size, size), np.float32)])]
    if layout == "flat":
        sess = session(build_graph(zero, layout, FEATURES, window, scaler, center=center))  # type: ignore[arg-type]
        mask = center_mask(FEATURES, center)  # type: ignore[arg-type]
        want = reference(rows[:1], window, scaler, mask=mask)
        for got, ref in zip(run(sess, rows[:1]), want, strict=True):
            np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
