"""Builds the scoring ONNX graph around an autoencoder: raw rows in, scores out.

The graph (opset 18) takes ``rows`` float32 ``[batch, time, features]`` (NaN = missing),
applies the scaler, unfolds windows of ``length`` rows every ``stride`` rows itself, runs
the network given as a list of :class:`Layer`, and returns

* ``score``          ``[batch, windows]``: mean squared reconstruction error over the
  observed cells of each window, in scaled units, each feature's error times its
  ``Scaler.error_weight`` (NaN when nothing was observed); with ``aggregate="max"`` the
  largest ``feature_error`` of the window instead;
* ``feature_error``  ``[batch, windows, features]``: the same, per feature (0 if unobserved);
* ``coverage``       ``[batch, windows]``: fraction of the window's cells that were observed
  (of the features with a weight above 0).

Window ``w`` of an input ends at row ``w * stride + length - 1``. This module needs only
numpy and onnx, so the torch side (:mod:`anomae.train.export`) just lists its layers.

The main graph looks at the input's shape first: a call of one window (batch 1, the
monitor's streaming calls) takes :mod:`anomae.graph_call`'s branch, which touches only
that window's cells; any other call is scaled whole and cut into windows. How windows are
cut, and the copies of the network each way of cutting gets, is
:mod:`anomae.graph_windows`: ``If`` nodes on the input pick one at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from anomae.graph_call import SMALL_CALLS, is_one_call, one_call, tiled_scaler
from anomae.graph_call import branch as call_branch
from anomae.graph_windows import (
    Builder,
    Layer,
    Spec,
    gathered,
    single,
    sliced,
    unless_nan,
)
from anomae.spec import Scaler, WindowSpec

OPSET = 18
INPUT = "rows"
OUTPUTS = ("score", "feature_error", "coverage")
AGGREGATES = ("mean", "max")  # how a window's per-feature errors become its score
__all__ = [
    "AGGREGATES",
    "INPUT",
    "OPSET",
    "OUTPUTS",
    "SMALL_CALLS",
    "SMALL_WINDOWS",
    "Layer",
    "build_graph",
    "center_mask",
]

# Below this many windows the row Gather is cheaper than the block slices' fixed node cost.
SMALL_WINDOWS = 192


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


def build_graph(
    layers: list[Layer],
    layout: str,
    features: tuple[str, ...],
    window: WindowSpec,
    scaler: Scaler,
    center: bool | Sequence[str] = False,
    aggregate: str = "mean",
) -> onnx.ModelProto:
    """The full scoring model. ``layout`` is ``"flat"`` (network sees ``[N, length*F]``) or
    ``"channels"`` (network sees ``[N, F, length]``). With ``center`` (``True``, or the names
    of some features: see :func:`center_mask`) each window loses the per-feature mean of
    those features before the network, and their error is measured on the centred window:
    slow drifts of a sensor's level no longer read as anomalies. ``aggregate`` "max" makes
    ``score`` the largest ``feature_error`` of the window instead of the mean over its
    observed cells (with error weights that put each feature in units of its own normal
    error, one sensor's surprise is not diluted by the others)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    n_f, length, stride = len(features), window.length, window.stride
    weight = np.asarray(scaler.error_weight or np.ones(n_f), np.float32)
    b = Builder()
    weighted = [
        (layer, [b.const(w.astype(np.float32), "w") for w in layer.weights]) for layer in layers
    ]
    mask = center_mask(features, center)
    # a one-window call (batch 1: the monitor's streaming calls) is told by the input's
    # shape before anything runs, and its branch touches only its window's cells
    fast = Builder()
    center_v, scale_v = (np.asarray(v, np.float32) for v in (scaler.center, scaler.scale))
    tiled = tiled_scaler(center_v, scale_v, weight, length)
    f_sum, f_cnt = one_call(fast, INPUT, weighted, layout, length, stride, tiled, mask)
    fast_outs = _outputs(fast, f_sum, f_cnt, weight, bool(scaler.error_weight), length, aggregate)
    rest = Builder()
    rest_outs = _outputs(
        rest,
        *_any_call(rest, weighted, layout, window, n_f, center_v, scale_v, weight, mask),
        weight,
        bool(scaler.error_weight),
        length,
        aggregate,
    )
    b.if_(
        is_one_call(b, INPUT, length, stride),
        call_branch(fast, fast_outs),
        rest.branch(*rest_outs),
        list(OUTPUTS),
    )

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


def _any_call(
    b: Builder,
    weighted: list[tuple[Layer, list[str]]],
    layout: str,
    window: WindowSpec,
    n_f: int,
    center: np.ndarray,
    scale: np.ndarray,
    weight: np.ndarray,
    mask: np.ndarray | None,
) -> tuple[str, str]:
    """Add to ``b`` the scaler and the run-time choice of windowing path on any input:
    per-feature squared error and observed cells of every window, ``[B, n, F]``."""
    length, stride = window.length, window.stride
    offset = b.const(center, "center")
    spread = b.const(scale, "scale")
    # The scaler runs on rows flattened to [B, time * F] against its vectors tiled over
    # time: onnxruntime broadcasts a short last axis (F values) span by span, which made
    # Sub and Div a quarter of a micro-batch's time; a [time * F] operand is one span.
    t1 = b.op("Shape", [INPUT], start=1, end=2)
    flat = b.op("Reshape", [INPUT, b.i64([0, -1])])
    tiled = [b.op("Tile", [v, t1]) for v in (offset, spread)]
    scaled = b.op("Div", [b.op("Sub", [flat, tiled[0]]), tiled[1]])
    missing = b.op("IsNaN", [scaled])
    observed = b.op("Cast", [b.op("Not", [missing])], to=TensorProto.FLOAT)
    filled_rows = b.op("Where", [missing, b.f32(0.0), scaled])
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
    sp = Spec(n_f, length, stride, layout, weighted, filled_rows, observed, n, mask)

    # no NaN anywhere: ReduceMin of `observed` is 1 (an empty input counts as complete)
    complete = b.op("Equal", [b.op("ReduceMin", [observed], keepdims=0), b.f32(1.0)])
    one_window = b.op("Equal", [n, b.i64(1)])  # per batch row: the monitor's micro-batches
    few = Builder()
    small = few.if_(
        one_window,
        unless_nan(sp, complete, single),
        unless_nan(sp, complete, gathered),
    )
    f_sum, f_cnt = b.if_(
        b.op("Less", [n, b.i64(SMALL_WINDOWS)]),
        few.branch(*small),
        unless_nan(sp, complete, sliced),
        ["feature_sse", "feature_observed"],
    )  # [B, n, F] each
    return f_sum, f_cnt


def _outputs(
    b: Builder,
    f_sum: str,
    f_cnt: str,
    weight: np.ndarray,
    weighted: bool,
    length: int,
    aggregate: str = "mean",
) -> list[str]:
    """score, feature_error and coverage (:data:`OUTPUTS`) from the per-feature squared
    error ``f_sum`` and observed cells ``f_cnt`` (exact as float: counts < 2^24). The score
    is the mean over observed cells, or with ``aggregate`` "max" the largest feature error."""
    if weighted:
        f_sum = b.op("Mul", [f_sum, b.const(weight, "error_weight")])
    # Clip, not Max: onnxruntime's Max against a scalar took 7 us per 1,024 windows of one
    # feature (9 % of a NAB-sized call), Clip 0.1; the same values
    feature_error = b.op("Div", [f_sum, b.op("Clip", [f_cnt, b.f32(1.0)])])
    count = b.op("ReduceSum", [f_cnt, b.i64([2])], keepdims=0)
    if aggregate == "max":  # nothing observed: NaN, as the mean's 0/0
        top = b.op("ReduceMax", [feature_error, b.i64([2])], keepdims=0)
        score = b.op("Where", [b.op("Equal", [count, b.f32(0.0)]), b.f32(np.nan), top])
    else:
        total = b.op("ReduceSum", [f_sum, b.i64([2])], keepdims=0)  # [B, n]
        score = b.op("Div", [total, count])  # 0/0 = NaN: nothing observed, nothing to score
    coverage = b.op("Mul", [count, b.f32(1.0 / (length * int((weight > 0).sum())))])
    return [score, feature_error, coverage]
