"""The windowing paths of the scoring graph (:mod:`anomae.graph`): each an ``If`` branch
that cuts the scaled rows into windows, runs a copy of the network on them and returns the
per-feature squared error and observed cells of every window.

How windows are cut is the graph's main cost after the matrix products, so the graph picks
one of three equivalent paths at run time: one window per batch row (the streaming
monitor's micro-batches) is a plain reshape (:func:`single`); few windows are gathered row
by row (:func:`gathered`, no per-window node overhead); many windows are cut as static
block slices (:func:`sliced`). Each path has a copy without the missing-value mask (its
windows' observed counts are constant), taken when the input holds no NaN
(:func:`unless_nan`). A call of a single window (batch 1) never comes here: the main
graph sends it to a branch of its own on its shape alone (:mod:`anomae.graph_call`),
which an int8 model keeps float32: seven copies of the network in all. The few-window
branches (:func:`single` and :func:`gathered`, with and without the mask) hold copies of
the weights (:func:`own_copy`): onnxruntime pre-packs a matrix product's weights only when
they are its own graph's, and the packing on every call of weights read from the main
graph cost 8 % of a 64-window call and 30 % of a two-row micro-batch (the float32 file
holds the weights five times: 6.0 MB instead of 1.2 MB for the reference model). The
others read the main graph's: a one-window call was 1 % slower with its own copy, and for
many windows the packing is a small part of the call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class Layer:
    """One network layer: an ONNX op name, its weights (numpy) and attributes."""

    op: str
    weights: list[np.ndarray] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)


_names = itertools.count()
_COPY = "_copy"  # a weight's copy is named "<weight>_copy_<k>"
WINDOW_SUM = "window_sum"  # the 0/1 matrices of window_sums, named "window_sum_<k>"
WINDOW_SUM_MACS = 2048  # the most multiply-adds per window for which window_sums multiplies


class Builder:
    """Collects nodes and initializers of one graph (the main graph or an If branch)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def name(self, prefix: str) -> str:
        return f"{prefix}_{next(_names)}"  # unique across branches: subgraphs see outer names

    def const(self, value: object, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def i64(self, value: object) -> str:
        return self.const(np.asarray(value, dtype=np.int64), "i")

    def f32(self, value: float) -> str:
        return self.const(np.float32(value), "f")

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def if_(
        self,
        cond: str,
        then: onnx.GraphProto,
        otherwise: onnx.GraphProto,
        outs: list[str] | None = None,
    ) -> list[str]:
        outs = outs or [self.name("if") for _ in then.output]
        self.nodes.append(
            helper.make_node("If", [cond], outs, then_branch=then, else_branch=otherwise)
        )
        return outs

    def branch(self, *outs: str, name: str = "branch") -> onnx.GraphProto:
        values = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs]
        return helper.make_graph(self.nodes, self.name(name), [], values, self.inits)


def layer_op(b: Builder, x: str, layer: Layer, weights: list[str]) -> str:
    if layer.op == "Gelu":
        # Gelu is opset 20; spell it out with Erf to stay on opset 18.
        half = b.op("Mul", [x, b.f32(0.5)])
        erf = b.op("Erf", [b.op("Mul", [x, b.f32(1 / np.sqrt(2.0))])])
        return b.op("Mul", [half, b.op("Add", [erf, b.f32(1.0)])])
    if layer.op == "Reshape":
        return b.op("Reshape", [x, b.i64(layer.attrs["shape"])])
    return b.op(layer.op, [x, *weights], **layer.attrs)


@dataclass
class Spec:
    """What every branch needs: shapes, the network, and the outer tensors it reads."""

    n_f: int
    length: int
    stride: int
    layout: str
    layers: list[tuple[Layer, list[str]]]
    filled_rows: str  # [B, T, F], NaN replaced by 0
    observed: str  # [B, T, F], 1.0 where observed
    n: str  # windows (int64 scalar)
    center: np.ndarray | None = None  # 0/1 per feature: subtract its window mean first

    @property
    def period(self) -> int:
        return self.length * self.stride // math.gcd(self.length, self.stride)

    @property
    def classes(self) -> int:
        return self.period // self.stride


def own_copy(b: Builder, layers: list[tuple[Layer, list[str]]]) -> list[tuple[Layer, list[str]]]:
    """The network's weights as initializers of ``b``'s own graph, each named after the
    main graph's weight it copies (``<name>_copy_<k>``, see :func:`copied_from`):
    onnxruntime pre-packs a matrix product's weights only when they belong to the product's
    own graph, and re-packed those read from an enclosing graph on every call."""
    return [
        (
            layer,
            [
                b.const(w.astype(np.float32), f"{name}{_COPY}")
                for w, name in zip(layer.weights, names, strict=True)
            ],
        )
        for layer, names in layers
    ]


def copied_from(name: str) -> str:
    """The main graph's weight a copy made by :func:`own_copy` is named after (``name``
    itself when it is no copy)."""
    return name.split(_COPY + "_")[0]


def _sse(
    b: Builder,
    sp: Spec,
    filled: str,
    obs: str | None,
    layers: list[tuple[Layer, list[str]]] | None = None,
) -> str:
    """Network + squared error: windows ``[B, N, L*F]`` -> per-feature SSE ``[B, N, F]``,
    through ``layers`` (default: ``sp.layers``, the main graph's weights)."""
    lf = sp.length * sp.n_f
    if sp.center is not None:
        filled = _centered(b, sp, filled, obs)
    if sp.layout == "flat":
        x = b.op("Reshape", [filled, b.i64([-1, lf])])
    elif sp.layout == "channels":
        x = b.op("Reshape", [filled, b.i64([-1, sp.length, sp.n_f])])
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    else:
        raise ValueError(f"unknown layout {sp.layout!r}")
    for layer, weights in layers or sp.layers:
        x = layer_op(b, x, layer, weights)
    if sp.layout == "channels":
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    # allowzero: with no complete window the shape holds a 0 that must stay 0, not "copy"
    recon = b.op("Reshape", [x, b.op("Shape", [filled])], allowzero=1)
    diff = b.op("Sub", [recon, filled])
    sq = b.op("Mul", [diff, diff])
    if obs is not None:
        sq = b.op("Mul", [sq, obs])
    return window_sums(b, sq, sp.length, sp.n_f)


def window_sums(b: Builder, cells: str, length: int, n_f: int) -> str:
    """Per-feature sums ``[B, N, F]`` of windows' squared errors ``[B, N, length * F]``
    (time-major, each >= 0).

    onnxruntime's ReduceSum over a window's rows costs ~65 ns per window whatever its size:
    40-55 % of a 1,024-window call of the SKAB and NAB models (8x8 and 16x1 windows). Where
    :func:`sums_by_product` says so, the sums are instead a product with a 0/1 matrix
    (:data:`WINDOW_SUM`; 2-7 us per 1,024 windows there), which adds each feature's cells
    in time order (exact zeros between, one block of at most 256 terms), as the one-window
    call's ReduceSum does (:mod:`anomae.graph_call`), for any number of windows. An
    infinite error is first clipped to the largest float, so that its product with 0 adds
    nothing to the other features (inf x 0 is NaN): its feature's sum is then the largest
    float (ReduceSum's is inf), still far above any threshold. :mod:`anomae.int8_graph`
    leaves the product float32."""
    if not sums_by_product(length, n_f):
        cells = b.op("Reshape", [cells, b.i64([0, 0, length, n_f])])
        return b.op("ReduceSum", [cells, b.i64([2])], keepdims=0)
    select = np.tile(np.eye(n_f, dtype=np.float32), (length, 1))  # [L * F, F]
    finite = b.op("Clip", [cells, "", b.f32(float(np.finfo(np.float32).max))])
    return b.op("MatMul", [finite, b.const(select, WINDOW_SUM)])


def sums_by_product(length: int, n_f: int) -> bool:
    """Whether :func:`window_sums` multiplies (``length * F * F`` multiply-adds per window,
    at most :data:`WINDOW_SUM_MACS`, over at most 256 cells, which the product adds in one
    block, in order) rather than runs ReduceSum: 1,024 windows of 32x8 took 19 us by
    product and 41 by ReduceSum, of 64x8 44 and 35, of 32x25 156 and 44 (one thread, each
    net of a copy of the input)."""
    return length * n_f <= 256 and length * n_f * n_f <= WINDOW_SUM_MACS


def is_window_sum(name: str) -> bool:
    """Whether initializer ``name`` is a :func:`window_sums` matrix (no network weight)."""
    return name.startswith(WINDOW_SUM + "_")


def _centered(b: Builder, sp: Spec, filled: str, obs: str | None) -> str:
    """Each window minus its per-feature mean over observed cells (missing cells stay 0), for
    the features ``sp.center`` marks; the others keep their level."""
    assert sp.center is not None
    shape4 = b.i64([0, 0, sp.length, sp.n_f])
    x = b.op("Reshape", [filled, shape4])
    axis = b.i64([2])
    if obs is None:
        mean = b.op("ReduceMean", [x, axis], keepdims=1)
    else:
        o = b.op("Reshape", [obs, shape4])
        count = b.op("Clip", [b.op("ReduceSum", [o, axis], keepdims=1), b.f32(1.0)])
        mean = b.op("Div", [b.op("ReduceSum", [x, axis], keepdims=1), count])
    if not sp.center.all():
        mean = b.op("Mul", [mean, b.const(sp.center.astype(np.float32), "center_mask")])
    x = b.op("Sub", [x, mean])
    if obs is not None:
        x = b.op("Mul", [x, o])
    return b.op("Reshape", [x, b.op("Shape", [filled])], allowzero=1)


def gathered(sp: Spec, masked: bool) -> onnx.GraphProto:
    """Few windows: gather their rows by index (cost grows with windows x length); the
    branch holds its own copy of the network's weights (:func:`own_copy`)."""
    b = Builder()
    starts = b.op("Mul", [b.op("Range", [b.i64(0), sp.n, b.i64(1)]), b.i64(sp.stride)])
    idx = b.op(
        "Add", [b.op("Unsqueeze", [starts, b.i64([1])]), b.i64(np.arange(sp.length)[None, :])]
    )  # [n, L]
    lf = b.i64([0, -1, sp.length * sp.n_f])
    filled = b.op("Reshape", [b.op("Gather", [sp.filled_rows, idx], axis=1), lf])
    obs = b.op("Reshape", [b.op("Gather", [sp.observed, idx], axis=1), lf]) if masked else None
    return b.branch(_sse(b, sp, filled, obs, own_copy(b, sp.layers)), _counts(b, sp, masked))


def single(sp: Spec, masked: bool) -> onnx.GraphProto:
    """One window per batch row (the monitor's micro-batches are ``[B, length, F]``): the
    first ``length`` rows are the window, a reshape instead of a gather; the branch holds
    its own copy of the network's weights (:func:`own_copy`)."""
    b = Builder()
    lf = b.i64([0, 1, sp.length * sp.n_f])
    first = [b.i64([0]), b.i64([sp.length]), b.i64([1])]
    filled = b.op("Reshape", [b.op("Slice", [sp.filled_rows, *first]), lf])
    obs = b.op("Reshape", [b.op("Slice", [sp.observed, *first]), lf]) if masked else None
    if masked:  # observed cells of each row's window: a sum over its rows
        counts = b.op("ReduceSum", [b.op("Slice", [sp.observed, *first]), b.i64([1])], keepdims=1)
    else:
        counts = _complete_counts(b, sp, b.i64([1]))
    return b.branch(_sse(b, sp, filled, obs, own_copy(b, sp.layers)), counts)


def unless_nan(
    sp: Spec,
    complete: str,
    path: Callable[[Spec, bool], onnx.GraphProto],
    name: str = "branch",
) -> onnx.GraphProto:
    """A branch running windowing ``path`` without the missing-value mask when the input holds
    no NaN (``complete``), with it otherwise: multiplying by an all-ones mask changes no bit
    but cost the few-window paths ~13 % of their time."""
    b = Builder()
    return b.branch(*b.if_(complete, path(sp, False), path(sp, True)), name=name)


def _complete_counts(b: Builder, sp: Spec, windows: str) -> str:
    """Observed cells per window and feature ``[B, windows, F]`` of an input without NaN
    (and without left-out features, whose mask is 0): ``length`` everywhere."""
    batch = b.op("Shape", [sp.filled_rows], start=0, end=1)
    shape = b.op("Concat", [batch, windows, b.i64([sp.n_f])], axis=0)
    return b.op("Expand", [b.f32(float(sp.length)), shape])


def _counts(b: Builder, sp: Spec, masked: bool) -> str:
    """Observed cells of every window ``[B, n, F]`` (float, exact: counts < 2^24): all of them
    without NaN; else from running counts over rows (exact in int64), inclusive at the
    window's last row minus exclusive at its first. (No Pad: onnxruntime's CUDA Pad has no
    int64 kernel, and a CPU fallback cost two host copies per call.)"""
    if not masked:
        return _complete_counts(b, sp, b.op("Unsqueeze", [sp.n, b.i64([0])]))
    counts = b.op("Cast", [sp.observed], to=TensorProto.INT64)
    incl = b.op("CumSum", [counts, b.i64(1)])
    excl = b.op("CumSum", [counts, b.i64(1)], exclusive=1)
    starts = b.op("Mul", [b.op("Range", [b.i64(0), sp.n, b.i64(1)]), b.i64(sp.stride)])
    seen = b.op(
        "Sub",
        [
            b.op("Gather", [incl, b.op("Add", [starts, b.i64(sp.length - 1)])], axis=1),
            b.op("Gather", [excl, starts], axis=1),
        ],
    )
    return b.op("Cast", [seen], to=TensorProto.FLOAT)


def sliced(sp: Spec, masked: bool) -> onnx.GraphProto:
    """Many windows: static block slices, a few large copies whatever their number.

    With period = lcm(length, stride) rows, each period holds ``classes`` window starts.
    View the rows as blocks of one period, pair each block with the next
    (``[.., q, 2 * period * F]``): window j of block q is the static column slice
    ``[j * stride * F, + length * F)`` of pair q. Concatenating the slices of all j along
    the last axis leaves every window in its natural order, i = q * classes + j."""
    b = Builder()
    n_f, period, classes = sp.n_f, sp.period, sp.classes
    m = b.op("Div", [b.op("Add", [sp.n, b.i64(classes - 1)]), b.i64(classes)])
    need = b.op("Unsqueeze", [b.op("Mul", [b.op("Add", [m, b.i64(1)]), b.i64(period)]), b.i64([0])])
    t = b.op("Shape", [sp.filled_rows], start=1, end=2)
    pad = b.op("Max", [b.op("Sub", [need, t]), b.i64([0])])
    if masked:  # values and mask stacked on a leading axis: one set of slices cuts both
        rows = b.op(
            "Concat",
            [b.op("Unsqueeze", [r, b.i64([0])]) for r in (sp.filled_rows, sp.observed)],
            axis=0,
        )
    else:
        rows = b.op("Unsqueeze", [sp.filled_rows, b.i64([0])])
    pads = b.op("Concat", [b.i64([0, 0, 0, 0, 0, 0]), pad, b.i64([0])], axis=0)
    rows = b.op("Pad", [rows, pads, b.f32(0.0)], mode="constant")
    rows = b.op("Slice", [rows, b.i64([0]), need, b.i64([2])])  # (m + 1) * period rows
    blocks = b.op("Reshape", [rows, b.i64([0, 0, -1, period * n_f])])
    pairs = b.op(
        "Concat",
        [
            b.op("Slice", [blocks, b.i64([0]), b.i64([-1]), b.i64([2])]),
            b.op("Slice", [blocks, b.i64([1]), b.i64([2**62]), b.i64([2])]),
        ],
        axis=3,
    )
    lf = sp.length * n_f
    cuts = [
        b.op(
            "Slice",
            [pairs, b.i64([j * sp.stride * n_f]), b.i64([j * sp.stride * n_f + lf]), b.i64([3])],
        )
        for j in range(classes)
    ]
    win = b.op("Concat", cuts, axis=3) if classes > 1 else cuts[0]
    win = b.op("Reshape", [win, b.i64([0, 0, -1, lf])])  # [1 or 2, B, m * classes, L*F]
    halves = [
        b.op("Squeeze", [b.op("Slice", [win, b.i64([k]), b.i64([k + 1]), b.i64([0])]), b.i64([0])])
        for k in range(2 if masked else 1)
    ]
    sse = _sse(b, sp, halves[0], halves[1] if masked else None)  # [B, m * classes, F]
    # the last block may hold windows past the input's end: only this path cuts them off
    # (the others make exactly n), so a few-window call runs no Slice
    sse = b.op("Slice", [sse, b.i64([0]), b.op("Unsqueeze", [sp.n, b.i64([0])]), b.i64([1])])
    return b.branch(sse, _counts(b, sp, masked))
