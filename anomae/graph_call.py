"""The scoring graph's branch for a call of one window (:mod:`anomae.graph`): batch 1, one
window (``length`` to ``length + stride - 1`` rows), the streaming monitor's batch-1 call.

The main graph picks it on the input's shape alone, before anything else runs, so such a
call pays for no more than its window's ``length x F`` cells: the scaler against vectors
tiled over exactly ``length`` rows (one span, as the general path's), the missing-value
mask, the network and the score, with no windowing, NaN test or slicing of outputs. It
computes what the general paths compute, op for op on the same cells (missing cells are
unobserved, left-out features held at 0 and unobserved), so its outputs are theirs bit
for bit. The branch is named :data:`SMALL_CALLS` (with a suffix): :mod:`anomae.int8_graph`
leaves its products float32.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from anomae.graph_windows import Builder, Layer, layer_op

# A call of a single window (one batch row) takes a branch of its own, named so (with a
# suffix), whose products anomae.int8_graph leaves float32: int8 lost only at one window
# per call (0.97x float32's speed; 1.4x faster at two windows, 2x at 64).
SMALL_CALLS = "small_calls"


def is_one_call(b: Builder, rows: str, length: int, stride: int) -> str:
    """Bool scalar: ``rows`` ``[batch, time, F]`` is one window, from its shape only
    (batch 1 and ``length <= time < length + stride``)."""
    d = b.op("Sub", [b.op("Shape", [rows], start=0, end=2), b.i64([1, length])])
    if stride == 1:
        return b.op("Equal", [b.op("ReduceMax", [b.op("Abs", [d])], keepdims=0), b.i64(0)])
    # 0 <= d < bound  <=>  |2 d - (bound - 1)| <= bound - 1
    slack = b.i64([0, stride - 1])
    y = b.op("Abs", [b.op("Sub", [b.op("Mul", [d, b.i64(2)]), slack])])
    return b.op("LessOrEqual", [b.op("ReduceMax", [b.op("Sub", [y, slack])], keepdims=0), b.i64(0)])


def one_call(
    b: Builder,
    rows: str,
    layers: list[tuple[Layer, list[str]]],
    layout: str,
    length: int,
    stride: int,
    tiled: dict[str, np.ndarray],
    center: np.ndarray | None,
) -> tuple[str, str]:
    """Add to ``b`` the one window of ``rows`` ``[1, time, F]`` through the scaler and the
    network: its per-feature squared error and observed cells, both ``[1, 1, F]``.
    ``tiled`` holds ``center`` and ``scale`` (and ``gate`` with left-out features), each
    ``[length, F]``; ``center`` the 0/1 mask of the features whose window mean is removed."""
    n_f = tiled["center"].shape[1]
    x = rows
    if stride > 1:  # rows past the window, before the next one starts
        x = b.op("Slice", [rows, b.i64([0]), b.i64([length]), b.i64([1])])
    scaled = b.op("Div", [b.op("Sub", [x, b.const(tiled["center"], "center")]),
                          b.const(tiled["scale"], "scale")])  # fmt: skip
    missing = b.op("IsNaN", [scaled])
    observed = b.op("Cast", [b.op("Not", [missing])], to=TensorProto.FLOAT)
    filled = b.op("Where", [missing, b.f32(0.0), scaled])
    if "gate" in tiled:  # left-out features: held at their training value, unobserved
        gate = b.const(tiled["gate"], "gate")
        observed = b.op("Mul", [observed, gate])
        filled = b.op("Mul", [filled, gate])
    axis = b.i64([1])
    f_cnt = b.op("ReduceSum", [observed, axis], keepdims=1)  # [1, 1, F]
    if center is not None:  # as graph_windows._centered, on the one window
        mean = b.op("Div", [b.op("ReduceSum", [filled, axis], keepdims=1),
                            b.op("Clip", [f_cnt, b.f32(1.0)])])  # fmt: skip
        if not center.all():
            mean = b.op("Mul", [mean, b.const(center.astype(np.float32), "center_mask")])
        filled = b.op("Mul", [b.op("Sub", [filled, mean]), observed])
    if layout == "flat":
        net = b.op("Reshape", [filled, b.i64([1, length * n_f])])
    elif layout == "channels":
        net = b.op("Transpose", [filled], perm=[0, 2, 1])
    else:
        raise ValueError(f"unknown layout {layout!r}")
    for layer, weights in layers:
        net = layer_op(b, net, layer, weights)
    if layout == "flat":
        recon = b.op("Reshape", [net, b.i64([1, length, n_f])])
    else:
        recon = b.op("Transpose", [net], perm=[0, 2, 1])
    diff = b.op("Sub", [recon, filled])
    sq = b.op("Mul", [b.op("Mul", [diff, diff]), observed])
    # one window's rows added in order, as the general paths' window_sums add them
    return b.op("ReduceSum", [sq, axis], keepdims=1), f_cnt


def tiled_scaler(
    center: np.ndarray, scale: np.ndarray, weight: np.ndarray, length: int
) -> dict[str, np.ndarray]:
    """The scaler's vectors (and the left-out features' 0/1 gate) tiled to ``[length, F]``."""
    out = {
        "center": np.tile(center.astype(np.float32), (length, 1)),
        "scale": np.tile(scale.astype(np.float32), (length, 1)),
    }
    if (weight == 0).any():
        out["gate"] = np.tile((weight > 0).astype(np.float32), (length, 1))
    return out


def branch(b: Builder, outs: list[str]) -> onnx.GraphProto:
    """``b`` as the one-window call's ``If`` branch, named for :mod:`anomae.int8_graph`."""
    return b.branch(*outs, name=SMALL_CALLS)
