"""The windowing paths of the scoring graph (anomae.graph_windows): each has a copy without
the missing-value mask that scores bit for bit as the masked one, checked against numpy.
The one-window, few-window and many-window paths themselves are checked in test_graph.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from test_graph import FEATURES, SCALER, run, session

from anomae.graph import SMALL_CALLS, SMALL_WINDOWS, Layer, build_graph
from anomae.graph_windows import WINDOW_SUM_MACS, Builder, sums_by_product, window_sums
from anomae.int8_graph import walk_nodes
from anomae.spec import WindowSpec


def _reads(g: onnx.GraphProto, name: str) -> bool:
    return any(name in node.input for node in walk_nodes(g))


@pytest.mark.parametrize(
    "batch, n_rows", [(1, 5), (2, 5), (1, 7), (2, 11), (1, 5 + 2 * SMALL_WINDOWS)]
)
def test_every_path_skips_the_mask_without_nan_and_scores_the_same(batch: int, n_rows: int) -> None:
    """Each windowing path (one window per batch row, few windows, many) has a copy without
    the missing-value mask, taken when no cell is NaN, and it scores bit for bit as its
    masked copy does (taken when the last row, in no window, is NaN). A one-window call
    (batch 1) has a branch of its own, masked, picked on the input's shape (test_graph)."""
    window, lf = WindowSpec(4, 2), 12
    rng = np.random.default_rng(n_rows)
    layers = [Layer("MatMul", [rng.normal(0, 0.3, (lf, 5)).astype(np.float32)]), Layer("Relu"),
              Layer("MatMul", [rng.normal(0, 0.3, (5, lf)).astype(np.float32)])]  # fmt: skip
    model = build_graph(layers, "flat", FEATURES, window, SCALER)
    branches = [
        {a.name: a.g for a in n.attribute} for n in walk_nodes(model.graph) if n.op_type == "If"
    ]
    branches = [b for b in branches if not b["then_branch"].name.startswith(SMALL_CALLS)]
    unmasked = [b for b in branches if not _reads(b["then_branch"], "observed")]
    assert len(unmasked) == 3 and all(_reads(b["else_branch"], "observed") for b in unmasked)
    sess = session(model)
    rows = rng.normal(0, 3, (batch, n_rows, 3))
    gap = rows.copy()
    gap[0, -1, 2] = np.nan
    for a, m in zip(run(sess, rows), run(sess, gap), strict=True):
        np.testing.assert_array_equal(a, m)
    alone = run(sess, rows)
    x = (rows - np.array(SCALER.center)) / np.array(SCALER.scale)
    for w in range(window.count(n_rows)):
        win = x[:, w * 2 : w * 2 + 4].reshape(batch, lf)
        recon = np.maximum(win @ layers[0].weights[0], 0) @ layers[2].weights[0]
        np.testing.assert_allclose(alone[0][:, w], ((recon - win) ** 2).mean(1), rtol=1e-4)


@pytest.mark.parametrize("length, n_f", [(8, 8), (16, 1), (64, 8), (32, 25)])
def test_window_sums_add_each_features_cells_either_way(length: int, n_f: int) -> None:
    """Per-feature sums of windows, by a product with a 0/1 matrix where that is cheap
    (few multiply-adds per window) and by ReduceSum otherwise, both equal to numpy's."""
    b = Builder()
    out = window_sums(b, "cells", length, n_f)
    product = any(n.op_type == "MatMul" for n in b.nodes)
    cheap = length * n_f <= 256 and length * n_f * n_f <= WINDOW_SUM_MACS
    assert product == sums_by_product(length, n_f) == cheap
    graph = onnx.helper.make_graph(
        b.nodes,
        "sums",
        [onnx.helper.make_tensor_value_info("cells", onnx.TensorProto.FLOAT, [2, 5, length * n_f])],
        [onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, [2, 5, n_f])],
        b.inits,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 9
    cells = np.random.default_rng(length).random((2, 5, length * n_f)).astype(np.float32)
    cells[1, 2, -1] = np.inf  # an overflowed error: only its feature's sum is that large
    got = session(model).run(None, {"cells": cells})[0]
    want = cells.astype(np.float64).reshape(2, 5, length, n_f).sum(axis=2)
    assert got[1, 2, -1] >= np.finfo(np.float32).max  # inf, or the largest float by product
    got[1, 2, -1] = want[1, 2, -1] = 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5)
