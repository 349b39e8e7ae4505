"""int8 scoring: quantise a model's matrix products, and write it only if its alarms hold.

:func:`quantize_graph` rewrites the scoring graph of :mod:`anomae.graph` with onnxruntime's
*dynamic* quantisation: every ``Gemm``/``MatMul`` of the network gets int8 weights (stored
once, shared by the graph's four windowing branches) and quantises its input per call
(``DynamicQuantizeLinear`` + ``MatMulInteger``). Everything else stays float32 and is
checked node by node to be unchanged: the scaler, the windowing, the missing-value mask, the
score, feature-error and coverage reductions. Convolutions stay float32 (int8 ``Conv`` was
not measured); a conv autoencoder gets its dense bottleneck quantised.

Weights are quantised to 7 bits (``reduce_range``) by default: on CPUs without VNNI,
onnxruntime's u8 x s8 kernel adds pairs of products in saturating 16-bit arithmetic, which
full-range weights can overflow; at 7 bits no pair can, so every CPU computes the same
integers and the reference-window self-check (:mod:`anomae.reference`) holds wherever the
model is loaded.

Static quantisation (QDQ, fixed activation ranges from calibration windows) was not kept:
onnxruntime 1.32 quantises subgraphs in dynamic mode only, and the network lives inside the
graph's ``If`` branches. A consequence of dynamic quantisation: each call quantises the
inputs of all its windows with one range, so a window's int8 score depends slightly on
the other windows in the same call (see ``bench/score_bench.py``).

:func:`quantize_model` scores held-out normal data with both graphs, applies the gate of
:mod:`anomae.quantize_gate` and writes the int8 model, with the gate's figures in its card
(``ModelCard.quantization``) and the reference windows re-scored by the int8 graph, only
when the gate passes.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from anomae.quantize_gate import GateSettings, gate_figures, refuse_unless_passed

QUANTIZED_OPS = ("Gemm", "MatMul")
INT8_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger"})
# the ops a quantised Gemm/MatMul becomes besides INT8_OPS: scale product, cast, bias
_REWRITE_OPS = frozenset({"Mul", "Cast", "Add"})
_SHARED_BYTES = 64  # hoist quantised weights this large out of the branches, once each


class QuantizeError(ValueError):
    """The model cannot be quantised (not found, already int8, no threshold, no windows)."""


@dataclass(frozen=True)
class QuantizeSettings:
    """How to quantise (``per_channel``: one weight scale per output column;
    ``reduce_range``: 7-bit weights, see the module docstring), the gate's settings, and
    the onnxruntime intra-op ``threads`` (0: all cores) the gate scores with."""

    per_channel: bool = False
    reduce_range: bool = True
    gate: GateSettings = GateSettings()
    threads: int = 0


def _subgraphs(g: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield a.g
            elif a.type == onnx.AttributeProto.GRAPHS:
                yield from a.graphs


def _nodes(g: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    yield from g.node
    for sub in _subgraphs(g):
        yield from _nodes(sub)


def _rename_inputs(g: onnx.GraphProto, rename: dict[str, str]) -> None:
    for node in _nodes(g):
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]


def _share_weights(model: onnx.ModelProto) -> None:
    """The quantiser gives each ``If`` branch its own copy of the int8 weights: keep one of
    each in the main graph, where every branch can read it."""
    main = model.graph
    seen: dict[tuple[int, tuple[int, ...], bytes], str] = {}

    def visit(g: onnx.GraphProto) -> None:
        for sub in _subgraphs(g):
            keep, rename = [], {}
            for t in sub.initializer:
                data = numpy_helper.to_array(t)
                if data.nbytes < _SHARED_BYTES:
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


def check_untouched(fp32: onnx.ModelProto, int8: onnx.ModelProto) -> int:
    """Raise :class:`QuantizeError` unless ``int8`` differs from ``fp32`` only in its
    network's matrix products: every other node (scaling, windowing, masking, reductions)
    must be there unchanged, every ``Gemm``/``MatMul`` must be gone, and the nodes added
    must be the int8 rewrite's. Returns how many matrix products were quantised."""
    before = [n for n in _nodes(fp32.graph)]
    after = {tuple(n.output): n for n in _nodes(int8.graph)}
    products = [n for n in before if n.op_type in QUANTIZED_OPS]
    for node in before:
        if node.op_type in QUANTIZED_OPS:
            continue
        got = after.pop(tuple(node.output), None)
        if got is None or got.op_type != node.op_type or list(got.input) != list(node.input):
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
    model: onnx.ModelProto, per_channel: bool = False, reduce_range: bool = True
) -> tuple[onnx.ModelProto, int]:
    """The int8 version of scoring graph ``model`` (metadata left out) and the number of
    matrix products quantised; ``model`` is not modified."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = onnx.ModelProto()
    src.CopyFrom(model)
    del src.metadata_props[:]
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
    _share_weights(int8)
    _sort(int8.graph)
    n = check_untouched(model, int8)
    if n == 0:
        raise QuantizeError("the model's network has no matrix product (Gemm/MatMul) to quantise")
    int8.ir_version = model.ir_version
    int8.producer_name = model.producer_name
    onnx.checker.check_model(int8)
    return int8, n


def _session(model: onnx.ModelProto, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def quantize_model(
    model_path: str | Path,
    blocks: Sequence[np.ndarray],
    out_path: str | Path,
    *,
    names: Sequence[str] | None = None,
    interval_s: float | None = None,
    settings: QuantizeSettings = QuantizeSettings(),
) -> dict[str, Any]:
    """Quantise ``model_path`` to int8 and write it to ``out_path`` if the gate passes.

    ``blocks`` are held-out normal rows ``[rows, F]`` (one per series, in time order),
    ``names`` their series names (for per-series thresholds; default: none of the card's
    apply), ``interval_s`` the seconds between rows (for false events per day; default: the
    card's). Raises :class:`~anomae.quantize_gate.GateRefused` (nothing written) when the
    int8 model would change the alarms, :class:`QuantizeError` on an unusable model or
    data. Returns the figures recorded in the written card's ``quantization``."""
    from anomae.detector import Detector
    from anomae.modelfile import card_from_onnx, load_onnx, write_model
    from anomae.reference import ReferenceMismatch, check_graph

    fp32 = Detector.load(model_path, threads=settings.threads)
    card = fp32.card
    if card.quantization:
        raise QuantizeError(
            f"{model_path}: is already quantised ({card.quantization.get('dtype')}); "
            f"quantise the float32 model it came from"
        )
    if card.threshold is None:
        raise QuantizeError(
            f"{model_path}: has no threshold, and the gate compares alarms at it: run "
            f"`anomae calibrate {model_path} DATA` first"
        )
    if names is not None and len(names) != len(blocks):
        raise QuantizeError(f"{len(names)} series names for {len(blocks)} row blocks")
    proto = load_onnx(model_path)
    card_from_onnx(proto, model_path)
    int8_proto, n_products = quantize_graph(proto, settings.per_channel, settings.reduce_range)
    int8 = Detector(_session(int8_proto, settings.threads), card, str(out_path), "")

    used = [(i, b) for i, b in enumerate(blocks) if card.window.count(b.shape[0]) > 0]
    if not used:
        raise QuantizeError(
            f"the data holds no complete window of {card.window.length} rows: give held-out "
            f"normal data with at least that many rows per series"
        )
    series = [names[i] if names is not None else f"#{i}" for i, _ in used]
    scored = [(fp32.score_series(b).score, int8.score_series(b).score) for _, b in used]
    figures = gate_figures(
        [s for s, _ in scored],
        [s for _, s in scored],
        series if names is not None else None,
        card,
        interval_s,
        settings.gate,
    )
    refuse_unless_passed(figures)

    quantization = {
        "dtype": "int8",
        "method": "dynamic",
        "ops": list(QUANTIZED_OPS),
        "quantized_products": n_products,
        "per_channel": settings.per_channel,
        "reduce_range": settings.reduce_range,
        "source_sha256": fp32.sha256,
        "gate": figures,
    }
    parity = dict(card.parity)
    ref = parity.get("reference")
    if ref:  # the int8 graph's own scores, so the self-check still catches a damaged file
        rows = np.asarray(ref["rows"], np.float32)[None]
        parity["reference"] = {**ref, "score": [float(v) for v in int8.run(rows)[0][0]]}
    new_card = replace(card, parity=parity, quantization=quantization)
    try:
        check_graph(int8.run, new_card)
    except ReferenceMismatch as exc:
        raise QuantizeError(f"the int8 graph fails its own self-check: {exc}") from exc
    write_model(int8_proto, new_card, out_path)
    return quantization
