"""Builds the scoring ONNX graph around an autoencoder: raw rows in, scores out.

The graph (opset 18) takes ``rows`` float32 ``[batch, time, features]`` (NaN = missing),
applies the scaler, unfolds windows of ``length`` rows every ``stride`` rows itself, runs
the network given as a list of :class:`Layer`, and returns

* ``score``          ``[batch, windows]``: mean squared reconstruction error over the
  observed cells of each window, in scaled units, each feature's error times its
  ``Scaler.error_weight`` (NaN when nothing was observed);
* ``feature_error``  ``[batch, windows, features]``: the same, per feature (0 if unobserved);
* ``coverage``       ``[batch, windows]``: fraction of the window's cells that were observed
  (of the features with a weight above 0).

Window ``w`` of an input ends at row ``w * stride + length - 1``. This module needs only
numpy and onnx, so the torch side (:mod:`anomae.train.export`) just lists its layers.

How windows are cut is the graph's main cost after the matrix products, so it picks one of
three equivalent paths at run time (``If`` nodes on the input): one window per batch row (the
streaming monitor's micro-batches) is a plain reshape; few windows are gathered row by row
(no per-window node overhead); many windows are cut as static block slices. Each path has a
copy without the missing-value mask (its windows' observed counts are constant), taken when
the input holds no NaN. A call of a single window (batch 1) has its own masked copy of the
one-window path, with no NaN test (an ``If`` costs more than that mask), which an int8 model
keeps float32: seven copies of the network in all, sharing one set of weights.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
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


_names = itertools.count()
# Below this many windows the row Gather is cheaper than the block slices' fixed node cost.
SMALL_WINDOWS = 192
# A call of one window (one batch row) takes a branch of its own, named so (with a
# suffix), whose products anomae.int8_graph leaves float32: int8 lost only at one window
# per call (0.97x float32's speed; 1.4x faster at two windows, 2x at 64).
SMALL_CALLS = "small_calls"


class _Builder:
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


def _layer(b: _Builder, x: str, layer: Layer, weights: list[str]) -> str:
    if layer.op == "Gelu":
        # Gelu is opset 20; spell it out with Erf to stay on opset 18.
        half = b.op("Mul", [x, b.f32(0.5)])
        erf = b.op("Erf", [b.op("Mul", [x, b.f32(1 / np.sqrt(2.0))])])
        return b.op("Mul", [half, b.op("Add", [erf, b.f32(1.0)])])
    if layer.op == "Reshape":
        return b.op("Reshape", [x, b.i64(layer.attrs["shape"])])
    return b.op(layer.op, [x, *weights], **layer.attrs)


@dataclass
class _Spec:
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


def _sse(b: _Builder, sp: _Spec, filled: str, obs: str | None) -> str:
    """Network + squared error: windows ``[B, N, L*F]`` -> per-feature SSE ``[B, N, F]``."""
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
    for layer, weights in sp.layers:
        x = _layer(b, x, layer, weights)
    if sp.layout == "channels":
        x = b.op("Transpose", [x], perm=[0, 2, 1])
    # allowzero: with no complete window the shape holds a 0 that must stay 0, not "copy"
    recon = b.op("Reshape", [x, b.op("Shape", [filled])], allowzero=1)
    diff = b.op("Sub", [recon, filled])
    sq = b.op("Mul", [diff, diff])
    if obs is not None:
        sq = b.op("Mul", [sq, obs])
    sq = b.op("Reshape", [sq, b.i64([0, 0, sp.length, sp.n_f])])
    return b.op("ReduceSum", [sq, b.i64([2])], keepdims=0)


def _centered(b: _Builder, sp: _Spec, filled: str, obs: str | None) -> str:
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
        count = b.op("Max", [b.op("ReduceSum", [o, axis], keepdims=1), b.f32(1.0)])
        mean = b.op("Div", [b.op("ReduceSum", [x, axis], keepdims=1), count])
    if not sp.center.all():
        mean = b.op("Mul", [mean, b.const(sp.center.astype(np.float32), "center_mask")])
    x = b.op("Sub", [x, mean])
    if obs is not None:
        x = b.op("Mul", [x, o])
    return b.op("Reshape", [x, b.op("Shape", [filled])], allowzero=1)


def center_mask(features: Sequence[str], center: bool | Sequence[str]) -> np.ndarray | None:
    """The features whose window mean is removed before the network, as a 0/1 float32
    mask over ``features``: all of them for ``True``, the named ones for a list of names,
    ``None`` (no centring) for ``False`` or an empty list.

        >>> center_mask(("flow", "temp", "pressure"), ["temp"]).tolist()
        [0.0, 1.0, 0.0]
        >>> center_mask(("flow", "temp"), True).tolist(), center_mask(("flow",), False)
        ([1.0, 1.0], None)
    """
    if isinstance(center, bool):
        return np.ones(len(features), np.float32) if center else None
    names = [center] if isinstance(center, str) else list(center)
    unknown = [n for n in names if n not in features]
    if unknown:
        raise ValueError(
            f"cannot centre unknown feature(s) {unknown}; the model's features are {list(features)}"
        )
    if not names:
        return None
    return np.array([f in names for f in features], np.float32)


def _gathered(sp: _Spec, masked: bool) -> onnx.GraphProto:
    """Few windows: gather their rows by index (cost grows with windows x length)."""
    b = _Builder()
    starts = b.op("Mul", [b.op("Range", [b.i64(0), sp.n, b.i64(1)]), b.i64(sp.stride)])
    idx = b.op(
        "Add", [b.op("Unsqueeze", [starts, b.i64([1])]), b.i64(np.arange(sp.length)[None, :])]
    )  # [n, L]
    lf = b.i64([0, -1, sp.length * sp.n_f])
    filled = b.op("Reshape", [b.op("Gather", [sp.filled_rows, idx], axis=1), lf])
    obs = b.op("Reshape", [b.op("Gather", [sp.observed, idx], axis=1), lf]) if masked else None
    return b.branch(_sse(b, sp, filled, obs), _counts(b, sp, masked))


def _single(sp: _Spec, masked: bool) -> onnx.GraphProto:
    """One window per batch row (the monitor's micro-batches are ``[B, length, F]``): the
    first ``length`` rows are the window, a reshape instead of a gather."""
    b = _Builder()
    lf = b.i64([0, 1, sp.length * sp.n_f])
    first = [b.i64([0]), b.i64([sp.length]), b.i64([1])]
    filled = b.op("Reshape", [b.op("Slice", [sp.filled_rows, *first]), lf])
    obs = b.op("Reshape", [b.op("Slice", [sp.observed, *first]), lf]) if masked else None
    if masked:  # observed cells of each row's window: a sum over its rows
        counts = b.op("ReduceSum", [b.op("Slice", [sp.observed, *first]), b.i64([1])], keepdims=1)
    else:
        counts = _complete_counts(b, sp, b.i64([1]))
    return b.branch(_sse(b, sp, filled, obs), counts)


def _unless_nan(
    sp: _Spec,
    complete: str,
    path: Callable[[_Spec, bool], onnx.GraphProto],
    name: str = "branch",
) -> onnx.GraphProto:
    """A branch running windowing ``path`` without the missing-value mask when the input holds
    no NaN (``complete``), with it otherwise: multiplying by an all-ones mask changes no bit
    but cost the few-window paths ~13 % of their time."""
    b = _Builder()
    return b.branch(*b.if_(complete, path(sp, False), path(sp, True)), name=name)


def _complete_counts(b: _Builder, sp: _Spec, windows: str) -> str:
    """Observed cells per window and feature ``[B, windows, F]`` of an input without NaN
    (and without left-out features, whose mask is 0): ``length`` everywhere."""
    batch = b.op("Shape", [sp.filled_rows], start=0, end=1)
    shape = b.op("Concat", [batch, windows, b.i64([sp.n_f])], axis=0)
    return b.op("Expand", [b.f32(float(sp.length)), shape])


def _counts(b: _Builder, sp: _Spec, masked: bool) -> str:
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


def _sliced(sp: _Spec, masked: bool) -> onnx.GraphProto:
    """Many windows: static block slices, a few large copies whatever their number.

    With period = lcm(length, stride) rows, each period holds ``classes`` window starts.
    View the rows as blocks of one period, pair each block with the next
    (``[.., q, 2 * period * F]``): window j of block q is the static column slice
    ``[j * stride * F, + length * F)`` of pair q. Concatenating the slices of all j along
    the last axis leaves every window in its natural order, i = q * classes + j."""
    b = _Builder()
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
    sse = _sse(b, sp, halves[0], halves[1] if masked else None)
    return b.branch(sse, _counts(b, sp, masked))


def build_graph(
    layers: list[Layer],
    layout: str,
    features: tuple[str, ...],
    window: WindowSpec,
    scaler: Scaler,
    center: bool | Sequence[str] = False,
) -> onnx.ModelProto:
    """The full scoring model. ``layout`` is ``"flat"`` (network sees ``[N, length*F]``) or
    ``"channels"`` (network sees ``[N, F, length]``). With ``center`` (``True``, or the names
    of some features: see :func:`center_mask`) each window loses the per-feature mean of
    those features before the network, and their error is measured on the centred window:
    slow drifts of a sensor's level no longer read as anomalies."""
    n_f, length, stride = len(features), window.length, window.stride
    b = _Builder()
    offset = b.const(np.asarray(scaler.center, dtype=np.float32), "center")
    scale = b.const(np.asarray(scaler.scale, dtype=np.float32), "scale")
    # The scaler runs on rows flattened to [B, time * F] against its vectors tiled over
    # time: onnxruntime broadcasts a short last axis (F values) span by span, which made
    # Sub and Div a quarter of a micro-batch's time; a [time * F] operand is one span.
    t1 = b.op("Shape", [INPUT], start=1, end=2)
    flat = b.op("Reshape", [INPUT, b.i64([0, -1])])
    tiled = [b.op("Tile", [v, t1]) for v in (offset, scale)]
    scaled = b.op("Div", [b.op("Sub", [flat, tiled[0]]), tiled[1]])
    missing = b.op("IsNaN", [scaled])
    observed = b.op("Cast", [b.op("Not", [missing])], to=TensorProto.FLOAT)
    filled_rows = b.op("Where", [missing, b.f32(0.0), scaled])
    weight = np.asarray(scaler.error_weight or np.ones(n_f), np.float32)
    if (weight == 0).any():  # left-out features: held at their training value, unobserved
        gate = b.op("Tile", [b.const((weight > 0).astype(np.float32), "gate"), t1])
        observed = b.op("Mul", [observed, gate])
        filled_rows = b.op("Mul", [filled_rows, gate])
    shape = b.op("Shape", [INPUT])
    observed = b.op("Reshape", [observed, shape], "observed")
    filled_rows = b.op("Reshape", [filled_rows, shape], "filled_rows")
    t = b.op("Squeeze", [t1])
    # windows n = ceil(max(time - length + 1, 0) / stride)
    avail = b.op("Max", [b.op("Sub", [t, b.i64(length - 1)]), b.i64(0)])
    n = b.op("Div", [b.op("Add", [avail, b.i64(stride - 1)]), b.i64(stride)], "n_windows")
    weighted = [
        (layer, [b.const(w.astype(np.float32), "w") for w in layer.weights]) for layer in layers
    ]
    mask = center_mask(features, center)
    sp = _Spec(n_f, length, stride, layout, weighted, filled_rows, observed, n, mask)

    # no NaN anywhere: ReduceMin of `observed` is 1 (an empty input counts as complete)
    complete = b.op("Equal", [b.op("ReduceMin", [observed], keepdims=0), b.f32(1.0)])
    one_window = b.op("Equal", [n, b.i64(1)])  # per batch row: the monitor's micro-batches
    few = _Builder()
    small = few.if_(
        one_window,
        _unless_nan(sp, complete, _single),
        _unless_nan(sp, complete, _gathered),
    )
    rest = _Builder()
    any_size = rest.if_(
        b.op("Less", [n, b.i64(SMALL_WINDOWS)]),
        few.branch(*small),
        _unless_nan(sp, complete, _sliced),
    )
    batch = b.op("Squeeze", [b.op("Shape", [INPUT], start=0, end=1)])
    # a one-window call skips the NaN test: an If costs more than its mask's few products
    one_call = _single(sp, True)
    one_call.name = b.name(SMALL_CALLS)
    # per-feature squared error and observed cells (exact as float: counts < 2^24)
    f_sum, f_cnt = b.if_(
        b.op("Equal", [b.op("Mul", [batch, n]), b.i64(1)]),
        one_call,
        rest.branch(*any_size),
        ["window_sse", "feature_observed"],
    )
    f_sum = b.op(
        "Slice", [f_sum, b.i64([0]), b.op("Unsqueeze", [n, b.i64([0])]), b.i64([1])], "feature_sse"
    )  # [B, n, F]

    if scaler.error_weight:
        f_sum = b.op("Mul", [f_sum, b.const(weight, "error_weight")])
    b.op("Div", [f_sum, b.op("Max", [f_cnt, b.f32(1.0)])], "feature_error")
    total = b.op("ReduceSum", [f_sum, b.i64([2])], keepdims=0)  # [B, n]
    count = b.op("ReduceSum", [f_cnt, b.i64([2])], keepdims=0)
    b.op("Div", [total, count], "score")  # 0/0 = NaN: nothing observed, nothing to score
    b.op("Mul", [count, b.f32(1.0 / (length * int((weight > 0).sum())))], "coverage")

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
