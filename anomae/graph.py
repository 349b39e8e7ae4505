"""Builds the scoring ONNX graph around an autoencoder: raw rows in, scores out.

The graph (opset 18) takes ``rows`` float32 ``[batch, time, features]`` (NaN = missing),
applies the scaler, unfolds windows of ``length`` rows every ``stride`` rows itself, runs
the network given as a list of :class:`Layer`, and returns

* ``score``          ``[batch, windows]``: mean squared reconstruction error over the
  observed cells of each window, in scaled units (NaN when nothing was observed);
* ``feature_error``  ``[batch, windows, features]``: the same, per feature (0 if unobserved);
* ``coverage``       ``[batch, windows]``: fraction of the window's cells that were observed.

Window ``w`` of an input ends at row ``w * stride + length - 1``. This module needs only
numpy and onnx, so the torch side (:mod:`anomae.train.export`) just lists its layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from anomae.spec import Scaler, WindowSpec

OPSET = 18
INPUT = "rows"
OUTPUTS = ("score", "feature_error", "coverage")


@dataclass
class Layer:
    """One network layer: an ONNX op name, its weights (numpy) and attributes."""

    op: str
    weights: list[np.ndarray] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _layer(b: _Builder, x: str, layer: Layer) -> str:
    w = [b.const(a.astype(np.float32), "w") for a in layer.weights]
    if layer.op == "Gelu":
        # Gelu is opset 20; spell it out with Erf to stay on opset 18.
        half = b.op("Mul", [x, b.const(np.float32(0.5))])
        erf = b.op("Erf", [b.op("Mul", [x, b.const(np.float32(1 / np.sqrt(2.0)))])])
        return b.op("Mul", [half, b.op("Add", [erf, b.const(np.float32(1.0))])])
    if layer.op == "Reshape":
        shape = b.const(np.asarray(layer.attrs["shape"], dtype=np.int64), "shape")
        return b.op("Reshape", [x, shape])
    return b.op(layer.op, [x, *w], **layer.attrs)


def build_graph(
    layers: list[Layer],
    layout: str,
    features: tuple[str, ...],
    window: WindowSpec,
    scaler: Scaler,
) -> onnx.ModelProto:
    """The full scoring model. ``layout`` is ``"flat"`` (network sees ``[N, length*F]``) or
    ``"channels"`` (network sees ``[N, F, length]``)."""
    n_f, length, stride = len(features), window.length, window.stride
    # Windows are cut with static slices of whole blocks, never gathered row by row (a
    # Gather of [windows, length] row indices cost 25 % of a call). With
    # period = lcm(length, stride) rows and classes = period / stride windows starting in
    # each period: view the rows as blocks of `period` rows, pair each block with the next
    # ([.., q, 2 * period * F]), and window j of block q is the static column slice
    # [j * stride * F, + length * F) of pair q. Concatenating the slices of all j along the
    # last axis puts every window in its natural order, i = q * classes + j.
    period = length * stride // math.gcd(length, stride)
    classes = period // stride
    b = _Builder()

    def i64(v: object) -> str:
        return b.const(np.asarray(v, dtype=np.int64), "i")

    center = b.const(np.asarray(scaler.center, dtype=np.float32), "center")
    scale = b.const(np.asarray(scaler.scale, dtype=np.float32), "scale")
    scaled = b.op("Div", [b.op("Sub", [INPUT, center]), scale], "scaled")

    t = b.op("Squeeze", [b.op("Shape", [INPUT], start=1, end=2)])
    # windows n = ceil(max(time - length + 1, 0) / stride); blocks m = ceil(n / classes)
    avail = b.op("Max", [b.op("Sub", [t, i64(length - 1)]), i64(0)])
    n = b.op("Div", [b.op("Add", [avail, i64(stride - 1)]), i64(stride)], "n_windows")
    m = b.op("Div", [b.op("Add", [n, i64(classes - 1)]), i64(classes)], "n_blocks")
    need = b.op("Unsqueeze", [b.op("Mul", [b.op("Add", [m, i64(1)]), i64(period)]), i64([0])])
    pad = b.op("Max", [b.op("Sub", [need, b.op("Unsqueeze", [t, i64([0])])]), i64([0])])

    # Missing cells: zero in the network's input, excluded from the error. Where() on rows is
    # cheap, on windows it cost as much as a Gemm: so the mask is windowed too, as floats,
    # stacked with the values on a leading axis so one set of slices cuts both.
    missing = b.op("IsNaN", [scaled])
    observed = b.op("Cast", [b.op("Not", [missing])], "observed", to=TensorProto.FLOAT)
    filled_rows = b.op("Where", [missing, b.const(np.float32(0.0)), scaled])
    both = b.op("Concat", [b.op("Unsqueeze", [r, i64([0])]) for r in (filled_rows, observed)],
                axis=0)  # [2, B, T, F]
    pads = b.op("Concat", [i64([0, 0, 0, 0, 0, 0]), pad, i64([0])], axis=0)
    both = b.op("Pad", [both, pads, b.const(np.float32(0.0))], mode="constant")
    both = b.op("Slice", [both, i64([0]), need, i64([2])])  # exactly (m + 1) * period rows
    blocks = b.op("Reshape", [both, i64([0, 0, -1, period * n_f])])  # [2, B, m + 1, P*F]
    pairs = b.op("Concat", [b.op("Slice", [blocks, i64([0]), i64([-1]), i64([2])]),
                            b.op("Slice", [blocks, i64([1]), i64([2**62]), i64([2])])], axis=3)
    cuts = [b.op("Slice", [pairs, i64([j * stride * n_f]), i64([j * stride * n_f + length * n_f]),
                           i64([3])]) for j in range(classes)]
    win = b.op("Concat", cuts, axis=3) if classes > 1 else cuts[0]
    win = b.op("Reshape", [win, i64([2, 0, -1, length * n_f])])  # [2, B, m * classes, L*F]
    filled, obs = (b.op("Squeeze", [half, i64([0])]) for half in
                   (b.op("Slice", [win, i64([k]), i64([k + 1]), i64([0])]) for k in (0, 1)))

    if layout == "flat":
        x = b.op("Reshape", [filled, i64([-1, length * n_f])])
    elif layout == "channels":
        x = b.op("Reshape", [filled, i64([-1, length, n_f])])
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    else:
        raise ValueError(f"unknown layout {layout!r}")
    for layer in layers:
        x = _layer(b, x, layer)
    if layout == "channels":
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    # allowzero: with no complete window the shape holds a 0 that must stay 0, not "copy"
    recon = b.op("Reshape", [x, b.op("Shape", [filled])], "reconstruction", allowzero=1)

    diff = b.op("Sub", [recon, filled])
    sq = b.op("Mul", [b.op("Mul", [diff, diff]), obs])
    sq = b.op("Reshape", [sq, i64([0, 0, length, n_f])])
    f_sum = b.op("ReduceSum", [sq, i64([2])], keepdims=0)  # [B, m * classes, F]
    n1 = b.op("Unsqueeze", [n, i64([0])])
    f_sum = b.op("Slice", [f_sum, i64([0]), n1, i64([1])], "feature_sse")  # [B, n, F]

    # observed cells per window and feature from a running count over rows (exact in int64)
    run = b.op("CumSum", [b.op("Cast", [observed], to=TensorProto.INT64), i64(1)])
    run = b.op("Pad", [run, i64([0, 1, 0, 0, 0, 0]), i64(0)], mode="constant")  # [B, T+1, F]
    starts = b.op("Mul", [b.op("Range", [i64(0), n, i64(1)]), i64(stride)])
    seen = b.op("Sub", [b.op("Gather", [run, b.op("Add", [starts, i64(length)])], axis=1),
                        b.op("Gather", [run, starts], axis=1)])
    f_cnt = b.op("Cast", [seen], "feature_observed", to=TensorProto.FLOAT)  # [B, n, F]

    b.op("Div", [f_sum, b.op("Max", [f_cnt, b.const(np.float32(1.0))])], "feature_error")
    total = b.op("ReduceSum", [f_sum, i64([2])], keepdims=0)  # [B, n]
    count = b.op("ReduceSum", [f_cnt, i64([2])], keepdims=0)
    b.op("Div", [total, count], "score")  # 0/0 = NaN: nothing observed, nothing to score
    b.op("Mul", [count, b.const(np.float32(1.0 / (length * n_f)))], "coverage")

    f32 = TensorProto.FLOAT
    graph = helper.make_graph(
        b.nodes,
        "anomae",
        [helper.make_tensor_value_info(INPUT, f32, ["batch", "time", n_f])],
        [
            helper.make_tensor_value_info("score", f32, ["batch", "windows"]),
            helper.make_tensor_value_info("feature_error", f32, ["batch", "windows", n_f]),
            helper.make_tensor_value_info("coverage", f32, ["batch", "windows"]),
        ],
        initializer=b.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="anomae"
    )
    model.ir_version = 9  # onnxruntime >= 1.16 reads IR 9
    return model
