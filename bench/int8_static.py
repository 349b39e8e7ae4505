"""Static vs dynamic int8 on the reference, demo, SKAB and NAB models: gate, backoff, speed.

``anomae quantize`` ships onnxruntime's *dynamic* quantisation (:mod:`anomae.int8_graph`):
each matrix product's input is quantised with a range measured per call. This script builds
the *static* alternative and measures both side by side: the same int8 weights (7-bit,
one scale per output column) and the same layers, but every product's input is quantised
with a scale and zero point fixed from the calibration windows the gate scores, so no
per-call range work and no dependence of a window's score on the other windows of its
call. Two static forms are measured: ``static`` (:func:`static_graph`: ``QuantizeLinear``
with constants in place of ``DynamicQuantizeLinear``, the same ``MatMulInteger`` products)
and ``fused`` (:func:`fused_graph`: QOperator ``QGemm`` with an int32 bias, writing uint8
straight into the next int8 layer, so activations stay uint8 between int8 layers).

onnxruntime's ``quantize_static`` cannot do this for us: it quantises subgraphs in dynamic
mode only, and the network lives in the graph's windowing ``If`` branches. So the static
graph is the dynamic one rewritten by hand, and the activation ranges are read by a copy of
the float32 graph whose branches also return each product's input (:func:`expose_inputs`).
Ranges: ``minmax`` (the default) or ``percentile`` (``--percentile 99.99``, clipping the
tails) over all calibration windows, widened to hold 0 (uint8, asymmetric, as the dynamic
quantiser does) and, with ``--headroom``, by that factor (room for inputs beyond normal).

For each model and mode: the gate's figures (:mod:`anomae.quantize_gate`) with the mixed-
precision backoff of :mod:`anomae.quantize` (which layers stay float32), and int8/fp32
speed at 1, 64 and 1,024 windows per call against float32 and against dynamic (one thread;
each graph's session called back to back for ``--seconds``, the graphs in turn, in a
rotated order each round; median of ``--rounds`` rounds' ratios; the machines are shared
and noisy: read the ratios, and rerun). Calling the sessions in turn one call each instead
flattered the graphs with the smallest footprint (cold caches: 1.7x dynamic's speed for
``fused`` at 1,024 windows, 1.0-1.08x back to back), which a scoring process does not see. With
``--test`` the scores of windows with anomalies (demo test period) are ranked too, since a
fixed range clips inputs far outside normal data, which the gate's normal windows never show.

Models: the reference model (``bench/score_bench.py``'s, random weights, gated at Spearman
0.9 on random rows, as there); the others are ``anomae run`` outputs given as
``NAME=MODEL.onnx:PIPELINE.toml`` (the gate's windows are that pipeline's held-out
calibration rows, as ``[export] quantize = "int8"`` uses them). ``--make DIR`` trains the
demo, SKAB and NAB models of the measurement into DIR first (:func:`make_models`; needs
torch and ``--datasets``, default ``../shared/datasets``; a missing data set is skipped)::

    python bench/int8_static.py --make /tmp/int8-models --test [--rounds 5] [--seconds 0.4]
    python bench/int8_static.py --model demo=runs/demo/model.onnx:pipelines/demo.toml
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from anomae.int8_graph import (
    QUANTIZED_OPS,
    drop_copies,
    layer_weights,
    quantize_graph,
    walk_nodes,
)

CALL_WINDOWS = 2048  # windows per call, as Detector.score_series scores


def _branches(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    return [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]


def expose_inputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy of float32 scoring graph ``model`` that also returns, for each layer (its
    weight name, :func:`layer_weights`), the input of its matrix product: the branches of
    every ``If`` on the way return it as an extra output. Returns the copy and the output
    name of each layer's input."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    layers = set(layer_weights(model))

    def visit(g: onnx.GraphProto) -> dict[str, str]:
        found: dict[str, str] = {}
        for node in g.node:
            if node.op_type in QUANTIZED_OPS and node.input[1] in layers:
                found.setdefault(node.input[1], node.input[0])
            elif node.op_type == "If":
                subs = _branches(node)
                got = [visit(s) for s in subs]
                for w in sorted(set.intersection(*(set(d) for d in got))):
                    for s, d in zip(subs, got, strict=True):
                        s.output.append(
                            helper.make_tensor_value_info(d[w], TensorProto.FLOAT, None)
                        )
                    name = f"{node.output[0]}__in_{w}"
                    node.output.append(name)
                    found.setdefault(w, name)
        return found

    found = visit(out.graph)
    for name in found.values():
        out.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return out, found


def session(model: onnx.ModelProto, threads: int = 1) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def activation_ranges(
    model: onnx.ModelProto,
    blocks: Sequence[np.ndarray],
    length: int,
    percentile: float | None = None,
    threads: int = 1,
    headroom: float = 1.0,
) -> dict[str, tuple[float, float]]:
    """Each layer's input range over all windows of ``blocks`` (rows ``[rows, F]``), scored
    in calls of up to :data:`CALL_WINDOWS` windows (stride 1): min/max, or the
    ``percentile`` and its mirror; always holding 0; both ends times ``headroom``."""
    exposed, names = expose_inputs(model)
    sess = session(exposed, threads)
    layers = list(names)
    fetch = [names[w] for w in layers]
    parts: dict[str, list[np.ndarray]] = {w: [] for w in layers}
    for rows in blocks:
        n = rows.shape[0] - length + 1
        for first in range(0, max(n, 0), CALL_WINDOWS):
            k = min(CALL_WINDOWS, n - first)
            if k < 2:  # a one-window call runs the float32 branch: not quantised
                continue
            chunk = np.ascontiguousarray(rows[first : first + k + length - 1][None], np.float32)
            for w, a in zip(layers, sess.run(fetch, {"rows": chunk}), strict=True):
                parts[w].append(np.asarray(a, np.float32).reshape(-1))
    out = {}
    for w in layers:
        v = np.concatenate(parts[w])
        v = v[np.isfinite(v)]
        if percentile is None:
            lo, hi = float(v.min()), float(v.max())
        else:
            lo, hi = (float(x) for x in np.percentile(v, [100.0 - percentile, percentile]))
        out[w] = (min(lo, 0.0) * headroom, max(hi, 0.0) * headroom)
    return out


def uint8_params(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point of asymmetric uint8 over ``[lo, hi]`` (holding 0), as
    ``DynamicQuantizeLinear`` computes them from a call's own range."""
    scale = (hi - lo) / 255.0 or 1.0
    return scale, int(np.clip(round(-lo / scale), 0, 255))


def static_graph(
    fp32: onnx.ModelProto,
    dynamic: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
) -> onnx.ModelProto:
    """``dynamic`` (:func:`anomae.int8_graph.quantize_graph` of ``fp32``) with each
    ``DynamicQuantizeLinear`` replaced by a ``QuantizeLinear`` with the fixed scale and zero
    point of its layer's input range, its scale and zero-point outputs by constants."""
    layer_of = {
        n.input[0]: n.input[1] for n in walk_nodes(fp32.graph) if n.op_type in QUANTIZED_OPS
    }
    out = onnx.ModelProto()
    out.CopyFrom(dynamic)

    def visit(g: onnx.GraphProto) -> None:
        nodes = []
        for node in g.node:
            for s in _branches(node):
                visit(s)
            if node.op_type != "DynamicQuantizeLinear":
                nodes.append(node)
                continue
            x = node.input[0]
            y, y_scale, y_zp = node.output
            scale, zp = uint8_params(*ranges[layer_of[x]])
            s_val = numpy_helper.from_array(np.array(scale, np.float32), y_scale)
            z_val = numpy_helper.from_array(np.array(zp, np.uint8), y_zp)
            nodes.append(helper.make_node("Constant", [], [y_scale], value=s_val))
            nodes.append(helper.make_node("Constant", [], [y_zp], value=z_val))
            nodes.append(helper.make_node("QuantizeLinear", [x, y_scale, y_zp], [y]))
        del g.node[:]
        g.node.extend(nodes)

    visit(out.graph)
    onnx.checker.check_model(out)
    return out


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}

    def visit(g: onnx.GraphProto) -> None:
        for t in g.initializer:
            out[t.name] = numpy_helper.to_array(t)
        for node in g.node:
            for s in _branches(node):
                visit(s)

    visit(model.graph)
    return out


def fused_graph(
    fp32: onnx.ModelProto,
    dynamic: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
) -> onnx.ModelProto:
    """The static graph in QOperator form: each int8 product of ``dynamic`` (the group
    ``DynamicQuantizeLinear`` -> ``MatMulInteger`` -> ``Cast`` -> ``Mul`` -> ``Add``) becomes
    ``QuantizeLinear`` -> ``QGemm`` (onnxruntime's com.microsoft op, int32 bias), and where
    a product's output (after a ``Relu``) is only the next product's input, the ``QGemm``
    writes it in uint8 at the next layer's fixed scale: the activations stay uint8 between
    int8 layers (a ``Relu`` becomes the clamp at zero point 0)."""
    layer_of = {
        n.input[0]: n.input[1] for n in walk_nodes(fp32.graph) if n.op_type in QUANTIZED_OPS
    }
    inits = _initializers(dynamic)
    out = onnx.ModelProto()
    out.CopyFrom(dynamic)
    consts: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        consts.append(numpy_helper.from_array(value, name))
        return name

    def visit(g: onnx.GraphProto) -> None:
        for node in g.node:
            for s in _branches(node):
                visit(s)
        made = {o: n for n in g.node for o in n.output}
        users: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                users.setdefault(i, []).append(n)
        drop: set[int] = set()
        new: dict[int, list[onnx.NodeProto]] = {}
        for dq in g.node:
            if dq.op_type != "DynamicQuantizeLinear":
                continue
            x = dq.input[0]
            y = dq.output[0]
            mmi = next(u for u in users[y] if u.op_type == "MatMulInteger")
            cast = users[mmi.output[0]][0]
            mul = next(u for u in users[cast.output[0]] if u.op_type == "Mul")
            add = users[mul.output[0]][0]
            assert cast.op_type == "Cast" and add.op_type == "Add", (cast.op_type, add.op_type)
            smul = made[mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]]
            w_scale_name = smul.input[1] if smul.input[0] == dq.output[1] else smul.input[0]
            bias_name = add.input[1] if add.input[0] == mul.output[0] else add.input[0]
            sx, zx = uint8_params(*ranges[layer_of[x]])
            sw = inits[w_scale_name].astype(np.float32)
            bias = inits[bias_name].astype(np.float64)
            tag = mmi.output[0]
            bias_q = np.round(bias / (np.float64(sx) * sw.astype(np.float64))).astype(np.int32)
            a_s = const(f"{tag}__a_scale", np.array(sx, np.float32))
            a_z = const(f"{tag}__a_zp", np.array(zx, np.uint8))
            c = const(f"{tag}__bias_i32", bias_q)
            q = helper.make_node("QuantizeLinear", [x, a_s, a_z], [y])
            gemm = helper.make_node(
                "QGemm",
                [y, a_s, a_z, mmi.input[1], w_scale_name, mmi.input[3], c],
                [add.output[0]],
                domain="com.microsoft",
            )
            for k, n in enumerate(g.node):
                if n is dq:
                    new[k] = [q]
                elif n in (mmi, cast, mul, add, smul):
                    drop.add(k)
            new[[k for k, n in enumerate(g.node) if n is add][0]] = [gemm]
            drop.discard([k for k, n in enumerate(g.node) if n is add][0])
        nodes = []
        for k, n in enumerate(g.node):
            if k in new:
                nodes.extend(new[k])
            elif k not in drop:
                nodes.append(n)
        del g.node[:]
        g.node.extend(nodes)
        _fold(g, {t.name: int(numpy_helper.to_array(t)) for t in consts if t.name.endswith("_zp")})

    visit(out.graph)
    out.graph.initializer.extend(consts)
    if not any(o.domain == "com.microsoft" for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return out


def _fold(g: onnx.GraphProto, zero_points: dict[str, int]) -> None:
    """``QGemm`` (float out) [-> ``Relu``] -> ``QuantizeLinear`` (its only reader): the
    ``QGemm`` writes the quantised tensor itself (through a ``Relu`` only at zero point 0,
    where uint8 saturation is the ``Relu``)."""
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    drop: list[onnx.NodeProto] = []
    for gemm in list(g.node):
        if gemm.op_type != "QGemm" or len(gemm.input) > 7:
            continue
        chain = []
        nxt = users.get(gemm.output[0], [])
        if len(nxt) == 1 and nxt[0].op_type == "Relu":
            chain.append(nxt[0])
            nxt = users.get(nxt[0].output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "QuantizeLinear":
            continue
        q = nxt[0]
        if chain and zero_points.get(q.input[2]) != 0:
            continue
        gemm.input.extend([q.input[1], q.input[2]])
        gemm.output[0] = q.output[0]
        drop += chain + [q]
    keep = [n for n in g.node if not any(n is d for d in drop)]
    del g.node[:]
    g.node.extend(keep)


MODES = ("dynamic", "static", "fused")


def build(mode: str, fp32: onnx.ModelProto, keep: frozenset[str], ranges: Any) -> tuple[Any, int]:
    """The int8 graph of ``mode`` with the layers ``keep`` names float32, and its product
    count: ``dynamic`` (what ships), ``static`` (:func:`static_graph`), ``fused``
    (:func:`fused_graph`)."""
    dyn, n = quantize_graph(fp32, True, True, keep)
    if mode == "static":
        return static_graph(fp32, dyn, ranges), n
    if mode == "fused":
        return fused_graph(fp32, dyn, ranges), n
    return dyn, n


def gate_run(
    mode: str,
    model: Path,
    blocks: Sequence[np.ndarray],
    names: Sequence[str] | None,
    interval_s: float | None,
    ranges: Any,
    min_spearman: float,
) -> Any:
    """The gate with :mod:`anomae.quantize`'s backoff for ``mode``: the chosen attempt (or
    None when every one failed) and all attempts."""
    from anomae.detector import Detector
    from anomae.modelfile import load_onnx
    from anomae.quantize import _Attempt, _back_off
    from anomae.quantize_gate import GateSettings, gate_figures

    fp = Detector.load(model, threads=1)
    proto = load_onnx(model)
    drop_copies(proto)  # one weight name per layer, as quantize_graph's int8 files
    weights = layer_weights(proto)
    s32 = [fp.score_series(b).score for b in blocks]
    settings = GateSettings(min_spearman=min_spearman)

    def attempt(fp32_layers: Sequence[int]) -> Any:
        g, n = build(mode, proto, frozenset(weights[k] for k in fp32_layers), ranges)
        det = Detector(session(g), fp.card, "x", "")
        s8 = [det.score_series(b).score for b in blocks]
        figures = gate_figures(s32, s8, names, fp.card, interval_s, settings)
        return _Attempt(sorted(fp32_layers), g, n, figures, det)

    tried = [attempt([])]
    if not tried[0].figures["passed"] and len(weights) > 1:
        tried += _back_off(len(weights), attempt)
    return next((a for a in tried if a.figures["passed"]), None), tried


def per_call(sess: Any, rows: np.ndarray, seconds: float) -> float:
    """Median seconds per call of ``sess`` called back to back for ``seconds`` (a scoring
    process calls one session over and over: its weights and buffers stay in cache)."""
    for _ in range(3):
        sess.run(["score"], {"rows": rows})
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        sess.run(["score"], {"rows": rows})
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def speed(
    graphs: dict[str, Any], length: int, n_f: int, rounds: int, seconds: float
) -> dict[str, dict[int, tuple[float, float]]]:
    """Speed of each int8 graph at 1, 64 and 1,024 windows per call, one thread, as ratios
    to ``graphs["fp32"]`` and to ``graphs["dynamic"]`` (medians over ``rounds``)."""
    sessions = {k: session(g) for k, g in graphs.items()}
    rng = np.random.default_rng(0)
    out: dict[str, dict[int, tuple[float, float]]] = {k: {} for k in graphs if k != "fp32"}
    for b in (1, 64, 1024):
        rows = rng.normal(size=(1, b + length - 1, n_f)).astype(np.float32)
        per_round = []
        for r in range(rounds):  # each round in a rotated order, so no graph always runs first
            order = list(sessions)[r % len(sessions) :] + list(sessions)[: r % len(sessions)]
            per_round.append({k: per_call(sessions[k], rows, seconds) for k in order})
        for k in out:
            vs32 = np.median([t["fp32"] / t[k] for t in per_round])
            base = "dynamic" if "dynamic" in sessions else k
            vsdyn = np.median([t[base] / t[k] for t in per_round])
            out[k][b] = (float(vs32), float(vsdyn))
    return out


def held_out(model: Path, pipeline: Path) -> tuple[list[np.ndarray], list[str], Any]:
    """The pipeline's held-out calibration rows (as ``[export] quantize`` gates on), their
    series names, and the pipeline."""
    from anomae.holdout import split_holdout_named
    from anomae.io import read_series
    from anomae.modelfile import read_card
    from anomae.pipeline import load_pipeline

    pipe = load_pipeline(pipeline)
    card = read_card(model)
    series, _ = read_series(list(pipe.data.train), pipe.data.table(), features=card.features)
    _, cal, names = split_holdout_named(
        series, pipe.calibrate.holdout or 0.2, pipe.calibrate.holdout_spread, card.window.length
    )
    return cal, names, pipe


NAB_TOML = 'recipe = "univariate"\n[data]\ntrain = "nab.parquet"\n[train]\nprogress = false\n'
SKAB_TOML = (
    'recipe = "multivariate"\n[data]\ntrain = "skab.parquet"\n'
    '[calibrate]\nmethod = "quantile"\nq = 0.99\n[train]\nprogress = false\n'
)


def make_models(folder: Path, datasets: Path) -> list[str]:
    """Train the models the int8 figures were measured on, with ``anomae run`` (needs
    torch): the demo pipeline; NAB ``nyc_taxi`` (the whole file) with the univariate recipe;
    SKAB ``anomaly-free.csv`` with the multivariate recipe and a 0.99 quantile threshold
    (as ``pipelines/skab_anomaly_free.toml``). Returns ``--model`` values; a data set not
    under ``datasets`` is skipped with a message."""
    import subprocess
    import sys

    import polars as pl

    folder.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[1]
    nab = datasets / "nab" / "realKnownCause" / "nyc_taxi.csv"
    skab = datasets / "skab" / "anomaly-free" / "anomaly-free.csv"
    todo = [("demo", repo / "pipelines" / "demo.toml")]
    if nab.is_file():
        pl.read_csv(nab, try_parse_dates=True).write_parquet(folder / "nab.parquet")
        (folder / "nab.toml").write_text(NAB_TOML)
        todo.append(("nab", folder / "nab.toml"))
    else:
        print(f"skipped nab: {nab} not found")
    if skab.is_file():
        df = pl.read_csv(skab, separator=";", try_parse_dates=True)
        df.rename({"datetime": "timestamp"}).write_parquet(folder / "skab.parquet")
        (folder / "skab.toml").write_text(SKAB_TOML)
        todo.append(("skab", folder / "skab.toml"))
    else:
        print(f"skipped skab: {skab} not found")
    out = []
    for name, toml in todo:
        model = folder / name / "model.onnx"
        if not model.is_file():
            cmd = [sys.executable, "-m", "anomae.cli", "run", str(toml), "-o", str(folder / name)]
            subprocess.run(cmd + ["--threads", "1"], check=True, capture_output=True)
        out.append(f"{name}={model}:{toml}")
    return out


def test_rank(model: Path, pipe: Any, chosen: dict[str, Any]) -> dict[str, float]:
    """Spearman of each mode's scores vs float32 on the pipeline's test data (anomalies in)."""
    from anomae.detector import Detector
    from anomae.io import read_series
    from anomae.quantize_gate import spearman

    fp = Detector.load(model, threads=1)
    series, _ = read_series(list(pipe.data.test), pipe.data.table(), features=fp.card.features)
    s32 = np.concatenate([fp.score_series(s.values).score for s in series])
    out = {}
    for mode, a in chosen.items():
        if a is not None:
            s8 = np.concatenate([a.detector.score_series(s.values).score for s in series])
            ok = np.isfinite(s32) & np.isfinite(s8)
            out[mode] = spearman(s32[ok], s8[ok])
    return out


def fmt_gate(a: Any, n_layers: int) -> str:
    f = a.figures
    ev = (
        f" ev/day {f['events_per_day_int8']:.3g} vs {f['events_per_day_fp32']:.3g}"
        if ("events_per_day_int8" in f)
        else ""
    )
    return (
        f"rho {f['spearman']:.5f} FAR {f['far_int8']:.4g} vs {f['far_fp32']:.4g} "
        f"[{f['far_fp32_ci'][0]:.3g}-{f['far_fp32_ci'][1]:.3g}]{ev} "
        f"{'pass' if f['passed'] else 'FAIL'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", default=[], help="NAME=MODEL.onnx:PIPELINE.toml")
    ap.add_argument("--no-reference", action="store_true", help="leave the reference model out")
    ap.add_argument("--percentile", type=float, default=None, help="clip ranges (e.g. 99.99)")
    ap.add_argument("--headroom", type=float, default=1.0, help="widen the ranges (e.g. 2)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--test", action="store_true", help="also rank the pipeline's test windows")
    ap.add_argument("--make", type=Path, help="train the demo, NAB and SKAB models into MAKE")
    ap.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    args = ap.parse_args()
    if args.make:
        args.model += make_models(args.make, args.datasets)

    from anomae.detector import Detector
    from anomae.modelfile import load_onnx

    cases: list[tuple[str, Path, list[np.ndarray], list[str] | None, float | None, float, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="anomae-int8-static-"))
    if not args.no_reference:
        from score_bench import N_F, reference_model_in

        ref = reference_model_in(tmp)
        rows = np.random.default_rng(3).normal(size=(20_000, N_F)).astype(np.float32)
        cases.append(("reference", ref, [rows], None, 60.0, 0.9, None))
    names: list[str] | None
    for spec in args.model:
        name, rest = spec.split("=", 1)
        model, pipeline = rest.rsplit(":", 1)
        blocks, names, pipe = held_out(Path(model), Path(pipeline))
        interval = 60.0 if name == "demo" else None
        cases.append((name, Path(model), blocks, names, interval, 0.999, pipe))

    ranges_how = "min/max" if args.percentile is None else f"percentile {args.percentile:g}"
    ranges_how += f" x {args.headroom:g}" if args.headroom != 1.0 else ""
    print(
        f"static ranges: {ranges_how} of the gate's calibration windows; speed: 1 thread, "
        f"back to back, median of {args.rounds} rotated rounds of {args.seconds:g} s per graph"
    )
    for name, model, blocks, names, interval, min_rho, pipe in cases:
        fp = Detector.load(model, threads=1)
        proto = load_onnx(model)
        n_layers = len(layer_weights(proto))
        t0 = time.perf_counter()
        shared = load_onnx(model)
        drop_copies(shared)  # one weight name per layer, as quantize_graph's int8 files
        ranges = activation_ranges(
            shared, blocks, fp.card.window.length, args.percentile, headroom=args.headroom
        )
        t_ranges = time.perf_counter() - t0
        n_win = sum(max(0, b.shape[0] - fp.card.window.length + 1) for b in blocks)
        print(
            f"\n== {name}: {n_layers} layers, {len(fp.card.features)} features x "
            f"{fp.card.window.length} rows, gate on {n_win:,} windows "
            f"(min Spearman {min_rho:g}); ranges read in {t_ranges:.1f} s"
        )
        chosen: dict[str, Any] = {}
        graphs: dict[str, Any] = {"fp32": proto}
        for mode in MODES:
            a, tried = gate_run(mode, model, blocks, names, interval, ranges, min_rho)
            chosen[mode] = a
            steps = " -> ".join(str(t.fp32_layers) for t in tried)
            if a is None:
                print(
                    f"  {mode:8s} REFUSED after fp32 layers {steps}: "
                    f"{fmt_gate(tried[-1], n_layers)}"
                )
                continue
            graphs[mode] = a.proto
            all8 = tried[0].figures["spearman"]
            print(
                f"  {mode:8s} all-int8 rho {all8:.5f}; fp32 layers {a.fp32_layers} "
                f"(tried {steps}); {fmt_gate(a, n_layers)}"
            )
        sp = speed(graphs, fp.card.window.length, len(fp.card.features), args.rounds, args.seconds)
        for mode, r in sp.items():
            print(
                f"  {mode:8s} speed vs fp32 (vs dynamic) b1 {r[1][0]:.2f} ({r[1][1]:.2f})  "
                f"b64 {r[64][0]:.2f} ({r[64][1]:.2f})  b1024 {r[1024][0]:.2f} ({r[1024][1]:.2f})"
            )
        if args.test and pipe is not None and pipe.data.test:
            rho = test_rank(model, pipe, chosen)
            print(
                "  test windows (anomalies in), Spearman vs fp32: "
                + ", ".join(f"{k} {v:.5f}" for k, v in rho.items())
            )


if __name__ == "__main__":
    main()
