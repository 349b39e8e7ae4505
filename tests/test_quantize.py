"""anomae quantize: an int8 graph written only when its alarms match the float32 model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from anomae.calibrate import calibrate_quantile
from anomae.detector import Detector, DetectorError
from anomae.graph import Layer, build_graph
from anomae.int8_graph import walk_nodes
from anomae.modelfile import read_card, write_model
from anomae.quantize import (
    MIN_SPEEDUP,
    QuantizeError,
    QuantizeSettings,
    quantize_beside,
    quantize_model,
)
from anomae.quantize_gate import GateRefused, GateSettings
from anomae.reference import reference_record
from anomae.spec import ModelCard, Scaler, WindowSpec

L, F, K = 8, 4, 6  # window rows, features, code size


def _series(seed: int, n: int = 3000) -> np.ndarray:
    """Noisy sines of one period per feature: a low-rank signal a linear AE reconstructs."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    period = np.array([24.0, 30.0, 40.0, 50.0])
    x = np.sin(2 * np.pi * t / period + rng.uniform(0, 6, F)) + 0.3 * rng.normal(size=(n, F))
    return x.astype(np.float32)


def _pca(rows: np.ndarray) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(rows, (L, F))[:, 0].reshape(-1, L * F)
    return np.linalg.svd(windows, full_matrices=False)[2][:K].astype(np.float32)  # [K, L*F]


def _build(path: Path, outlier: float = 0.0, aggregate: str = "mean") -> Path:
    """A linear PCA autoencoder over windows of ``_series`` with a quantile threshold and
    reference windows, as an exported model has. ``outlier``: a decoder weight of that size
    on a code unit that is always 0, harmless in float32 but it sets the int8 weight scale."""
    train = _series(0)
    u = _pca(train)
    enc = np.vstack([u, np.zeros((1, L * F), np.float32)])  # code unit K is always 0
    dec = enc.T.copy()
    dec[0, K] = outlier
    layers = [
        Layer("Gemm", [enc, np.zeros(K + 1, np.float32)], {"transB": 1}),
        Layer("Gemm", [dec, np.zeros(L * F, np.float32)], {"transB": 1}),
    ]
    card = ModelCard(
        tuple(f"s{i}" for i in range(F)), WindowSpec(L, 1), Scaler((0.0,) * F, (1.0,) * F)
    )
    model = build_graph(
        layers, "flat", card.features, card.window, card.scaler, aggregate=aggregate
    )
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray):  # type: ignore[no-untyped-def]
        return tuple(sess.run(["score", "feature_error", "coverage"], {"rows": x}))

    ref = reference_record(run, train, card)
    scores = run(_series(1)[None])[0][0]
    card = ModelCard(
        card.features,
        card.window,
        card.scaler,
        threshold=calibrate_quantile(scores, 0.99),
        parity={"reference": ref},
    )
    write_model(model, card, path)
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("q") / "model.onnx")


def test_quantised_model_passes_loads_and_scores_close(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    held_out = [_series(2), _series(3)]
    figures = quantize_model(good, held_out, out, names=["m1", "m2"])
    assert figures["gate"]["passed"]
    # 2 Gemm in each of 7 copies of the network, less the one for one-window calls
    assert figures["quantized_products"] == 12 and figures["small_calls"] == "fp32"
    det8, det32 = Detector.load(out), Detector.load(good)
    card8, card32 = read_card(out), read_card(good)
    # the card is kept: threshold, features, window; its reference scores are the int8 graph's
    assert card8.threshold == card32.threshold and card8.features == card32.features
    assert card8.quantization["gate"] == figures["gate"]
    # both models timed on the calibration rows; "worth" follows the measured speed-up
    speed = card8.quantization["speed"]
    longest = max(card32.window.count(len(s)) for s in held_out)
    assert speed == figures["speed"]
    assert speed["windows_per_call"] == min(det32.chunk_windows, longest)
    assert speed["int8_us"] > 0 and speed["fp32_us"] > 0
    assert speed["worth"] == (speed["speedup"] >= MIN_SPEEDUP)
    assert card8.parity["reference"]["rows"] == card32.parity["reference"]["rows"]
    s8 = det8.score_series(_series(4)).score
    s32 = det32.score_series(_series(4)).score
    rel = np.abs(s8 - s32) / s32
    assert np.median(rel) < 0.01 and rel.max() < 0.1
    # each int8 weight is stored once, for the windowing branches to share
    weights = [
        t for t in _initializers(onnx.load(str(out)).graph) if t.data_type == 3 and len(t.dims) == 2
    ]
    assert [(t.data_type, list(t.dims)) for t in weights] == [
        (onnx.TensorProto.INT8, [L * F, K + 1]),
        (onnx.TensorProto.INT8, [K + 1, L * F]),
    ]


def test_max_aggregate_model_quantises_and_scores_close(tmp_path: Path) -> None:
    """The multivariate recipe's score (largest feature error) goes through the same rewrite."""
    model = _build(tmp_path / "max.onnx", aggregate="max")
    out = tmp_path / "max.int8.onnx"
    figures = quantize_model(model, [_series(2), _series(3)], out, names=["m1", "m2"])
    assert figures["gate"]["passed"] and figures["quantized_products"] == 12
    s8 = Detector.load(out).score_series(_series(4))
    s32 = Detector.load(model).score_series(_series(4))
    np.testing.assert_allclose(s32.score, s32.feature_error.max(axis=-1), rtol=1e-6)
    rel = np.abs(s8.score - s32.score) / s32.score
    assert np.median(rel) < 0.01 and rel.max() < 0.1


def _initializers(g: onnx.GraphProto) -> list[onnx.TensorProto]:
    found = list(g.initializer)
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                found += _initializers(a.g)
    return found


def test_gate_refuses_large_error_and_keeps_existing_output(tmp_path: Path) -> None:
    bad = _build(tmp_path / "bad.onnx", outlier=500.0)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous output")
    all_int8 = QuantizeSettings(backoff=False)
    with pytest.raises(GateRefused, match="would change the alarms") as err:
        quantize_model(bad, [_series(2)], out, settings=all_int8)
    assert not err.value.figures["passed"]
    assert not err.value.figures["spearman_ok"]
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx", "out.onnx"]


def test_sensitive_layer_goes_back_to_float32(tmp_path: Path) -> None:
    """The decoder's outlier weight coarsens its int8 scale: the all-int8 graph fails the
    gate, the decoder (layer 1) goes back to float32, and the encoder stays int8."""
    bad = _build(tmp_path / "bad.onnx", outlier=500.0)
    out = tmp_path / "out.onnx"
    q = quantize_model(bad, [_series(2), _series(3)], out)
    assert q["gate"]["passed"] and q["fp32_layers"] == [1] and q["layers"] == 2
    assert q["quantized_products"] == 6  # the encoder in each copy but the one-window calls
    attempts = q["backoff"]
    assert [a["fp32_layers"] for a in attempts] == [[], [1]]
    assert not attempts[0]["passed"] and attempts[1]["passed"]
    assert read_card(out).quantization == q
    model = onnx.load(str(out))
    int8 = [t for t in _initializers(model.graph) if t.data_type == 3 and len(t.dims) == 2]
    assert [list(t.dims) for t in int8] == [[L * F, K + 1]]  # the encoder's, shared
    s8 = Detector.load(out).score_series(_series(4)).score
    s32 = Detector.load(bad).score_series(_series(4)).score
    assert np.median(np.abs(s8 - s32) / s32) < 0.01


def test_gate_tolerance_is_a_parameter(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "strict.onnx"
    strict = QuantizeSettings(gate=GateSettings(min_spearman=1.0))
    with pytest.raises(GateRefused, match="Spearman") as err:
        quantize_model(good, [_series(2)], out, settings=strict)
    assert "returned to float32 one at a time it failed too, down to only layer" in str(err.value)
    assert not out.exists()


def test_damaged_int8_file_is_refused(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.int8.onnx"
    quantize_model(good, [_series(2)], out)
    model = onnx.load(str(out))
    for t in model.graph.initializer:
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2:
            w = onnx.numpy_helper.to_array(t).copy()
            w[:, 0] = -w[:, 0]  # one damaged column of one int8 weight
            t.CopyFrom(onnx.numpy_helper.from_array(w, t.name))
            break
    else:
        raise AssertionError("no int8 weight in the quantised model")
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    with pytest.raises(DetectorError, match="reference windows"):
        Detector.load(damaged)


def test_one_window_calls_on_the_int8_file_score_as_float32(good: Path, tmp_path: Path) -> None:
    """A batch-1 call of one window (with or without a missing cell) gives exactly the
    float32 model's outputs; longer calls are int8. Damage to the float32 weights that only
    those calls read fails the load, as damage to the int8 weights does."""
    out = tmp_path / "model.int8.onnx"
    quantize_model(good, [_series(2)], out)
    det8, det32 = Detector.load(out), Detector.load(good)
    rows = _series(5)[None, :L]
    gap = rows.copy()
    gap[0, 2, 1] = np.nan
    for x in (rows, gap):
        for a, b in zip(det8.run(x), det32.run(x), strict=True):
            np.testing.assert_array_equal(a, b)
    two = _series(5)[None, : L + 1]
    assert not np.array_equal(det8.run(two)[0], det32.run(two)[0])
    assert isinstance(read_card(out).parity["reference"]["single"], float)
    model = onnx.load(str(out))
    branches = [a.g for n in walk_nodes(model.graph) for a in n.attribute if a.g.name]
    for t in [*model.graph.initializer, *(t for g in branches for t in g.initializer)]:
        if t.data_type == onnx.TensorProto.FLOAT and list(t.dims) == [L * F, K + 1]:
            w = onnx.numpy_helper.to_array(t).copy()
            w[:, 0] = -w[:, 0]  # the float32 decoder's first column, read by one-window calls
            t.CopyFrom(onnx.numpy_helper.from_array(w, t.name))
            break
    else:
        raise AssertionError("no float32 decoder weight in the quantised model")
    damaged = tmp_path / "damaged.onnx"
    onnx.save(model, str(damaged))
    with pytest.raises(DetectorError, match="reference windows"):
        Detector.load(damaged)


def test_quantising_twice_or_without_threshold_is_refused(good: Path, tmp_path: Path) -> None:
    out = tmp_path / "once.onnx"
    quantize_model(good, [_series(2)], out)
    with pytest.raises(QuantizeError, match="already quantised"):
        quantize_model(out, [_series(2)], tmp_path / "twice.onnx")
    with pytest.raises(QuantizeError, match="no complete window"):
        quantize_model(good, [_series(2)[: L - 1]], tmp_path / "short.onnx")


def test_run_step_writes_beside_or_reports_and_removes_a_stale_one(
    good: Path, tmp_path: Path
) -> None:
    """``[export] quantize = "int8"`` of ``anomae run``: written beside the model when the
    gate passes; a refusal is returned, not raised, and removes the int8 file an earlier
    run left (another model's)."""
    import shutil

    model = tmp_path / "model.onnx"
    shutil.copy(good, model)
    done = quantize_beside(model, [_series(2)], ["m1"])
    assert done["written"] and done["path"] == str(tmp_path / "model.int8.onnx")
    assert read_card(tmp_path / "model.int8.onnx").quantization["gate"] == done["gate"]
    refused = quantize_beside(model, [_series(2)[: L - 1]], None)
    assert not refused["written"] and "no complete window" in refused["refused"]
    assert not (tmp_path / "model.int8.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
