"""The scoring graph (anomae.graph) built from numpy weights, run with onnxruntime and
checked against a numpy reference: output shapes, window count, every windowing path
(one window, few, many; with and without NaN), missing values, error weights, the
channels layout, and centring."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from anomae.graph import SMALL_WINDOWS, Layer, build_graph, center_mask
from anomae.graph_windows import is_window_sum
from anomae.spec import Scaler, WindowSpec

FEATURES = ("a", "b", "c")
SCALER = Scaler((1.0, -2.0, 0.5), (2.0, 1.0, 4.0))


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    cpu = ["CPUExecutionProvider"]
    return ort.InferenceSession(model.SerializeToString(), opts, providers=cpu)


def zero_net(
    window: WindowSpec, scaler: Scaler = SCALER, bias: float = 0.0, **kw: object
) -> ort.InferenceSession:
    """A network that reconstructs every window as ``bias``: the score is the mean square
    of the scaled (and centred) readings less ``bias``."""
    lf = window.length * len(FEATURES)
    layers = [Layer("MatMul", [np.zeros((lf, lf), np.float32)]),
              Layer("Add", [np.full(lf, bias, np.float32)])]  # fmt: skip
    return session(build_graph(layers, "flat", FEATURES, window, scaler, **kw))  # type: ignore[arg-type]


def reference(
    rows: np.ndarray,
    window: WindowSpec,
    scaler: Scaler = SCALER,
    mask: np.ndarray | None = None,
    bias: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """score, feature_error and coverage of :func:`zero_net`, window by window, in numpy."""
    x = (rows - np.array(scaler.center)) / np.array(scaler.scale)
    weight = np.array(scaler.error_weight or (1.0,) * len(FEATURES))
    x[..., weight == 0] = np.nan
    out: list[list[np.ndarray]] = [[], [], []]
    for w in range(window.count(rows.shape[1])):
        win = x[:, w * window.stride : w * window.stride + window.length]  # [B, L, F]
        obs = ~np.isnan(win)
        if mask is not None:
            mean = np.nansum(win, 1, keepdims=True) / np.maximum(obs.sum(1, keepdims=True), 1)
            win = win - mean * mask
        sq = np.where(obs, win - bias, 0.0) ** 2 * weight
        fe = sq.sum(1) / np.maximum(obs.sum(1), 1)
        with np.errstate(invalid="ignore"):
            out[0].append(sq.sum((1, 2)) / obs.sum((1, 2)))
        out[1].append(fe)
        out[2].append(obs.sum((1, 2)) / (window.length * int((weight > 0).sum())))
    if not out[0]:  # fewer rows than a window
        b = rows.shape[0]
        return np.zeros((b, 0)), np.zeros((b, 0, len(FEATURES))), np.zeros((b, 0))
    return tuple(np.stack(o, 1) for o in out)


def run(sess: ort.InferenceSession, rows: np.ndarray) -> list[np.ndarray]:
    return sess.run(None, {"rows": rows.astype(np.float32)})


@pytest.mark.parametrize(
    "n_rows", [3, 4, 5, 9, 4 + 2 * (SMALL_WINDOWS - 1), 4 + 2 * SMALL_WINDOWS + 7]
)
@pytest.mark.parametrize("nan", [False, True])
def test_every_windowing_path_matches_numpy(n_rows: int, nan: bool) -> None:
    window = WindowSpec(4, 2)
    rows = np.random.default_rng(n_rows).normal(0, 3, (2, n_rows, 3))
    if nan:
        rows[0, 1, 2] = rows[1, -1, 0] = np.nan
    score, fe, cov = run(zero_net(window, bias=0.5), rows)  # missing cells add no error
    n = window.count(n_rows)
    assert score.shape == (2, n) and fe.shape == (2, n, 3) and cov.shape == (2, n)
    want = reference(rows, window, bias=0.5)
    for got, ref in zip((score, fe, cov), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)


def test_a_window_with_nothing_observed_scores_nan() -> None:
    rows = np.full((1, 6, 3), np.nan)
    rows[0, :2] = 1.0
    score, fe, cov = run(zero_net(WindowSpec(3, 1)), rows)
    assert np.isfinite(score[0, :2]).all() and np.isnan(score[0, 3])
    assert cov[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert fe[0, 3].tolist() == [0, 0, 0]


def test_error_weights_scale_and_a_zero_weight_leaves_a_feature_out() -> None:
    scaler = Scaler(SCALER.center, SCALER.scale, (2.0, 0.0, 0.5))
    window = WindowSpec(4, 1)
    rows = np.random.default_rng(3).normal(0, 1, (1, 10, 3))
    score, fe, cov = run(zero_net(window, scaler), rows)
    want = reference(rows, window, scaler)
    np.testing.assert_allclose(score, want[0], rtol=2e-5)
    assert (fe[..., 1] == 0).all() and (cov == 1.0).all()  # of the two features that count


def test_an_identity_network_in_either_layout_scores_zero() -> None:
    window = WindowSpec(5, 5)
    rows = np.random.default_rng(4).normal(0, 1, (3, 20, 3))
    flat = [Layer("MatMul", [np.eye(15, dtype=np.float32)])]
    channels = [Layer("MatMul", [np.eye(5, dtype=np.float32)])]  # [N, F, length] @ I
    for layers, layout in ((flat, "flat"), (channels, "channels")):
        score, fe, cov = run(session(build_graph(layers, layout, FEATURES, window, SCALER)), rows)
        assert score.shape == (3, 4) and np.abs(score).max() < 1e-10, layout
    weights = np.eye(15, dtype=np.float32)
    weights[0, 0] = 0.0  # loses the first cell of every flat window: feature a, row 0
    score, fe, _ = run(session(build_graph([Layer("MatMul", [weights])], "flat", FEATURES,
                                           window, SCALER)), rows)  # fmt: skip
    scaled = (rows[:, ::5, 0] - 1.0) / 2.0
    np.testing.assert_allclose(fe[..., 0], scaled**2 / 5, rtol=2e-5)
    assert (fe[..., 1:] == 0).all()


def test_centring_removes_each_window_mean_of_the_named_features() -> None:
    window = WindowSpec(4, 2)
    rows = np.random.default_rng(5).normal(0, 1, (1, 12, 3)) + np.array([100.0, 0.0, 0.0])
    rows[0, 3, 1] = np.nan
    sess = zero_net(window, center=["a"])
    mask = center_mask(FEATURES, ["a"])
    assert mask is not None and mask.tolist() == [1.0, 0.0, 0.0]
    want = reference(rows, window, mask=mask)
    got = run(sess, rows)
    np.testing.assert_allclose(got[0], want[0], rtol=2e-5)
    assert got[1][..., 0].max() < 2.0  # the level of 100 is gone from a's error


def test_center_mask_names_an_unknown_feature() -> None:
    assert center_mask(FEATURES, True).tolist() == [1.0, 1.0, 1.0]  # type: ignore[union-attr]
    assert center_mask(FEATURES, False) is None and center_mask(FEATURES, []) is None
    one = center_mask(("flow", "temp"), "temp")  # a name, not its letters
    assert one is not None and one.tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"unknown feature\(s\) \['d'\]; the model's features"):
        center_mask(FEATURES, ["a", "d"])


def _graphs(g: onnx.GraphProto) -> list[onnx.GraphProto]:
    subs = [a.g for n in g.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    return [g, *(s for sub in subs for s in _graphs(sub))]


def test_few_window_branches_own_their_weights() -> None:
    """onnxruntime pre-packs a matrix product's weights only when they are initializers of
    the product's own graph (8 % of a 64-window call otherwise): the few-window branches
    (one window per batch row, gathered; with and without the mask) read copies of every
    weight that they hold; the one-window call and the many-window branches read the main
    graph's."""
    window = WindowSpec(4, 1)
    w = np.arange(144, dtype=np.float32).reshape(12, 12) / 144
    layers = [Layer("MatMul", [w]), Layer("Add", [np.ones(12, np.float32)])]
    model = build_graph(layers, "flat", FEATURES, window, SCALER)
    main = {t.name for t in model.graph.initializer}
    owners = []
    for g in _graphs(model.graph):
        held = {t.name for t in g.initializer}
        sums = [n for n in g.node if n.op_type == "MatMul" and is_window_sum(n.input[1])]
        assert all(n.input[1] in held for n in sums)  # the windows' sums: every graph's own
        products = [n for n in g.node if n.op_type == "MatMul" and n not in sums]
        if products:
            weights = {n.input[1] for n in products} | {
                n.input[1]
                for n in g.node
                if n.op_type == "Add" and n.input[0] == products[0].output[0]
            }
            owners.append(weights <= held)
            assert weights <= held or weights <= main
    # one-window call, sliced (2); one window per row (2), gathered (2)
    assert sorted(owners) == [False] * 3 + [True] * 4
    copies = [t for g in _graphs(model.graph)[1:] for t in g.initializer if t.dims == [12, 12]]
    assert len(copies) == 4 and all(
        np.array_equal(onnx.numpy_helper.to_array(t), w) for t in copies
    )
