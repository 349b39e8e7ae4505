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
    b = _Builder()
    center = b.const(np.asarray(scaler.center, dtype=np.float32), "center")
    scale = b.const(np.asarray(scaler.scale, dtype=np.float32), "scale")
    scaled = b.op("Div", [b.op("Sub", [INPUT, center]), scale], "scaled")
    missing = b.op("IsNaN", [scaled], "missing")
    filled = b.op("Where", [missing, b.const(np.float32(0.0)), scaled], "filled")
    observed = b.op("Cast", [b.op("Not", [missing])], "observed", to=TensorProto.FLOAT)

    # windows = ceil(max(time - length + 1, 0) / stride), all in int64 scalars
    t = b.op("Squeeze", [b.op("Shape", [INPUT], start=1, end=2)])
    m = b.op("Max", [b.op("Sub", [t, b.const(np.int64(length - 1))]), b.const(np.int64(0))])
    n = b.op("Div", [b.op("Add", [m, b.const(np.int64(stride - 1))]), b.const(np.int64(stride))])
    starts = b.op("Range", [b.const(np.int64(0)), n, b.const(np.int64(1))])
    starts = b.op("Mul", [starts, b.const(np.int64(stride))])
    starts = b.op("Unsqueeze", [starts, b.const(np.asarray([1], dtype=np.int64))])
    offsets = b.const(np.arange(length, dtype=np.int64)[None, :], "offsets")
    idx = b.op("Add", [starts, offsets], "window_index")  # [windows, length]
    win = b.op("Gather", [filled, idx], "windows", axis=1)  # [B, n, L, F]
    obs = b.op("Gather", [observed, idx], "windows_observed", axis=1)

    if layout == "flat":
        x = b.op("Reshape", [win, b.const(np.asarray([-1, length * n_f], dtype=np.int64))])
    elif layout == "channels":
        x = b.op("Reshape", [win, b.const(np.asarray([-1, length, n_f], dtype=np.int64))])
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    else:
        raise ValueError(f"unknown layout {layout!r}")
    for layer in layers:
        x = _layer(b, x, layer)
    if layout == "channels":
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    # allowzero: with no complete window the shape holds a 0 that must stay 0, not "copy"
    recon = b.op("Reshape", [x, b.op("Shape", [win])], "reconstruction", allowzero=1)

    diff = b.op("Sub", [recon, win])
    sq = b.op("Mul", [b.op("Mul", [diff, diff]), obs])
    axis2 = b.const(np.asarray([2], dtype=np.int64))
    f_sum = b.op("ReduceSum", [sq, axis2], keepdims=0)  # [B, n, F]
    f_cnt = b.op("ReduceSum", [obs, axis2], keepdims=0)
    b.op("Div", [f_sum, b.op("Max", [f_cnt, b.const(np.float32(1.0))])], "feature_error")
    total = b.op("ReduceSum", [f_sum, axis2], keepdims=0)  # [B, n]
    count = b.op("ReduceSum", [f_cnt, axis2], keepdims=0)
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
