"""score_table (the whole-series reference in tests/reference_score.py, which
tests/test_stream_score.py holds the streaming scorer to): the windows and events tables of
one series, against brute force; and score_files end to end."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.detector import Scores
from anomae.events import PostRule, find_events
from anomae.io import SeriesData
from anomae.score import ScoreOptions, write_table
from anomae.spec import WindowSpec
from tests.reference_score import score_table

FEATURES = ("a", "b", "c", "d")


def _series(n_rows: int, rng: np.random.Generator) -> SeriesData:
    return SeriesData(
        name="m1",
        source="x.parquet",
        timestamps=np.arange(n_rows, dtype=np.int64) * 60_000_000_000,
        values=np.zeros((n_rows, 4), np.float32),
        labels=(rng.random(n_rows) < 0.05).astype(np.int8),
        row_offset=np.arange(n_rows, dtype=np.int64),
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rule", [PostRule(1), PostRule(3), PostRule(2, max_gap=2)])
def test_events_match_brute_force(seed: int, rule: PostRule) -> None:
    rng = np.random.default_rng(seed)
    window = WindowSpec(5, 2)
    s = _series(400, rng)
    n = window.count(400)
    score = rng.gamma(1.0, 1.0, n).astype(np.float32)
    score[rng.random(n) < 0.03] = np.nan
    fe = rng.random((n, 4)).astype(np.float32)
    sc = Scores(score, fe, np.ones(n, np.float32))
    windows, events = score_table(s, sc, window, 1.5, FEATURES, ScoreOptions(rule=rule, top_k=2))

    ends = np.arange(n) * 2 + 4
    assert windows["timestamp"].cast(int).to_list() == (ends * 60_000_000_000).tolist()
    norm = score / np.float32(1.5)
    assert windows["is_anomaly"].to_list() == [bool(v > 1) for v in norm]
    top1 = [FEATURES[int(np.argmax(r))] for r in fe]
    assert windows["top_feature_1"].cast(str).to_list() == top1
    # window label: any labelled row among the window's 5 rows
    want_label = [int(s.labels[e - 4 : e + 1].any()) for e in ends]  # type: ignore[index]
    assert windows["label"].to_list() == want_label

    spans = find_events(norm, rule)
    assert events.height == len(spans)
    in_event = np.zeros(n, bool)
    for row, sp in zip(events.iter_rows(named=True), spans, strict=True):
        seg = slice(sp.first, sp.last + 1)
        in_event[seg] = True
        peak = sp.first + int(np.nanargmax(norm[seg]))
        order = np.argsort(-fe[seg].sum(axis=0), kind="stable")[:2]
        assert row["n_windows"] == sp.last - sp.first + 1
        assert row["peak_score_normalised"] == pytest.approx(float(norm[peak]))
        assert int(row["peak"].timestamp()) == int(ends[peak]) * 60
        assert row["top_features"] == ";".join(FEATURES[i] for i in order)
        assert row["duration_s"] == (ends[sp.last] - ends[sp.first]) * 60.0
    assert windows["in_event"].to_list() == in_event.tolist()


def test_event_running_to_the_last_window() -> None:
    rng = np.random.default_rng(0)
    s = _series(20, rng)
    window = WindowSpec(4, 1)
    n = window.count(20)
    score = np.zeros(n, np.float32)
    score[-3:] = [3.0, 5.0, 4.0]
    fe = np.tile(np.array([0.1, 0.9, 0.2, 0.3], np.float32), (n, 1))
    _, events = score_table(s, Scores(score, fe, np.ones(n, np.float32)), window, 1.0, FEATURES)
    assert events.height == 1
    assert events["peak_score_normalised"][0] == 5.0
    assert events["top_features"][0] == "b;d;c"


def test_write_table_is_atomic_and_keeps_old_output_on_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    out = tmp_path / "s.parquet"
    write_table(pl.DataFrame({"x": [1, 2]}), out)
    assert pl.read_parquet(out)["x"].to_list() == [1, 2]

    class Boom(pl.DataFrame):
        def write_parquet(self, *a, **k):  # type: ignore[no-untyped-def,override]
            raise OSError("disk full")

    with pytest.raises(OSError):
        write_table(Boom({"x": [3]}), out)
    assert pl.read_parquet(out)["x"].to_list() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet"]


def test_likelihood_policy_replaces_the_threshold() -> None:
    from anomae.likelihood import Likelihood, likelihood_scores

    rng = np.random.default_rng(3)
    window = WindowSpec(4, 1)
    s = _series(3000, rng)
    n = window.count(3000)
    score = rng.lognormal(0.0, 0.3, n).astype(np.float32)
    score[2500:2520] *= 40.0  # one burst: one event, right where it starts
    sc = Scores(score, rng.random((n, 4)).astype(np.float32), np.ones(n, np.float32))
    spec = Likelihood(long=1000)
    opts = ScoreOptions(rule=PostRule(1), likelihood=spec)
    windows, events = score_table(s, sc, window, None, FEATURES, opts)
    want = likelihood_scores(score, spec).astype(np.float32)
    np.testing.assert_array_equal(windows["score_normalised"].to_numpy(), want)
    assert windows["score_normalised"][: spec.warmup].is_nan().all()  # no verdict yet
    assert windows["score"].to_numpy().tolist() == score.tolist()  # raw scores are kept
    assert events.height == 1
    # window 2500 ends at row 2503; the short-term average needs a window or two to rise
    assert 2503 <= int(events["start"][0].timestamp()) // 60 <= 2505
    with pytest.raises(ValueError, match="needs a threshold"):
        score_table(s, sc, window, None, FEATURES, ScoreOptions())


def test_likelihood_season_uses_the_series_clock() -> None:
    from anomae.likelihood import Likelihood, likelihood_scores
    from anomae.score import window_interval

    rng = np.random.default_rng(4)
    window = WindowSpec(4, 2)
    s = _series(1000, rng)  # one row a minute: one window every 2 minutes
    assert window_interval(s.timestamps, window) == 120.0
    n = window.count(1000)
    score = rng.gamma(4.0, 0.25, n).astype(np.float32)
    score[::30] += 20.0  # every hour
    sc = Scores(score, np.ones((n, 4), np.float32), np.ones(n, np.float32))
    spec = Likelihood(short=1, warmup=50, season_s=3600, tolerance_s=240)
    windows, _ = score_table(s, sc, window, None, FEATURES, ScoreOptions(likelihood=spec))
    want = likelihood_scores(score, spec, 120.0).astype(np.float32)
    np.testing.assert_array_equal(windows["score_normalised"].to_numpy(), want)
    assert not (want[60:] > 1).any()  # the hourly job is part of the cycle


def _sqrt_model(path) -> None:  # type: ignore[no-untyped-def]
    """A real, tiny ONNX model in anomae's contract: window 1, score = sqrt(x), so a
    negative reading scores NaN though it was observed, as a damaged network would."""
    import onnx
    from onnx import TensorProto, helper

    from anomae.graph import INPUT
    from anomae.modelfile import write_model
    from anomae.spec import ModelCard, Scaler

    def const(name: str, v: list[int] | float) -> onnx.TensorProto:
        if isinstance(v, list):
            return helper.make_tensor(name, TensorProto.INT64, [len(v)], v)
        return helper.make_tensor(name, TensorProto.FLOAT, [], [v])

    nodes = [
        helper.make_node("Squeeze", [INPUT, "ax2"], ["x"]),
        helper.make_node("Sqrt", ["x"], ["score"]),
        helper.make_node("Mul", ["x", "zero"], ["x0"]),
        helper.make_node("Add", ["x0", "one"], ["coverage"]),
        helper.make_node("Unsqueeze", ["x0", "ax2"], ["feature_error"]),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "sqrt",
        [helper.make_tensor_value_info(INPUT, f, ["b", "t", 1])],
        [
            helper.make_tensor_value_info("score", f, ["b", "t"]),
            helper.make_tensor_value_info("feature_error", f, ["b", "t", 1]),
            helper.make_tensor_value_info("coverage", f, ["b", "t"]),
        ],
        initializer=[const("ax2", [2]), const("zero", 0.0), const("one", 1.0)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    card = ModelCard(features=("x",), window=WindowSpec(1, 1), scaler=Scaler((0.0,), (1.0,)))
    write_model(model, card, path)


def _csv(path, values: list[float]) -> None:  # type: ignore[no-untyped-def]
    rows = [f"2026-01-01T00:{i:02d}:00,{v}" for i, v in enumerate(values)]
    path.write_text("timestamp,x\n" + "\n".join(rows) + "\n")


def test_nan_score_of_observed_window_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from anomae.detector import DetectorError
    from anomae.score import score_files

    model, data, out = tmp_path / "m.onnx", tmp_path / "d.csv", tmp_path / "s.parquet"
    _sqrt_model(model)
    _csv(data, [4.0, 9.0, 1.0])
    opts = ScoreOptions(threshold=1.0, rule=PostRule(1))
    assert score_files(model, [data], out, opts=opts).n_windows == 3
    _csv(data, [4.0, -1.0, float("nan"), 1.0])  # -1 is observed: NaN there is the model's
    with pytest.raises(DetectorError, match=r"m\.onnx: 1 windows .*scored NaN .*re-export"):
        score_files(model, [data], out, opts=opts, force=True)
    _csv(data, [4.0, float("nan"), 1.0])  # nothing observed: NaN is the contract
    assert score_files(model, [data], out, opts=opts, force=True).n_windows == 3


def test_outputs_share_a_run_id_and_never_overwrite_inputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    from anomae.atomic import OutputError
    from anomae.score import score_files

    model, data = tmp_path / "m.onnx", tmp_path / "d.csv"
    out, ev = tmp_path / "s.parquet", tmp_path / "e.parquet"
    _sqrt_model(model)
    _csv(data, [4.0, 9.0, 1.0, 16.0, 25.0, 36.0])
    opts = ScoreOptions(threshold=2.5, rule=PostRule(1))
    s = score_files(model, [data], out, ev, opts=opts)
    meta = [pl.read_parquet_metadata(p) for p in (out, ev)]
    assert meta[0]["anomae.run_id"] == meta[1]["anomae.run_id"] == s.run_id
    assert pl.read_parquet(ev).height == 2  # rows 1 and 3-5: two events

    before = data.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    for target, match in [(data, "is also an input"), (link, "is also an input")]:
        with pytest.raises(OutputError, match=match):
            score_files(model, [data], target, opts=opts, force=True)
    with pytest.raises(OutputError, match="is also an input"):
        score_files(model, [data], out, model, opts=opts, force=True)
    with pytest.raises(OutputError, match="two outputs"):
        score_files(model, [data], out, out, opts=opts, force=True)
    with pytest.raises(OutputError, match=r"s\.parquet: already exists; pass --force"):
        score_files(model, [data], out, opts=opts)
    assert data.read_bytes() == before and model.is_file()
    assert pl.read_parquet_metadata(out)["anomae.run_id"] == s.run_id  # untouched
    s2 = score_files(model, [data], out, ev, opts=opts, force=True)
    assert pl.read_parquet_metadata(ev)["anomae.run_id"] == s2.run_id != s.run_id


@pytest.mark.parametrize("bad", [-1.0, 0.0, float("nan"), float("inf")])
def test_score_options_refuse_unusable_threshold(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number > 0"):
        ScoreOptions(threshold=bad)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_outputs_are_utc_and_read_back_as_input(tmp_path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    from anomae.io import TableSpec, read_series
    from anomae.score import score_files

    model, data = tmp_path / "m.onnx", tmp_path / "d.csv"
    out, events = tmp_path / f"s{suffix}", tmp_path / f"e{suffix}"
    _sqrt_model(model)
    _csv(data, [1.0, 9.0, 9.0, 1.0])
    opts = ScoreOptions(threshold=2.0, rule=PostRule(1))
    score_files(model, [data], out, events, opts=opts)
    read = pl.read_csv if suffix == ".csv" else pl.read_parquet
    if suffix == ".csv":
        text = out.read_text().splitlines()
        assert text[1].split(",")[1] == "2026-01-01T00:00:00Z"
        assert events.read_text().splitlines()[1].split(",")[1:4] == [
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            "2026-01-01T00:01:00Z",
        ]
    else:
        assert read(out).schema["timestamp"] == pl.Datetime("ns", "UTC")
        assert read(events).schema["start"] == pl.Datetime("ns", "UTC")
    [inp], _ = read_series(data)
    [back], _ = read_series(out, TableSpec(features=("score",)))
    assert back.name == "d" and back.timestamps.tolist() == inp.timestamps.tolist()
    assert back.values[:, 0].tolist() == [1.0, 3.0, 3.0, 1.0]
    [ev], _ = read_series(events, TableSpec(timestamp="start", features=("n_windows",)))
    assert ev.timestamps.tolist() == [inp.timestamps[1]]
