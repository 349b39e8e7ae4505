"""Detector.load refuses damaged models and cards that do not match their graph."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")

from anomae.detector import Detector, DetectorError  # noqa: E402
from anomae.modelfile import read_card  # noqa: E402
from anomae.spec import CARD_KEY, ModelCard, ModelCardError, Scaler, WindowSpec  # noqa: E402
from anomae.train.config import ArchConfig  # noqa: E402
from anomae.train.export import export_model  # noqa: E402
from anomae.train.model import build_model  # noqa: E402

F = 4


def _export(path: Path, length: int) -> ModelCard:
    torch.manual_seed(0)
    card = ModelCard(
        features=tuple(f"s{i}" for i in range(F)),
        window=WindowSpec(length, 1),
        scaler=Scaler((0.0, 1.0, 2.0, 3.0), (1.0, 2.0, 0.5, 1.0)),
    )
    rows = np.random.default_rng(1).normal(size=(1, 120, F)).astype(np.float32)
    return export_model(build_model(ArchConfig(hidden=(16, 4)), length, F), card, path, rows)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("det")
    out = {}
    for length in (16, 32):
        out[length] = folder / f"w{length}.onnx"
        _export(out[length], length)
    return out


def _edit_card(src: Path, dst: Path, edit: object) -> Path:
    model = onnx.load(str(src))
    entry = next(p for p in model.metadata_props if p.key == CARD_KEY)
    if callable(edit):
        d = json.loads(entry.value)
        edit(d)
        entry.value = json.dumps(d)
    else:
        entry.value = str(edit)
    onnx.save(model, str(dst))
    return dst


def _biggest_weights(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """The largest weight matrix in each graph that holds a copy: the main graph (calls of
    one window and of many) and the few-window branches (one window per batch row, or
    gathered; with and without missing values)."""
    inits = [t for g in _all_graphs(model.graph) for t in g.initializer]
    dims = max(inits, key=lambda t: int(np.prod(t.dims))).dims
    big = [t for t in inits if t.dims == dims]
    assert len(big) == 5
    return big


def _all_graphs(g: onnx.GraphProto) -> list[onnx.GraphProto]:
    subs = [a.g for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    return [g, *(s for sub in subs for s in _all_graphs(sub))]


def test_reference_recorded_and_intact_model_loads(models: dict[int, Path]) -> None:
    card = read_card(models[32])
    ref = card.parity["reference"]
    assert len(ref["score"]) == 4 and np.isfinite(ref["score"]).all()
    assert Detector.load(models[32]).card == card


@pytest.mark.parametrize("copy", range(5))
def test_overwritten_weight_bytes_are_refused(
    models: dict[int, Path], tmp_path: Path, copy: int
) -> None:
    model = onnx.load(str(models[32]))
    big = _biggest_weights(model)[copy]
    w = numpy_helper.to_array(big).copy()
    w.reshape(-1)[0] = np.nan  # four bytes: one float32
    big.CopyFrom(numpy_helper.from_array(w, big.name))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(DetectorError, match=r"bad\.onnx: .*damaged.*re-export"):
        Detector.load(tmp_path / "bad.onnx")


@pytest.mark.parametrize("copy", range(5))
def test_slightly_altered_weights_are_refused(
    models: dict[int, Path], tmp_path: Path, copy: int
) -> None:
    model = onnx.load(str(models[32]))
    big = _biggest_weights(model)[copy]
    w = numpy_helper.to_array(big) * np.float32(1.5)
    big.CopyFrom(numpy_helper.from_array(w, big.name))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(DetectorError, match="reference windows"):
        Detector.load(tmp_path / "bad.onnx")


def test_card_window_differs_from_graph(models: dict[int, Path], tmp_path: Path) -> None:
    def edit(d: dict) -> None:  # type: ignore[type-arg]
        d["window"]["length"] = 16
        d["parity"].pop("reference", None)  # an old card: only the probe can tell

    bad = _edit_card(models[32], tmp_path / "w.onnx", edit)
    with pytest.raises(DetectorError, match="window 16 rows"):
        Detector.load(bad)


def test_huge_card_window_refused_without_allocating(
    models: dict[int, Path], tmp_path: Path
) -> None:
    bad = _edit_card(
        models[32], tmp_path / "w.onnx", lambda d: d["window"].update(length=1_000_000_000)
    )
    t0 = time.perf_counter()
    with pytest.raises(DetectorError, match="window is 1,000,000,000 rows"):
        Detector.load(bad)
    assert time.perf_counter() - t0 < 5


def test_reordered_feature_names_refused(models: dict[int, Path], tmp_path: Path) -> None:
    bad = _edit_card(
        models[32], tmp_path / "f.onnx", lambda d: d.update(features=["s1", "s0", "s2", "s3"])
    )
    with pytest.raises(DetectorError, match="reordered"):
        Detector.load(bad)


def test_old_card_without_reference_still_loads(models: dict[int, Path], tmp_path: Path) -> None:
    old = _edit_card(
        models[16], tmp_path / "old.onnx", lambda d: d["parity"].pop("reference", None)
    )
    assert Detector.load(old).card.window.length == 16


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps({"pad": "x" * 2_000_000}), "over the 1,048,576"),
    ],
)
def test_malformed_cards_are_clean_errors(
    models: dict[int, Path], tmp_path: Path, text: str, match: str
) -> None:
    bad = _edit_card(models[16], tmp_path / "c.onnx", text)
    with pytest.raises(DetectorError, match=match):
        Detector.load(bad)
    with pytest.raises(ModelCardError, match=match):
        read_card(bad)


@pytest.mark.parametrize("spin", [True, False])
def test_spin_sets_the_session_and_keeps_scores(models: dict[int, Path], spin: bool) -> None:
    det = Detector.load(models[16], threads=2, spin=spin)
    options = det.session.get_session_options()  # type: ignore[attr-defined]
    if spin:  # onnxruntime's default: the entry is absent
        with pytest.raises(RuntimeError):
            options.get_session_config_entry("session.intra_op.allow_spinning")
    else:
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    x = np.random.default_rng(2).normal(size=(400, F)).astype(np.float32)
    ref = Detector.load(models[16], threads=2).score_series(x)
    np.testing.assert_array_equal(det.score_series(x).score, ref.score)


def test_call_workers_spend_threads_as_calls_side_by_side_on_cpu() -> None:
    from anomae.detector import call_workers, usable_cores

    assert call_workers("cpu", 3) == (3, 1)
    assert call_workers("cpu", 0) == (usable_cores(), 1)
    assert usable_cores() >= 1
    assert call_workers("cuda", 4) == (1, 4)
    assert call_workers("cuda:1", 0) == (1, 0)


def test_a_cpu_call_holds_at_most_2_mib_of_windows(models: dict[int, Path]) -> None:
    # calls run one per core side by side: a call's windows sized to share the cache
    # (bench/chunk_size.py), within 256-4,096 windows
    from anomae.detector import cpu_chunk_windows

    assert cpu_chunk_windows(64, 8) == 1024  # the reference model: 2 MiB exactly
    assert cpu_chunk_windows(8, 48) == 1024 and cpu_chunk_windows(8, 25) == 2048
    assert cpu_chunk_windows(32, 8) == 2048
    assert cpu_chunk_windows(8, 8) == 4096 and cpu_chunk_windows(16, 1) == 4096  # the most
    assert cpu_chunk_windows(512, 64) == 256  # the fewest
    det = Detector.load(models[32])
    assert det.chunk_windows == cpu_chunk_windows(32, F) == 4096
    # the chunks' scores are the whole call's
    x = np.random.default_rng(2).normal(size=(5000, F)).astype(np.float32)
    whole, chunked = det.score_series(x, 10_000), det.score_series(x)
    np.testing.assert_allclose(chunked.score, whole.score, rtol=1e-6)
