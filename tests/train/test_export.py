"""Export parity (onnxruntime vs torch), the graph's contract, and Detector.load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from anomae.detector import Detector, DetectorError  # noqa: E402
from anomae.graph import center_mask  # noqa: E402
from anomae.modelfile import read_card, rewrite_card  # noqa: E402
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec  # noqa: E402
from anomae.train.config import ArchConfig  # noqa: E402
from anomae.train.export import ExportParityError, TorchScorer, export_model  # noqa: E402
from anomae.train.model import build_model  # noqa: E402
from anomae.windows import sliding_windows  # noqa: E402

F = 5


def _card(length: int, stride: int, center: bool | tuple[str, ...] = False) -> ModelCard:
    rng = np.random.default_rng(3)
    return ModelCard(
        architecture={"center": center},
        features=tuple(f"s{i}" for i in range(F)),
        window=WindowSpec(length, stride),
        scaler=Scaler(tuple(rng.normal(size=F).tolist()), tuple((rng.random(F) + 0.5).tolist())),
    )


def _rows(batch: int = 2, time: int = 150) -> np.ndarray:
    rng = np.random.default_rng(4)
    rows = rng.normal(size=(batch, time, F)).astype(np.float32)
    rows[0, 10:14, 1] = np.nan  # a missing sensor for a while
    if batch > 1:
        rows[1, 40:80, :] = np.nan  # a full outage: windows inside it score NaN
    return rows


ARCHS = [
    (ArchConfig(hidden=(32, 8)), 16, 1),
    (ArchConfig(hidden=(128, 96), activation="tanh"), 12, 3),  # over-complete
    (ArchConfig(hidden=(16, 4), code_activation="sigmoid", activation="elu"), 10, 2),
    (ArchConfig(kind="conv", hidden=(16, 4), channels=(8, 16), activation="gelu"), 21, 1),
    (ArchConfig(kind="conv", hidden=(8,), channels=(4, 8, 8), kernel=4), 32, 4),
]


@pytest.mark.parametrize("center", [False, True, ("s1", "s3")])
@pytest.mark.parametrize(("arch", "length", "stride"), ARCHS)
def test_export_parity_and_contract(
    tmp_path: Path, arch: ArchConfig, length: int, stride: int, center: bool | tuple[str, ...]
) -> None:
    torch.manual_seed(0)
    model = build_model(arch, length, F)
    card = _card(length, stride, center)
    rows = _rows()
    path = tmp_path / "m.onnx"
    written = export_model(model, card, path, rows)
    assert written.parity["max_rel_diff"] < 1e-4
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert read_card(path) == written

    det = Detector.load(path)
    score, fe, cov = det.run(rows)
    n = card.window.count(rows.shape[1])
    assert score.shape == (2, n) and fe.shape == (2, n, F) and cov.shape == (2, n)

    # the graph's windows are the batch windowing's windows: recompute window 7 by hand
    center = np.asarray(card.scaler.center, np.float32)
    scale = np.asarray(card.scaler.scale, np.float32)
    win = sliding_windows((rows[0] - center) / scale, card.window)[7]
    obs = ~np.isnan(win)
    which = card.architecture["center"]
    if which:  # True centres every feature, a list of names only those
        keep = np.array([which is True or f in which for f in card.features])
        win = win - np.where(keep, np.nanmean(win, axis=0, keepdims=True), 0.0)
    x = torch.from_numpy(np.nan_to_num(win)[None])
    recon = model(x)[0].detach().numpy()[0]
    sq = (recon - np.nan_to_num(win)) ** 2 * obs
    assert score[0, 7] == pytest.approx(sq.sum() / obs.sum(), rel=1e-4)
    assert cov[0, 7] == pytest.approx(obs.mean(), rel=1e-6)

    # a window with nothing observed scores NaN with coverage 0, never a fake number
    ends = np.arange(n) * stride + length - 1
    inside = np.flatnonzero((ends - length + 1 >= 40) & (ends < 80))
    if inside.size:
        assert np.isnan(score[1, inside]).all() and (cov[1, inside] == 0).all()


def test_dynamic_axes_and_short_input(tmp_path: Path) -> None:
    model = build_model(ArchConfig(hidden=(8, 4)), 8, F)
    path = tmp_path / "m.onnx"
    export_model(model, _card(8, 2), path, _rows())
    det = Detector.load(path)
    for batch, time in [(1, 8), (3, 9), (2, 100), (1, 5), (4, 0)]:
        s, fe, _ = det.run(np.zeros((batch, time, F), np.float32))
        assert s.shape == (batch, WindowSpec(8, 2).count(time))


@pytest.mark.parametrize("center", [False, True, ("s0",)])
@pytest.mark.parametrize("with_nan", [True, False])
@pytest.mark.parametrize(("length", "stride"), [(8, 3), (12, 1), (5, 7)])
def test_graph_paths_agree(
    tmp_path: Path, with_nan: bool, length: int, stride: int, center: bool | tuple[str, ...]
) -> None:
    """Few windows (row gather), many windows (block slices, with or without the NaN
    mask): chunk sizes below and above the switch must give the same scores."""
    model = build_model(ArchConfig(hidden=(8, 4)), length, F)
    path = tmp_path / "m.onnx"
    export_model(model, _card(length, stride, center), path, _rows())
    det = Detector.load(path)
    values = _rows(1, 4000)[0]
    if not with_nan:
        values = np.nan_to_num(values)
    whole = det.score_series(values, chunk_windows=10_000)
    parts = det.score_series(values, chunk_windows=37)
    np.testing.assert_allclose(parts.score, whole.score, rtol=1e-6)
    np.testing.assert_allclose(parts.feature_error, whole.feature_error, rtol=1e-6)
    assert parts.score.shape == (WindowSpec(length, stride).count(4000),)


@pytest.mark.parametrize(
    ("center", "mask"),
    [
        (False, None),
        ((), None),
        (True, [1, 1, 1]),
        (["b"], [0, 1, 0]),
        (("c", "a"), [1, 0, 1]),
        ("b", [0, 1, 0]),  # one name, not its letters
    ],
)
def test_center_mask(center: bool | tuple[str, ...], mask: list[int] | None) -> None:
    got = center_mask(("a", "b", "c"), center)
    assert (got is None and mask is None) or got.tolist() == mask  # type: ignore[union-attr]


def test_center_mask_names_unknown_features() -> None:
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['temp'\].*\['a', 'b'\]"):
        center_mask(("a", "b"), ["a", "temp"])


def test_partial_centring_ignores_only_the_named_levels(tmp_path: Path) -> None:
    """A level shift of a centred feature leaves the score alone (away from its edges);
    the same shift of a feature that keeps its level raises it."""
    model = build_model(ArchConfig(hidden=(8, 4)), 8, F)
    path = tmp_path / "m.onnx"
    export_model(model, _card(8, 1, center=("s2",)), path, _rows())
    det = Detector.load(path)
    base = np.random.default_rng(5).normal(size=(60, F)).astype(np.float32)
    ref = det.score_series(base).score
    for j, moves in ((2, False), (0, True)):
        shifted = base.copy()
        shifted[:, j] += 50.0
        got = det.score_series(shifted).score
        assert (np.abs(got - ref) > 1e-3 * ref).any() == moves


def test_parity_failure_refuses_to_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model(ArchConfig(hidden=(8, 4)), 8, F)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous model")
    original = TorchScorer.__call__

    def skewed(self, rows):  # type: ignore[no-untyped-def]
        s, fe, cov = original(self, rows)
        return s * 1.01, fe, cov  # a 1 % train/serve skew

    monkeypatch.setattr(TorchScorer, "__call__", skewed)
    with pytest.raises(ExportParityError, match="differ beyond"):
        export_model(model, _card(8, 1), path, _rows())
    assert path.read_bytes() == b"previous model"


def test_calibration_rewrites_only_metadata(tmp_path: Path) -> None:
    model = build_model(ArchConfig(hidden=(8, 4)), 8, F)
    path = tmp_path / "m.onnx"
    card = export_model(model, _card(8, 1), path, _rows())
    graph_before = onnx.load(str(path)).graph.SerializeToString()
    rewrite_card(path, card.with_threshold(Threshold(0.5, "quantile", {"q": 0.9}, 100, 0.1)))
    assert onnx.load(str(path)).graph.SerializeToString() == graph_before
    assert Detector.load(path).threshold == 0.5


def _model_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.onnx"
    export_model(build_model(ArchConfig(hidden=(8, 4)), 8, F), _card(8, 1), path, _rows())
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p, good: p.unlink(), "does not exist"),
        (lambda p, good: p.write_bytes(b"\x00garbage" * 10), "cannot load this file"),
        (lambda p, good: p.write_bytes(good[: len(good) // 2]), "cannot load this file"),
        (lambda p, good: _strip_card(p, good), "has no 'anomae.card' metadata"),
        (lambda p, good: _set_card(p, good, '{"format_version": 99}'), "format_version 99"),
        (lambda p, good: _set_card(p, good, "{broken"), "not valid JSON"),
    ],
)
def test_detector_load_errors(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    good = _model_file(tmp_path).read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(good)
    damage(bad, good)
    with pytest.raises(DetectorError, match=message) as err:
        Detector.load(bad)
    assert "bad.onnx" in str(err.value)


def _strip_card(path: Path, good: bytes) -> None:
    m = onnx.load_from_string(good)
    del m.metadata_props[:]
    path.write_bytes(m.SerializeToString())


def _set_card(path: Path, good: bytes, text: str) -> None:
    m = onnx.load_from_string(good)
    m.metadata_props[0].value = text
    path.write_bytes(m.SerializeToString())


def test_cuda_request_without_gpu_build_says_what_to_install(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(DetectorError, match="pip install onnxruntime-gpu"):
        Detector.load(_model_file(tmp_path), device="cuda")


def test_cuda_scores_equal_cpu(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a GPU")
    path = _model_file(tmp_path)
    rows = _rows(4, 3000)
    cpu = Detector.load(path).run(rows)[0]
    gpu = Detector.load(path, device="cuda").run(rows)[0]
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("length", "stride", "extra"), [(8, 1, 0), (8, 3, 0), (8, 3, 2)])
def test_one_window_per_row_path(tmp_path: Path, length: int, stride: int, extra: int) -> None:
    """[B, length (+ fewer than stride rows), F] takes the reshape path; it must score each
    window exactly as the same window inside a long series."""
    model = build_model(ArchConfig(hidden=(8, 4)), length, F)
    path = tmp_path / "m.onnx"
    export_model(model, _card(length, stride), path, _rows())
    det = Detector.load(path)
    values = _rows(1, 600)[0]
    whole = det.score_series(values)
    picks = np.arange(0, WindowSpec(length, stride).count(600) - 1, 7)
    batch = np.stack([values[i * stride : i * stride + length + extra] for i in picks])
    score, fe, cov = det.run(np.ascontiguousarray(batch))
    assert score.shape == (picks.size, 1)
    np.testing.assert_allclose(score[:, 0], whole.score[picks], rtol=1e-5)
    np.testing.assert_allclose(fe[:, 0], whole.feature_error[picks], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cov[:, 0], whole.coverage[picks])


@pytest.mark.parametrize(("length", "stride"), [(16, 1), (12, 3)])
def test_error_weights_scale_each_feature_and_zero_leaves_it_out(
    tmp_path: Path, length: int, stride: int
) -> None:
    """Weighted score = sum_f w_f * SSE_f / observed cells of the weighted-in features; a
    feature of weight 0 is held at its training value: what it reads changes nothing."""
    from dataclasses import replace

    torch.manual_seed(0)
    model = build_model(ArchConfig(hidden=(32, 8)), length, F)
    base = _card(length, stride)
    weight = (2.0, 0.0, 0.5, 1.0, 3.0)
    card = replace(base, scaler=replace(base.scaler, error_weight=weight))
    rows = _rows()
    written = export_model(model, card, tmp_path / "w.onnx", rows)  # parity on every path
    assert read_card(tmp_path / "w.onnx").scaler.error_weight == weight
    export_model(model, base, tmp_path / "u.onnx", rows)
    weighted, plain = Detector.load(tmp_path / "w.onnx"), Detector.load(tmp_path / "u.onnx")
    s, fe, cov = weighted.run(rows)
    # window 7 by hand, with s1 held at its training value (0 in scaled units)
    center = np.asarray(card.scaler.center, np.float32)
    scale = np.asarray(card.scaler.scale, np.float32)
    win = sliding_windows((rows[0] - center) / scale, card.window)[7]
    obs = ~np.isnan(win)
    obs[:, 1] = False
    x = np.where(obs, win, 0.0).astype(np.float32)
    recon = model(torch.from_numpy(x[None]))[0].detach().numpy()[0]
    sq = (recon - x) ** 2 * obs * np.asarray(weight, np.float32)
    assert s[0, 7] == pytest.approx(sq.sum() / obs.sum(), rel=1e-4)
    assert fe[0, 7, 1] == 0.0 and cov[0, 7] == pytest.approx(obs[:, [0, 2, 3, 4]].mean())
    moved = rows.copy()
    moved[:, :, 1] += 1000.0  # the left-out sensor goes wild: the score does not move
    np.testing.assert_array_equal(weighted.run(moved)[0], s)
    assert not np.allclose(plain.run(moved)[0], plain.run(rows)[0])
    assert written.parity["max_rel_diff"] < 1e-4


@pytest.mark.parametrize(("arch", "length", "stride"), [ARCHS[0], ARCHS[3]])
def test_max_aggregate_scores_the_largest_feature_error(
    tmp_path: Path, arch: ArchConfig, length: int, stride: int
) -> None:
    """``aggregate = "max"``: the score is the window's largest weighted feature error, the
    same in onnxruntime and torch on every graph path, NaN where nothing was observed."""
    from dataclasses import replace

    torch.manual_seed(0)
    model = build_model(arch, length, F)
    base = _card(length, stride)
    card = replace(
        base,
        architecture={**base.architecture, "aggregate": "max"},
        scaler=replace(base.scaler, error_weight=(2.0, 0.0, 0.5, 1.0, 3.0)),
    )
    rows = _rows()
    written = export_model(model, card, tmp_path / "m.onnx", rows)  # parity on every path
    assert written.parity["max_rel_diff"] < 1e-4
    assert read_card(tmp_path / "m.onnx").architecture["aggregate"] == "max"
    score, fe, cov = Detector.load(tmp_path / "m.onnx").run(rows)
    seen = cov > 0
    np.testing.assert_array_equal(score[seen], fe.max(axis=2)[seen])
    assert np.isnan(score[~seen]).all() and (~seen).any()
    mean = replace(card, architecture={**card.architecture, "aggregate": "mean"})
    export_model(model, mean, tmp_path / "mean.onnx", rows)
    assert not np.allclose(Detector.load(tmp_path / "mean.onnx").run(rows)[0][seen], score[seen])


def test_unknown_aggregate_is_refused() -> None:
    from anomae.graph import build_graph

    card = _card(8, 1)
    with pytest.raises(ValueError, match="aggregate must be one of"):
        build_graph([], "flat", card.features, card.window, card.scaler, aggregate="median")
