"""The int8 rewrite of a scoring graph: onnxruntime's dynamic quantisation of the network's
matrix products, everything else left float32 and checked to be so.

:func:`quantize_graph` gives every ``Gemm``/``MatMul`` of the network (in each of the
graph's windowing branches, :mod:`anomae.graph`) int8 weights, stored once in the main graph
for the branches to share, and an input quantised per call (``DynamicQuantizeLinear`` +
``MatMulInteger``, which onnxruntime fuses into ``DynamicQuantizeMatMul`` at load). The
layers whose weights ``keep`` names stay float32 (mixed precision: :mod:`anomae.quantize`
returns the layers that change the ranking most to float32), and so does the network of the
graph's branch for single-window calls (``small_calls``). :func:`check_untouched` proves
that nothing but the quantised products changed: scaler, windowing, mask, score, feature
errors and coverage are the float32 model's nodes.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import numpy_helper

from anomae.graph import SMALL_CALLS
from anomae.graph_windows import copied_from, is_window_sum

QUANTIZED_OPS = ("Gemm", "MatMul")
INT8_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger"})
# the ops a quantised Gemm/MatMul becomes besides INT8_OPS: scale product, cast, bias
_REWRITE_OPS = frozenset({"Mul", "Cast", "Add"})
_KEEP_DOMAIN = "anomae.keep_fp32"
_SHARED_BYTES = 64  # hoist quantised weights this large out of the branches, once each


class QuantizeError(ValueError):
    """The model cannot be quantised (not found, already int8, no threshold, no windows)."""


def _subgraphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield a.g
            elif a.type == onnx.AttributeProto.GRAPHS:
                yield from a.graphs


def _graphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield g
    for sub in _subgraphs(g):
        yield from _graphs(sub)


def walk_nodes(g: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``g`` and of its subgraphs (``If`` branches), depth first."""
    yield from g.node
    for sub in _subgraphs(g):
        yield from walk_nodes(sub)


def _rename_inputs(g: onnx.GraphProto, rename: dict[str, str]) -> None:
    for node in walk_nodes(g):
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def _share_weights(model: onnx.ModelProto, own: set[str]) -> None:
    """The quantiser gives each ``If`` branch its own copy of the int8 weights: keep one of
    each in the main graph, where every branch can read it. The branches' ``own``
    initializers (the float32 graph's) stay where they are, under their names."""
    main = model.graph
    seen: dict[tuple[int, tuple[int, ...], bytes], str] = {}

    def visit(g: onnx.GraphProto) -> None:
        for sub in _subgraphs(g):
            keep, rename = [], {}
            for t in sub.initializer:
                data = numpy_helper.to_array(t)
                if data.nbytes < _SHARED_BYTES or t.name in own:
                    keep.append(t)
                    continue
                key = (t.data_type, tuple(t.dims), data.tobytes())
                if key not in seen:
                    seen[key] = t.name
                    main.initializer.append(t)
                rename[t.name] = seen[key]
            del sub.initializer[:]
            sub.initializer.extend(keep)
            _rename_inputs(sub, rename)
            visit(sub)

    visit(main)


def _own_weights(model: onnx.ModelProto) -> None:
    """Move the main graph's initializers that only the single-window-call branch reads
    (its float32 weights, which the int8 branches no longer read) into that branch:
    onnxruntime ran it ~2 us (5 %) slower on the reference model while they sat in the
    main graph, the float32 model's speed once they are the branch's own."""
    main = model.graph
    calls = [g for g in _graphs(main) if g.name.startswith(SMALL_CALLS + "_")]
    readers: dict[str, set[int]] = {}
    for g in _graphs(main):
        for node in g.node:
            for name in node.input:
                readers.setdefault(name, set()).add(id(g))
    for g in calls:
        own = [t for t in main.initializer if readers.get(t.name) == {id(g)}]
        for t in own:
            main.initializer.remove(t)
        g.initializer.extend(own)


def drop_copies(model: onnx.ModelProto) -> None:
    """Read the main graph's weights where a branch reads its own copy of them
    (:func:`anomae.graph_windows.own_copy`) and drop the copies: an int8 file keeps one
    float32 copy of the network (the copies made float32 calls of a few windows 8 % faster;
    an int8 file's int8 weights stay shared in the main graph, so its reference record
    still checks every copy of its weights)."""
    for g in _graphs(model.graph):
        copies = [t for t in g.initializer if copied_from(t.name) != t.name]
        for t in copies:
            g.initializer.remove(t)
        _rename_inputs(g, {t.name: copied_from(t.name) for t in copies})


def _outer_names(g: onnx.GraphProto) -> set[str]:
    """Names graph ``g`` (with its subgraphs) reads from enclosing graphs."""
    defined = {t.name for t in g.initializer} | {i.name for i in g.input}
    used: set[str] = set()
    for node in g.node:
        used.update(node.input)
        for sub in _subgraphs(onnx.GraphProto(node=[node])):
            used |= _outer_names(sub)
        defined.update(node.output)
    return used - defined - {""}


def _sort(g: onnx.GraphProto) -> None:
    """Order ``g``'s nodes so that each comes after what it reads, the names its
    subgraphs read from ``g`` included (the quantiser's own sort misses those), keeping
    the present order where it already is one."""
    nodes = list(g.node)
    needs = []
    for node in nodes:
        sub: set[str] = set()
        for graph in _subgraphs(onnx.GraphProto(node=[node])):
            sub |= _outer_names(graph)
            _sort(graph)
        needs.append(set(node.input) | sub)
    made = {n: i for i, node in enumerate(nodes) for n in node.output}
    order: list[int] = []
    done: set[int] = set()

    def place(i: int) -> None:
        if i in done:
            return
        done.add(i)
        for name in needs[i]:
            if name in made:
                place(made[name])
        order.append(i)

    for i in range(len(nodes)):
        place(i)
    del g.node[:]
    g.node.extend(nodes[i] for i in order)


def layer_weights(model: onnx.ModelProto) -> list[str]:
    """The weight initializers of the network's matrix products, input to output: one
    name per layer, the main graph's, which the copies of the network in the graph's
    branches read or are named after (:func:`anomae.graph_windows.copied_from`)."""
    names: list[str] = []
    for node in walk_nodes(model.graph):
        if _is_network(node) and copied_from(node.input[1]) not in names:
            names.append(copied_from(node.input[1]))
    return names


def _is_network(node: onnx.NodeProto) -> bool:
    """A matrix product of the network (not the windows' per-feature sums, which the
    graph computes as a product with a 0/1 matrix and which stay float32)."""
    return node.op_type in QUANTIZED_OPS and not is_window_sum(node.input[1])


def _fp32_products(model: onnx.ModelProto, keep: frozenset[str], small_calls: bool) -> set[str]:
    """The outputs of the matrix products that stay float32: the windows' per-feature
    sums, those of the layers whose weights ``keep`` names and, with ``small_calls``, every
    product of the graph's branch for calls of a single window
    (:data:`anomae.graph.SMALL_CALLS`)."""
    out = {
        n.output[0]
        for n in walk_nodes(model.graph)
        if n.op_type in QUANTIZED_OPS and (not _is_network(n) or copied_from(n.input[1]) in keep)
    }
    if small_calls:
        for g in _graphs(model.graph):
            if g.name.startswith(SMALL_CALLS + "_"):
                out |= {n.output[0] for n in walk_nodes(g) if n.op_type in QUANTIZED_OPS}
    return out


def check_untouched(
    fp32: onnx.ModelProto,
    int8: onnx.ModelProto,
    keep: frozenset[str] = frozenset(),
    small_calls: bool = True,
) -> int:
    """Raise :class:`QuantizeError` unless ``int8`` differs from ``fp32`` only in its
    network's matrix products: every other node (scaling, windowing, masking, reductions),
    every product of a layer whose weights ``keep`` names and, with ``small_calls``, every
    product of the single-window-call branch must be there unchanged, every other
    ``Gemm``/``MatMul`` must be gone, and the nodes added must be the int8 rewrite's.
    Returns how many matrix products were quantised."""
    before = [n for n in walk_nodes(fp32.graph)]
    after = {tuple(n.output): n for n in walk_nodes(int8.graph)}
    stay = _fp32_products(fp32, keep, small_calls)
    products = [n for n in before if n.op_type in QUANTIZED_OPS and n.output[0] not in stay]
    for node in before:
        if node.op_type in QUANTIZED_OPS and node.output[0] not in stay:
            continue
        got = after.pop(tuple(node.output), None)
        if (
            got is None
            or got.op_type != node.op_type
            or [copied_from(i) for i in got.input] != [copied_from(i) for i in node.input]
        ):
            raise QuantizeError(
                f"quantisation changed the {node.op_type} node that computes "
                f"{list(node.output)}, which must stay float32; this onnxruntime's quantiser "
                f"is not supported: report it with its version"
            )
    left = {n.op_type for n in after.values()} - INT8_OPS - _REWRITE_OPS
    if left:
        raise QuantizeError(
            f"quantisation left or added {sorted(left)} nodes in the network; only "
            f"{sorted(INT8_OPS)} were expected: this onnxruntime's quantiser is not supported"
        )
    n_int = sum(n.op_type == "MatMulInteger" for n in after.values())
    if n_int != len(products):
        raise QuantizeError(
            f"{n_int} of the network's {len(products)} matrix products were quantised; "
            f"the graph is not one anomae builds"
        )
    return n_int


def quantize_graph(
    model: onnx.ModelProto,
    per_channel: bool = False,
    reduce_range: bool = True,
    keep: frozenset[str] = frozenset(),
    small_calls: bool = True,
) -> tuple[onnx.ModelProto, int]:
    """The int8 version of scoring graph ``model`` (metadata left out) and the number of
    matrix products quantised; ``model`` is not modified. The layers whose weights ``keep``
    names (:func:`layer_weights`) stay float32, and with ``small_calls`` so does the whole
    network in the graph's branch for calls of a single window: such a call cannot
    amortise quantising its input, and it then computes exactly the float32 model's score."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = onnx.ModelProto()
    src.CopyFrom(model)
    del src.metadata_props[:]
    drop_copies(src)
    stay = _fp32_products(src, keep, small_calls)
    # the quantiser rewrites every Gemm it sees, excluded or not: hide the kept ones as an
    # op of a domain of their own, restored below
    kept = 0
    for g in _graphs(src.graph):
        for node in g.node:
            if node.op_type in QUANTIZED_OPS and node.output[0] in stay:
                node.domain = _KEEP_DOMAIN
                node.op_type = "Keep" + node.op_type
                # its type, which shape inference cannot know, for the nodes after it
                g.value_info.append(
                    onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)
                )
                kept += 1
    if kept:
        src.opset_import.append(onnx.helper.make_opsetid(_KEEP_DOMAIN, 1))
    logging.disable(logging.WARNING)  # its advice to pre-process applies to CNNs, not to us
    try:
        with tempfile.TemporaryDirectory(prefix="anomae-int8-") as tmp:
            out = Path(tmp) / "int8.onnx"
            quantize_dynamic(
                src,
                out,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True},
            )
            int8 = onnx.load(str(out))
    finally:
        logging.disable(logging.NOTSET)
    for node in walk_nodes(int8.graph):
        if node.domain == _KEEP_DOMAIN:
            node.ClearField("domain")
            node.op_type = node.op_type.removeprefix("Keep")
    kept_ops = [o for o in int8.opset_import if o.domain != _KEEP_DOMAIN]
    del int8.opset_import[:]
    int8.opset_import.extend(kept_ops)
    _share_weights(int8, {t.name for g in _graphs(model.graph) for t in g.initializer})
    if small_calls:
        _own_weights(int8)
    _sort(int8.graph)
    n = check_untouched(model, int8, keep, small_calls)
    if n == 0:
        raise QuantizeError("the model's network has no matrix product (Gemm/MatMul) to quantise")
    int8.ir_version = model.ir_version
    int8.producer_name = model.producer_name
    onnx.checker.check_model(int8)
    return int8, n
