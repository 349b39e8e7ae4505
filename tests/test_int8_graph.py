"""The int8 rewrite of a scoring graph: only the network's matrix products change, and the
layers kept float32 stay exactly as they were. The model is test_quantize.py's PCA
autoencoder (numpy weights, no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_quantize import _build, _series

from anomae.graph import SMALL_CALLS
from anomae.graph_windows import copied_from, is_window_sum
from anomae.int8_graph import (
    QuantizeError,
    _graphs,
    check_untouched,
    layer_weights,
    quantize_graph,
    walk_nodes,
)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("g") / "model.onnx")


def _score(model: onnx.ModelProto, rows: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["score"], {"rows": rows[None]})[0][0]


def test_only_matrix_products_are_quantised(good: Path) -> None:
    fp32 = onnx.load(str(good))
    int8, n = quantize_graph(fp32)
    # 2 Gemm in each of 7 copies of the network, less the one for one-window calls
    assert n == check_untouched(fp32, int8) == 12
    # a changed float node (here the score's division turned into a Mul) is caught
    top = next(n for n in int8.graph.node if n.op_type == "If")
    every_call = next(a.g for a in top.attribute if a.name == "else_branch")
    score = every_call.output[0].name
    for node in every_call.node:
        if node.output[0] == score:
            node.op_type = "Mul"
    with pytest.raises(QuantizeError, match=f"Div node that computes \\['{score}'\\]"):
        check_untouched(fp32, int8)


def _shared(node: onnx.NodeProto) -> onnx.NodeProto:
    """``node`` reading the main graph's weights where it reads a branch's copy of them:
    an int8 file keeps one float32 copy of the network."""
    out = onnx.NodeProto()
    out.CopyFrom(node)
    del out.input[:]
    out.input.extend(copied_from(i) for i in node.input)
    return out


def test_kept_layer_stays_float32_in_every_branch(good: Path) -> None:
    fp32 = onnx.load(str(good))
    enc, dec = layer_weights(fp32)
    int8, n = quantize_graph(fp32, keep=frozenset([dec]))
    assert n == check_untouched(fp32, int8, frozenset([dec])) == 6
    before = [
        _shared(n)
        for n in walk_nodes(fp32.graph)
        if n.op_type == "Gemm"
        and (copied_from(n.input[1]) == dec or n.output[0] in _one_window(fp32))
    ]
    after = [n for n in walk_nodes(int8.graph) if n.op_type == "Gemm"]
    assert len(after) == 8 and after == before  # the same nodes: op, inputs, attributes
    # one float32 copy of the network: the few-window branches' copies are dropped
    inits = [t.name for g in _graphs(int8.graph) for t in g.initializer]
    assert all(copied_from(name) == name for name in inits)
    assert all(n.domain == "" for n in walk_nodes(int8.graph))
    assert not any(o.domain.startswith("anomae") for o in int8.opset_import)
    # a kept product is no int8 product: the check without `keep` refuses the graph
    with pytest.raises(QuantizeError, match="left or added \\['Gemm'\\] nodes"):
        check_untouched(fp32, int8)
    # both layers kept: nothing to quantise
    with pytest.raises(QuantizeError, match="no matrix product"):
        quantize_graph(fp32, keep=frozenset([enc, dec]))
    rows = _series(4)
    s32, s8 = _score(fp32, rows), _score(int8, rows)
    assert np.median(np.abs(s8 - s32) / s32) < 0.01


def _one_window(model: onnx.ModelProto) -> set[str]:
    """Outputs of the products in the graph's branch for one-window calls."""
    found: set[str] = set()
    for node in walk_nodes(model.graph):
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH and a.g.name.startswith(SMALL_CALLS):
                found |= {n.output[0] for n in walk_nodes(a.g) if n.op_type == "Gemm"}
    return found


def test_one_window_calls_stay_float32_unless_asked(good: Path) -> None:
    """A one-window call runs the float32 products (exactly float32's outputs); two windows
    and more run int8. With ``small_calls=False`` every product is int8."""
    fp32 = onnx.load(str(good))
    assert len(_one_window(fp32)) == 2  # its own copy of the network: 2 Gemm
    int8, n = quantize_graph(fp32)
    all8, n_all = quantize_graph(fp32, small_calls=False)
    assert (n, n_all) == (12, 14) and check_untouched(fp32, all8, small_calls=False) == 14
    # its float32 weight matrices, which no int8 branch reads, are its own (faster to run)
    calls = next(a.g for node in int8.graph.node for a in node.attribute if a.name == "then_branch")
    assert calls.name.startswith(SMALL_CALLS)
    own = {t.name for t in calls.initializer}
    assert all(node.input[1] in own for node in calls.node if node.op_type == "Gemm")
    assert not own & {t.name for t in int8.graph.initializer}
    rows = _series(4)
    for window in (rows[:8], np.where(np.arange(8)[:, None] == 3, np.nan, rows[:8])):
        want = _run(fp32, window[None])
        for got, w in zip(_run(int8, window[None]), want, strict=True):
            np.testing.assert_array_equal(got, w)
        assert not np.array_equal(_run(all8, window[None])[0], want[0])
    for shape in ((1, 9), (2, 8)):  # two windows: in one row, or one per row
        x = np.stack([rows[:9], rows[9:18]])[: shape[0], : shape[1]]
        assert not np.array_equal(_run(int8, x)[0], _run(fp32, x)[0])


def _run(model: onnx.ModelProto, rows: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"rows": rows.astype(np.float32)})


def test_window_sums_stay_float32(good: Path) -> None:
    """The windows' per-feature sums, products with a 0/1 matrix, are no layer of the
    network: every branch keeps them float32, and they are not counted as quantised."""
    fp32 = onnx.load(str(good))
    sums = [
        n for n in walk_nodes(fp32.graph) if n.op_type == "MatMul" and is_window_sum(n.input[1])
    ]
    assert len(sums) == 6  # one per windowing branch (a one-window call runs ReduceSum)
    assert not any(is_window_sum(w) for w in layer_weights(fp32))
    int8, _ = quantize_graph(fp32, small_calls=False)
    kept = [
        n for n in walk_nodes(int8.graph) if n.op_type == "MatMul" and is_window_sum(n.input[1])
    ]
    assert [n.output for n in kept] == [n.output for n in sums]
