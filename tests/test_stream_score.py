"""The streaming scorer against the whole-series reference (tests/reference_score.py):
random series pushed in random pieces (down to one row, series interleaved), with gaps,
missing values, labels, per-series thresholds, every post-rule setting and the anomaly
likelihood; scores bitwise equal, the same flags, top features and events (the post-rules
in pieces: anomae.stream_events)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anomae.detector import Detector, DetectorError
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.io import SeriesData
from anomae.likelihood import Likelihood
from anomae.modelfile import write_model
from anomae.score import ScoreOptions, score_all
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
from anomae.stream_score import StreamScorer
from tests.reference_score import reference_score_all

FEATURES = ("a", "b", "c")
_DETS: dict[tuple[int, int, int], Detector] = {}


def detector(tmp: Path, length: int, stride: int, seed: int = 0) -> Detector:
    key = (length, stride, seed)
    if key not in _DETS:
        rng = np.random.default_rng(seed)
        window = WindowSpec(length, stride)
        th = Threshold(1.0, "quantile", per_series={"s1": 0.8, "s2": 1.3},
                       per_feature={"b": 0.5})  # fmt: skip
        card = ModelCard(FEATURES, window, Scaler((0.0,) * 3, (1.0,) * 3), threshold=th,
                         interval_s=60.0, max_gap_s=600.0)  # fmt: skip
        n = length * len(FEATURES)
        w = (rng.normal(0, 0.3, (n, n)) + np.eye(n) * 0.5).astype(np.float32)
        model = build_graph([Layer("MatMul", [w])], "flat", FEATURES, window, card.scaler)
        path = tmp / f"m-{length}-{stride}-{seed}.onnx"
        write_model(model, card, path)
        _DETS[key] = Detector.load(path, threads=1)
    return _DETS[key]


def make_series(rng: np.random.Generator, name: str, n: int, labels: bool) -> SeriesData:
    steps = np.where(rng.random(n) < 0.03, rng.integers(700, 5000, n), 60)
    ts = (1_700_000_000 + np.cumsum(steps)).astype(np.int64) * 10**9
    x = rng.normal(0, 1, (n, 3)).astype(np.float32)
    x[rng.random((n, 3)) < 0.05] = np.nan
    x[rng.random(n) < 0.01] = np.nan  # whole rows missing
    burst = rng.random(n) < 0.04
    x[burst] += rng.normal(0, 4, (int(burst.sum()), 3)).astype(np.float32)
    lab = (rng.random(n) < 0.05).astype(np.int8) if labels else None
    return SeriesData(name, "test", ts, x, lab, np.arange(n))


def sort_windows(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(["series", "timestamp"], maintain_order=True) if df.height else df


def assert_same(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.columns == want.columns
    assert got.height == want.height
    for c in want.columns:
        a, b = got[c], want[c]
        assert a.dtype == b.dtype, c
        if a.dtype.is_float():
            # bitwise: the same bits, NaN where NaN
            assert np.array_equal(a.to_numpy().view(np.uint32 if a.dtype == pl.Float32
                                                    else np.uint64),
                                  b.to_numpy().view(np.uint32 if b.dtype == pl.Float32
                                                    else np.uint64)), c  # fmt: skip
        else:
            assert a.to_list() == b.to_list(), c


def stream(
    det: Detector, series: list[SeriesData], opts: ScoreOptions, rng: np.random.Generator,
    max_piece: int, overlap: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:  # fmt: skip
    labels = all(s.labels is not None for s in series)
    sc = StreamScorer(det, opts, labels, overlap=overlap)
    pos = {s.name: 0 for s in series}
    tables: list[pl.DataFrame] = []
    live = [s for s in series]
    while live:
        s = live[int(rng.integers(len(live)))]
        i = pos[s.name]
        k = int(rng.integers(1, max_piece + 1))
        lab = s.labels[i : i + k] if labels and s.labels is not None else None
        tables += sc.push(s.name, s.timestamps[i : i + k], s.values[i : i + k], lab)
        pos[s.name] = i + k
        if pos[s.name] >= s.values.shape[0]:
            tables += sc.finish(s.name)
            live.remove(s)
    tables += sc.drain()
    sc.close()
    from anomae.score import events_frame

    windows = pl.concat(tables) if tables else pl.DataFrame()
    return windows, events_frame(sc.events)


_SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@settings(max_examples=30, deadline=None, suppress_health_check=_SLOW)
@given(
    seed=st.integers(0, 10**6),
    length=st.sampled_from([1, 3, 5]),
    stride=st.sampled_from([1, 2]),
    rule=st.builds(PostRule, min_windows=st.integers(1, 3), max_gap=st.integers(0, 4),
                   off=st.sampled_from([1.0, 0.7]), cooldown=st.integers(0, 6)),  # fmt: skip
    lik=st.booleans(),
    labels=st.booleans(),
    chunk=st.sampled_from([1, 4, 7, 2048]),
    max_piece=st.sampled_from([1, 3, 50, 500]),
    overlap=st.sampled_from([0, 1, 3]),
)
def test_stream_equals_whole_series(
    tmp_path: Path, seed: int, length: int, stride: int, rule: PostRule, lik: bool,
    labels: bool, chunk: int, max_piece: int, overlap: int,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    det = detector(tmp_path, length, stride)
    series = [make_series(rng, f"s{i}", int(rng.integers(0, 400)), labels) for i in range(3)]
    likelihood = Likelihood(short=3, long=40, warmup=10, refit=5) if lik else None
    opts = ScoreOptions(rule=rule, top_k=2, likelihood=likelihood, chunk_windows=chunk,
                        progress=False)  # fmt: skip
    want_w, want_e, _ = reference_score_all(det, series, opts)
    got_w, got_e = stream(det, series, opts, rng, max_piece, overlap)
    if want_w.height == 0:
        assert got_w.height == 0
    else:
        assert_same(sort_windows(got_w), sort_windows(want_w))
    assert_same(got_e.sort(["series", "start"]), want_e.sort(["series", "start"]))
    # score_all is the same scorer, series after series
    all_w, all_e, summary = score_all(det, series, opts)
    if want_w.height:
        assert_same(all_w, want_w)
    assert_same(all_e.sort(["series", "start"]), want_e.sort(["series", "start"]))
    assert summary.n_windows == want_w.height


def test_long_event_across_many_pieces_keeps_memory_small(tmp_path: Path) -> None:
    """An event as long as the series: settled windows leave as they come (none held back
    while the event is open), and its record equals the whole-series one."""
    det = detector(tmp_path, 3, 1)
    rng = np.random.default_rng(5)
    s = make_series(rng, "s0", 3000, False)
    s.values[:] = np.abs(s.values) + 5  # every window far above the threshold
    s.timestamps[:] = np.arange(3000, dtype=np.int64) * 60 * 10**9
    opts = ScoreOptions(rule=PostRule(min_windows=2, max_gap=3), chunk_windows=16)
    sc = StreamScorer(det, opts)
    out = 0
    for i in range(0, 3000, 100):
        out += sum(t.height for t in sc.push("s0", s.timestamps[i : i + 100],
                                              s.values[i : i + 100]))  # fmt: skip
        assert sc._series["s0"].events._held is None or len(sc._series["s0"].events._held) < 20
    assert out > 2900
    tail = sc.finish("s0")
    want_w, want_e, _ = reference_score_all(det, [s], opts)
    from anomae.score import events_frame

    assert_same(events_frame(sc.events), want_e)
    assert want_e.height == 1 and out + sum(t.height for t in tail) == want_w.height


@pytest.mark.parametrize("season", [0.0, 3600.0])
def test_likelihood_interval_is_the_cards(tmp_path: Path, season: float) -> None:
    """With a season the interval between windows is the card's (as the monitor's)."""
    det = detector(tmp_path, 3, 2)
    spec = Likelihood(short=3, long=40, warmup=10, refit=5, season_s=season, tolerance_s=0)
    sc = StreamScorer(det, ScoreOptions(likelihood=spec))
    assert sc.interval_s == 120.0


def test_pushed_rows_are_copied_so_a_batch_can_be_freed(tmp_path: Path) -> None:
    # batch scoring frees a batch once its rows are pushed: the scorer keeps copies in one
    # buffer per series (at most a chunk's rows), never views of the pushed arrays
    import weakref

    det = detector(tmp_path, 8, 1)
    sc = StreamScorer(det, ScoreOptions(threshold=1.0, chunk_windows=16), labels=True)
    rng = np.random.default_rng(3)
    t = 0
    for k in (5, 40, 3, 30):  # below, across and past a chunk (23 rows)
        ts = (1_700_000_000 + 60 * np.arange(t, t + k, dtype=np.int64)) * 10**9
        x = rng.normal(0, 1, (k, 3)).astype(np.float32)
        lab = np.zeros(k, np.int8)
        refs = [weakref.ref(a) for a in (ts, x, lab)]
        sc.push("s1", ts, x, lab)
        del ts, x, lab
        assert all(r() is None for r in refs)
        assert sc._series["s1"].rows.ts.shape[0] <= 23  # type: ignore[union-attr]
        t += k


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("max_piece", [1, 37, 400])
def test_overlap_keeps_every_output_in_order(
    tmp_path: Path, max_piece: int, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``overlap`` the calls run in worker threads, queued ahead, and their pieces
    (and a series' end) come out of later pushes: the tables and events are the same, row
    for row, in the same order; also when every call waits for the one before
    (``IN_FLIGHT_WINDOWS`` 0)."""
    if max_piece == 37:
        monkeypatch.setattr("anomae.stream_score.IN_FLIGHT_WINDOWS", 0)
    det = detector(tmp_path, 5, 1)
    opts = ScoreOptions(rule=PostRule(min_windows=2, max_gap=1), top_k=2, chunk_windows=16,
                        progress=False)  # fmt: skip
    series = [make_series(np.random.default_rng(i), f"s{i}", 300 + 50 * i, True)
              for i in range(4)]  # fmt: skip
    runs = [stream(det, series, opts, np.random.default_rng(7), max_piece, overlap)
            for overlap in (0, workers)]  # fmt: skip
    (want_w, want_e), (got_w, got_e) = runs
    assert want_w.height > 0 and want_e.height > 0
    assert_same(got_w, want_w)
    assert_same(got_e, want_e)


def test_overlap_raises_a_damaged_models_nan_when_its_call_is_finished(tmp_path: Path) -> None:
    det = Detector.load(detector(tmp_path, 5, 1).path, threads=1)  # its own: patched below
    sc = StreamScorer(det, ScoreOptions(threshold=1.0, chunk_windows=16), overlap=True)
    real = det.score_series

    def nan_scores(values: np.ndarray, chunk: int | None = None) -> Any:
        out = real(values, chunk)
        out.score[:] = np.nan
        return out

    det.score_series = nan_scores  # type: ignore[method-assign]
    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    ts = np.arange(100, dtype=np.int64) * 60_000_000_000
    assert sc.push("a", ts[:20], x[:20]) == []  # one call of 16 windows, running
    with pytest.raises(DetectorError, match="series 'a' with observed values scored NaN"):
        sc.push("b", ts, x)  # a's call is finished here, if it is done
        sc.drain()  # or here
    sc.close()
