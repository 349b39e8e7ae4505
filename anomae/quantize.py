"""int8 scoring: quantise a model's matrix products, and write it only if its alarms hold.

:func:`quantize_model` rewrites the scoring graph with onnxruntime's *dynamic* quantisation
(:mod:`anomae.int8_graph`: int8 weights, each input quantised per call; scaling, windowing,
missing-value mask and score stay float32), scores held-out normal data with both graphs,
applies the gate of :mod:`anomae.quantize_gate` and writes the int8 model, with the gate's
figures in its card (``ModelCard.quantization``) and the reference windows re-scored by the
int8 graph (and the first alone, a single-window call: float32), only when the gate passes.

**Mixed precision.** Where the whole network in int8 fails the gate, the layers go back to
float32 one at a time until it passes (``backoff``): each layer alone in int8 is scored
first, and the layer whose int8 copy ranks the scores worst goes back first. On the demo
model (256-256-32-256-256) the int8 noise of every layer adds up to a Spearman of 0.996;
the first layer alone in int8 keeps 0.9997 and 44 % of the network's multiply-adds. The
card records which layers stayed float32 (``fp32_layers``, numbered from the input) and
every attempt (``backoff``). When no layer can be int8, nothing is written.

Weights are quantised to 7 bits (``reduce_range``) by default: on CPUs without VNNI,
onnxruntime's u8 x s8 kernel adds pairs of products in saturating 16-bit arithmetic, which
full-range weights can overflow; at 7 bits no pair can, so every CPU computes the same
integers and the reference-window self-check (:mod:`anomae.reference`) holds wherever the
model is loaded. One weight scale per output column (``per_channel``, the default) ranked
closer to float32 than one per matrix on every trained model measured (demo 0.9964 vs
0.9947, NAB 0.9946 vs 0.9904, all layers int8) at no measurable cost.

**Single-window calls stay float32.** Quantising a call's input costs time that a call of
one window cannot win back (0.97x float32's speed on the reference model; 1.4x faster from
two windows, 2x at 64), so the graph's branch for calls of a single window (batch-1 calls,
a monitor micro-batch of one series) keeps its float32 products and gives exactly the
float32 model's score (``"small_calls": "fp32"`` in the card). The gate scores the
held-out series in calls as large as ``anomae score`` makes on CPU, so what it
measures is the int8 path; the single-window path is the float32 model's by construction.

**Speed is measured, not assumed.** After the gate, both models are timed on calls of up
to a CPU call's worth of the calibration windows (:func:`measure_speed`: 1,024 for the
reference 64x8 model, :attr:`~anomae.detector.Detector.chunk_windows`) and the card records it
(``quantization["speed"]``). On small models int8 is slower: the SKAB and NAB models'
products (8-64 columns) are ~15 % of a call and took longer in int8 (quantising each
input costs more than their int8 arithmetic saves), so int8 ran 0.84-0.98x float32's
speed; below :data:`MIN_SPEEDUP` the output and ``inspect`` say to keep the float32 model.

Static quantisation (activation ranges fixed from the calibration windows; onnxruntime 1.32
quantises subgraphs in dynamic mode only, so ``bench/int8_static.py`` writes it by hand) was
measured and not adopted (docs/benchmarks.md): on the reference, demo, SKAB and NAB models
it ranked the same or slightly worse, kept the same layers float32, scored no faster, and
ranked windows with anomalies worse (a fixed range clips inputs beyond normal data). A
consequence of dynamic quantisation: each call quantises the inputs of all its windows with
one range, so a window's int8 score depends slightly on the other windows in the same call
(up to 1 % on the demo model; see ``bench/score_bench.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from anomae.int8_graph import QUANTIZED_OPS, QuantizeError, layer_weights, quantize_graph
from anomae.quantize_gate import (
    GateRefused,
    GateSettings,
    gate_figures,
    gate_text,
    refuse_unless_passed,
)

__all__ = [
    "QuantizeError",
    "QuantizeSettings",
    "measure_speed",
    "quantize_beside",
    "quantize_model",
]

# int8 that is not this much faster is not worth its (small) change of the scores
MIN_SPEEDUP = 1.05


@dataclass(frozen=True)
class QuantizeSettings:
    """How to quantise (``per_channel``: one weight scale per output column;
    ``reduce_range``: 7-bit weights; ``backoff``: return layers to float32 until the gate
    passes; see the module docstring), the gate's settings, the onnxruntime intra-op
    ``threads`` (0: all cores) the gate scores with, and the seconds ``speed_s`` spent
    timing both models (:func:`measure_speed`)."""

    per_channel: bool = True
    reduce_range: bool = True
    backoff: bool = True
    gate: GateSettings = GateSettings()
    threads: int = 0
    speed_s: float = 0.4


def _session(model: onnx.ModelProto, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@dataclass
class _Attempt:
    """One int8 graph tried: the layers it keeps float32, its graph and gate figures."""

    fp32_layers: list[int]
    proto: onnx.ModelProto
    products: int
    figures: dict[str, Any]
    detector: Any

    def summary(self) -> dict[str, Any]:
        f = self.figures
        return {"fp32_layers": self.fp32_layers, "spearman": f["spearman"], "passed": f["passed"]}


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
    card's). Raises :class:`~anomae.quantize_gate.GateRefused` (nothing written) when no
    int8 graph tried keeps the alarms, :class:`QuantizeError` on an unusable model or
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
    used = [(i, b) for i, b in enumerate(blocks) if card.window.count(b.shape[0]) > 0]
    if not used:
        raise QuantizeError(
            f"the data holds no complete window of {card.window.length} rows: give held-out "
            f"normal data with at least that many rows per series"
        )
    series = [names[i] if names is not None else f"#{i}" for i, _ in used]
    scores32 = [fp32.score_series(b).score for _, b in used]
    weights = layer_weights(proto)

    def attempt(fp32_layers: Sequence[int]) -> _Attempt:
        keep = frozenset(weights[k] for k in fp32_layers)
        int8_proto, n = quantize_graph(proto, settings.per_channel, settings.reduce_range, keep)
        det = Detector(_session(int8_proto, settings.threads), card, str(out_path), "")
        figures = gate_figures(
            scores32,
            [det.score_series(b).score for _, b in used],
            series if names is not None else None,
            card,
            interval_s,
            settings.gate,
        )
        return _Attempt(sorted(fp32_layers), int8_proto, n, figures, det)

    tried = [attempt([])]
    if not tried[0].figures["passed"] and settings.backoff and len(weights) > 1:
        tried += _back_off(len(weights), attempt)
    chosen = next((a for a in tried if a.figures["passed"]), None)
    if chosen is None:
        _refuse(tried, len(weights))
    assert chosen is not None
    int8 = chosen.detector
    quantization = {
        "dtype": "int8",
        "method": "dynamic",
        "ops": list(QUANTIZED_OPS),
        "quantized_products": chosen.products,
        "layers": len(weights),
        "fp32_layers": chosen.fp32_layers,
        "small_calls": "fp32",
        "backoff": [a.summary() for a in tried] if len(tried) > 1 else [],
        "per_channel": settings.per_channel,
        "reduce_range": settings.reduce_range,
        "source_sha256": fp32.sha256,
        "gate": chosen.figures,
        "speed": measure_speed(fp32, int8, [b for _, b in used], settings.speed_s),
    }
    parity = dict(card.parity)
    ref = parity.get("reference")
    if ref:  # the int8 graph's own scores, so the self-check still catches a damaged file
        rows = np.asarray(ref["rows"], np.float32)[None]
        parity["reference"] = {
            **ref,
            "score": [float(v) for v in int8.run(rows)[0][0]],
            "single": float(int8.run(rows[:, : card.window.length])[0][0][0]),  # float32's
        }
    new_card = replace(card, parity=parity, quantization=quantization)
    try:
        check_graph(int8.run, new_card)
    except ReferenceMismatch as exc:
        raise QuantizeError(f"the int8 graph fails its own self-check: {exc}") from exc
    write_model(chosen.proto, new_card, out_path)
    return quantization


def quantize_beside(
    model_path: Path, blocks: Sequence[np.ndarray], names: Sequence[str] | None
) -> dict[str, Any]:
    """``[export] quantize = "int8"`` of ``anomae run``: :func:`quantize_model` of
    ``model_path`` on its calibration ``blocks`` to ``model.int8.onnx`` beside it. A refusal
    is reported, not raised, and removes a ``model.int8.onnx`` an earlier run left there (it
    was another model's). Returns the report's ``int8`` entry: ``path``, ``written``, and
    the card's ``quantization`` figures or ``refused`` (why) with the ``gate`` figures."""
    out = model_path.with_name(f"{model_path.stem}.int8.onnx")
    try:
        q = quantize_model(model_path, blocks, out, names=names)
    except (GateRefused, QuantizeError) as exc:
        out.unlink(missing_ok=True)
        return {
            "path": str(out),
            "written": False,
            "refused": str(exc),
            "gate": getattr(exc, "figures", {}),
        }
    return {"path": str(out), "written": True, **q}


def measure_speed(
    fp32: Any, int8: Any, blocks: Sequence[np.ndarray], seconds: float
) -> dict[str, Any]:
    """Both models' speed on the calibration rows: the longest block's first
    ``fp32.chunk_windows`` windows (as ``anomae score`` calls the graph), each model called
    back to back in short turns for about ``seconds`` in all; medians per call. ``speedup``
    is float32's time over int8's: below :data:`MIN_SPEEDUP` the int8 model gives this
    model no speed (``worth`` false): its products are too small a part of the call (on
    the SKAB and NAB models ~15 %, and int8 products of 8-64 columns are no faster)."""
    window = fp32.card.window
    rows = max(blocks, key=len)
    n = min(fp32.chunk_windows, window.count(rows.shape[0]))
    call = np.ascontiguousarray(rows[: (n - 1) * window.stride + window.length], np.float32)[None]
    times: dict[str, list[float]] = {"fp32": [], "int8": []}
    for det in (fp32, int8):
        det.run(call)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times["int8"]) < 5:
        for name, det in (("fp32", fp32), ("int8", int8)):
            t0 = time.perf_counter()
            det.run(call)
            times[name].append(time.perf_counter() - t0)
    t32, t8 = (float(np.median(times[k])) for k in ("fp32", "int8"))
    return {
        "windows_per_call": n,
        "fp32_us": round(t32 * 1e6, 1),
        "int8_us": round(t8 * 1e6, 1),
        "speedup": round(t32 / t8, 3),
        "worth": t32 / t8 >= MIN_SPEEDUP,
    }


def _back_off(n_layers: int, attempt: Any) -> list[_Attempt]:
    """The attempts after the all-int8 one failed: the layers back to float32 one at a
    time, the one whose int8 copy alone ranks worst first, until an attempt passes (the
    last keeps only the least damaging layer int8)."""
    alone = {k: attempt([j for j in range(n_layers) if j != k]) for k in range(n_layers)}

    def rank(k: int) -> float:
        rho = alone[k].figures["spearman"]
        return -math.inf if math.isnan(rho) else float(rho)

    order = sorted(range(n_layers), key=rank)  # the most rank-damaging first
    tried: list[_Attempt] = []
    for i in range(1, n_layers):
        a = alone[order[-1]] if i == n_layers - 1 else attempt(order[:i])
        tried.append(a)
        if a.figures["passed"]:
            break
    return tried


def _refuse(tried: list[_Attempt], n_layers: int) -> None:
    """Raise :class:`GateRefused` with the all-int8 figures, and the last fallback's."""
    also = ""
    if len(tried) > 1:
        last = tried[-1]
        int8_layers = [k for k in range(n_layers) if k not in last.fp32_layers]
        also = (
            f"; with layers returned to float32 one at a time it failed too, down to only "
            f"layer {int8_layers} in int8: {gate_text(last.figures)}"
        )
    refuse_unless_passed(tried[0].figures, also)
