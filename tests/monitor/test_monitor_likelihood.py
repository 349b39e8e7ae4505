"""The monitor's vectorised anomaly likelihood equals the batch form, window for window."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from anomae.likelihood import Likelihood, likelihood_scores
from anomae.monitor.likelihood import LikelihoodBank, occurrence


def replay(bank: LikelihoodBank, raw: list[np.ndarray], seed: int, max_batch: int) -> list:
    """Interleave the series at random (each in order), feed random-sized micro-batches;
    returns each series' normalised scores in its own order."""
    rng = np.random.default_rng(seed)
    slots = np.concatenate([np.full(r.size, i) for i, r in enumerate(raw)])
    rng.shuffle(slots)  # the order of slots, not of one series' scores
    pos = np.zeros(len(raw), int)
    scores = np.empty(slots.size)
    for j, s in enumerate(slots.tolist()):
        scores[j] = raw[s][pos[s]]
        pos[s] += 1
    got = np.empty(slots.size)
    i = 0
    while i < slots.size:
        n = int(rng.integers(1, max_batch + 1))
        got[i : i + n] = bank.step(slots[i : i + n], scores[i : i + n])
        i += n
    return [got[slots == s] for s in range(len(raw))]


@settings(max_examples=60, deadline=None)
@given(
    short=st.integers(1, 6),
    long=st.integers(1, 60),
    warmup=st.integers(2, 40),
    refit=st.integers(1, 15),
    min_spread=st.sampled_from([0.0, 0.05, 0.1]),
    n_series=st.integers(1, 5),
    max_batch=st.sampled_from([1, 3, 17, 200]),
    seed=st.integers(0, 2**16),
)
def test_bank_equals_batch_likelihood_in_any_micro_batches(
    short: int,
    long: int,
    warmup: int,
    refit: int,
    min_spread: float,
    n_series: int,
    max_batch: int,
    seed: int,
) -> None:
    spec = Likelihood(short=short, long=long, warmup=warmup, refit=refit, min_spread=min_spread)
    rng = np.random.default_rng(seed)
    raw = []
    for _ in range(n_series):
        x = rng.gamma(3.0, 0.2, int(rng.integers(0, 250)))
        x[rng.random(x.size) < 0.05] = np.nan  # missing scores: skipped by both
        x[rng.random(x.size) < 0.02] += 20.0  # outliers, so some windows alarm
        raw.append(x)
    got = replay(LikelihoodBank(spec), raw, seed, max_batch)
    for g, x in zip(got, raw, strict=True):
        want = likelihood_scores(x, spec)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want))
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)


def test_default_settings_on_long_series_equal_batch() -> None:
    # long > refit and not a multiple of it: blocks are cut at two residues
    spec = Likelihood(long=8640 // 16, warmup=100, refit=100)
    rng = np.random.default_rng(1)
    raw = [rng.gamma(4.0, 0.25, 3000) * (1 + 0.5 * np.sin(np.arange(3000) / 300)) for _ in "ab"]
    raw[1][2000:2010] += 30.0
    got = replay(LikelihoodBank(spec), raw, 2, 1024)
    for g, x in zip(got, raw, strict=True):
        want = likelihood_scores(x, spec)
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)
    assert (got[1][2000:2010] > 1).any()  # the burst alarms


def test_forget_starts_a_slot_afresh() -> None:
    spec = Likelihood(short=2, long=30, warmup=5, refit=3)
    raw = np.random.default_rng(3).gamma(3.0, 0.2, 60)
    bank = LikelihoodBank(spec)
    bank.step(np.zeros(40, int), raw[:40] * 5.0)  # another series used slot 0
    bank.forget(0)
    got = bank.step(np.zeros(60, int), raw)
    np.testing.assert_allclose(got, likelihood_scores(raw, spec), rtol=1e-9)


def test_slots_beyond_the_initial_capacity_grow_the_state() -> None:
    spec = Likelihood(short=1, long=10, warmup=2, refit=1)
    bank = LikelihoodBank(spec)
    slots = np.repeat([5, 500, 5000], 20)
    raw = np.random.default_rng(4).gamma(3.0, 0.2, 60)
    got = bank.step(slots, raw)
    for k in range(3):
        part = raw[20 * k : 20 * (k + 1)]
        np.testing.assert_allclose(got[20 * k : 20 * (k + 1)], likelihood_scores(part, spec))


def test_occurrence_counts_earlier_windows_of_the_same_slot() -> None:
    assert occurrence(np.array([2, 2, 0, 2, 0, 7])).tolist() == [0, 1, 0, 2, 1, 0]
    assert occurrence(np.array([], np.int64)).tolist() == []


@settings(max_examples=40, deadline=None)
@given(
    season=st.integers(2, 30),
    seasons=st.integers(1, 3),
    tol=st.integers(0, 5),
    warmup=st.integers(2, 40),
    refit=st.integers(1, 9),
    max_batch=st.sampled_from([1, 7, 200]),
    seed=st.integers(0, 2**16),
)
def test_bank_with_a_season_equals_batch_likelihood(
    season: int, seasons: int, tol: int, warmup: int, refit: int, max_batch: int, seed: int
) -> None:
    interval = 60.0
    spec = Likelihood(
        short=2,
        long=50,
        warmup=warmup,
        refit=refit,
        season_s=season * interval,
        seasons=seasons,
        tolerance_s=min(tol, season - 1) * interval,
    )
    rng = np.random.default_rng(seed)
    t = np.arange(300)
    raw = [  # spikes at the same phase of every season: the cap's case
        rng.gamma(4.0, 0.25, 300) + 6.0 * ((t % season) == 0) * (t > 2 * season),
        rng.gamma(2.0, 0.5, 250),
    ]
    raw[1][rng.random(250) < 0.05] = np.nan
    got = replay(LikelihoodBank(spec, interval), raw, seed, max_batch)
    for g, r in zip(got, raw, strict=True):
        np.testing.assert_allclose(g, likelihood_scores(r, spec, interval), rtol=1e-9)


def test_the_season_caps_what_recurs() -> None:
    spec = Likelihood(short=3, long=500, warmup=50, refit=7)
    seasonal = Likelihood(short=3, long=500, warmup=50, refit=7, season_s=3000, tolerance_s=300)
    t = np.arange(2000)
    raw = np.random.default_rng(0).gamma(4.0, 0.25, 2000) + 8 * ((t % 50) < 3) * (t > 600)
    plain = LikelihoodBank(spec).step(np.zeros(2000, int), raw)
    capped = LikelihoodBank(seasonal, 60.0).step(np.zeros(2000, int), raw)
    assert (capped > 1).sum() * 5 < (plain > 1).sum()  # 5 vs 45 windows above 1


def test_a_season_without_an_interval_is_refused_with_what_to_change() -> None:
    with pytest.raises(ValueError, match="season_s 86400.*retrain.*--likelihood-season-s 0"):
        LikelihoodBank(Likelihood(season_s=86400))
    with pytest.raises(ValueError, match=r"spans 1729800 windows of 1 s.*longer window stride"):
        LikelihoodBank(Likelihood(season_s=86400, seasons=20), 1.0)


LIK = ["--likelihood", "--likelihood-warmup", "60", "--likelihood-long", "400"]


@pytest.fixture(scope="module")
def replay_setup(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small model and the demo test period as JSON lines, series interleaved in time."""
    out = tmp_path_factory.mktemp("lik")
    model = out / "model.onnx"
    flags = ["--window", "16", "--hidden", "32,8", "--epochs", "3", "--train-stride", "2"]
    r = run_cli(["train", str(small_demo["train"]), "-o", str(model), *flags, "--no-progress"])
    assert r.returncode == 0, r.stderr
    df = pl.read_parquet(small_demo["test"]).sort("timestamp", "series")
    feats = [c for c in df.columns if c not in ("timestamp", "series", "label", "anomaly")]
    events = out / "events.jsonl"
    with open(events, "w") as f:
        for r in df.iter_rows(named=True):
            ts = (r["timestamp"] - dt.datetime(1970, 1, 1)).total_seconds()
            vals = {k: (None if r[k] is None or r[k] != r[k] else r[k]) for k in feats}
            f.write(json.dumps({"series": r["series"], "ts": ts, "values": vals}) + "\n")
    return {"model": model, "events": events, "test": small_demo["test"], "out": out}


@pytest.mark.slow
def test_monitor_replay_with_likelihood_equals_anomae_score(replay_setup: dict) -> None:
    m, out = replay_setup, replay_setup["out"]
    sink = out / "sink.jsonl"
    sink.unlink(missing_ok=True)
    args = ["--source", str(m["events"]), "--sink", str(sink), "--listen", "127.0.0.1:0"]
    r = run_cli(["monitor", str(m["model"]), *args, "--max-gap-seconds", "1e9", *LIK])
    assert r.returncode == 0, r.stderr
    scores, ev = out / "scores.parquet", out / "events.csv"
    r = run_cli(
        ["score", str(m["model"]), str(m["test"]), "-o", str(scores), "--events", str(ev), *LIK]
    )
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in sink.read_text().splitlines()]
    win = pl.DataFrame([x for x in recs if x["type"] == "window"], infer_schema_length=None)
    spec = Likelihood(warmup=60, long=400)
    for _, part in win.group_by("series"):
        # the stream's likelihood is the batch form's on the same raw scores, to rounding
        raw = part["score"].cast(pl.Float32).cast(pl.Float64).to_numpy()  # the float32 scored
        want = likelihood_scores(raw, spec).astype(np.float32)
        got = part["score_normalised"].cast(pl.Float32).cast(pl.Float64).to_numpy()
        assert np.isnan(got[: spec.warmup]).all()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)
    win = win.with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC")
        .cast(pl.Datetime("ns", "UTC")).alias("timestamp")
    )  # fmt: skip
    batch = pl.read_parquet(scores)
    both = batch.join(win, on=["series", "timestamp"], how="inner", suffix="_stream")
    assert both.height == batch.height == win.height
    # the batch command cuts long series with another branch of the graph: its raw scores
    # differ by float rounding (rtol 1e-5, see test_cli_monitoring), and so do the likelihoods
    a = both["score_normalised_stream"].cast(pl.Float64).to_numpy()
    b = both["score_normalised"].cast(pl.Float64).to_numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, equal_nan=True)
    assert (both["is_anomaly_stream"] == both["is_anomaly"]).all()
    streamed = sorted(
        (x["series"], x["start"][:19], x["n_windows"]) for x in recs if x["type"] == "event"
    )
    batch_ev = pl.read_csv(ev).select("series", "start", "n_windows").rows()
    assert streamed == sorted((s, str(t).replace(" ", "T")[:19], n) for s, t, n in batch_ev)
    assert len(streamed) > 0


@pytest.mark.slow
def test_anomaly_score_metric_is_the_likelihood(replay_setup: dict) -> None:
    from prometheus_client import CollectorRegistry

    from anomae.detector import Detector
    from anomae.monitor.daemon import Monitor, MonitorOptions
    from anomae.monitor.sink import JsonlSink
    from anomae.monitor.sources.files import FileSource

    spec = Likelihood(warmup=60, long=400)
    reg = CollectorRegistry()
    sink_path = replay_setup["out"] / "metric-sink.jsonl"
    sink_path.unlink(missing_ok=True)
    opts = MonitorOptions(likelihood=spec, max_gap_seconds=1e9, stats_log_seconds=0)
    det = Detector.load(replay_setup["model"], threads=1)
    mon = Monitor(det, FileSource(str(replay_setup["events"])), reg, opts, JsonlSink(sink_path))
    assert mon.run(threading.Event()) == 0
    last: dict[str, dict] = {}
    for x in map(json.loads, sink_path.read_text().splitlines()):
        if x["type"] == "window":
            last[x["series"]] = x
    assert len(last) == 2
    for name, x in last.items():
        got = reg.get_sample_value("anomae_anomaly_score", {"series": name})
        assert got == pytest.approx(x["score_normalised"], rel=1e-6)
        assert got != pytest.approx(x["score"] / det.threshold, rel=1e-3)
