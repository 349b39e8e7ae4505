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

from anomae.int8_graph import QuantizeError, check_untouched, layer_weights, quantize_graph


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("g") / "model.onnx")


def _nodes(g: onnx.GraphProto) -> list[onnx.NodeProto]:
    found = list(g.node)
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                found += _nodes(a.g)
    return found


def _score(model: onnx.ModelProto, rows: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["score"], {"rows": rows[None]})[0][0]


def test_only_matrix_products_are_quantised(good: Path) -> None:
    fp32 = onnx.load(str(good))
    int8, n = quantize_graph(fp32)
    assert n == check_untouched(fp32, int8) == 8
    # a changed float node (here the score's division turned into a Mul) is caught
    for node in int8.graph.node:
        if node.output[0] == "score":
            node.op_type = "Mul"
    with pytest.raises(QuantizeError, match="Div node that computes \\['score'\\]"):
        check_untouched(fp32, int8)


def test_kept_layer_stays_float32_in_every_branch(good: Path) -> None:
    fp32 = onnx.load(str(good))
    enc, dec = layer_weights(fp32)
    int8, n = quantize_graph(fp32, keep=frozenset([dec]))
    assert n == check_untouched(fp32, int8, frozenset([dec])) == 4
    before = [n for n in _nodes(fp32.graph) if n.op_type == "Gemm" and n.input[1] == dec]
    after = [n for n in _nodes(int8.graph) if n.op_type == "Gemm"]
    assert len(after) == 4 and after == before  # the same nodes: op, inputs, attributes
    assert all(n.domain == "" for n in _nodes(int8.graph))
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
