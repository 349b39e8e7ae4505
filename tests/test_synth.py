"""Tests for :mod:`anomae.synth`: schema, determinism, labels and the injected anomalies."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.synth import ANOMALY_KINDS, SENSORS, SynthConfig, anomaly_events, generate, write_demo

CFG = SynthConfig()
CONTEXT = 60  # rows either side of a segment; the generator keeps them normal


@pytest.fixture(scope="module")
def frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    return generate(CFG)


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    return anomaly_events(CFG)


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    """The test period without anomalies: the same readings before injection.

    Signals, anomalies and missing readings come from separate random streams, so only the
    anomalous cells (and the missing readings an anomaly would have hidden) differ.
    """
    return generate(replace(CFG, anomalies_per_kind=0))[1]


def _segment(
    test: pl.DataFrame, event: dict, sensor: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(before, inside, after) values of ``sensor`` around one event, nulls as NaN."""
    rows = test.filter(pl.col("series") == event["series"]).with_row_index("i")
    inside = rows.filter(pl.col("timestamp").is_between(event["start"], event["end"]))
    s, e = int(inside["i"][0]), int(inside["i"][-1]) + 1
    x = rows[sensor].fill_null(np.nan).to_numpy()
    return x[s - CONTEXT : s], x[s:e], x[e : e + CONTEXT]


def _local_std(clean: pl.DataFrame, event: dict, sensor: str) -> float:
    """The sensor's spread in the hours before and after the segment, before injection."""
    before, _, after = _segment(clean, event, sensor)
    return _within_std(before, after)


def _within_std(before: np.ndarray, after: np.ndarray) -> float:
    # Averaged, not pooled: a change of load between the two windows is not noise.
    return float(np.nanstd(before) + np.nanstd(after)) / 2


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    keep = ~(np.isnan(x) | np.isnan(y))
    return float(np.corrcoef(x[keep], y[keep])[0, 1])


def _events_of(events: pl.DataFrame, kind: str) -> list[dict]:
    found = events.filter(pl.col("kind") == kind).to_dicts()
    assert len(found) == CFG.n_series * CFG.anomalies_per_kind
    return found


def test_same_seed_gives_identical_frames(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = generate(SynthConfig())
    assert train.equals(frames[0])
    assert test.equals(frames[1])


def test_different_seed_gives_different_frames(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = generate(SynthConfig(seed=8))
    assert not train.equals(frames[0])
    assert not test.equals(frames[1])


def test_a_machine_does_not_depend_on_how_many_are_generated() -> None:
    one = generate(SynthConfig(n_series=1, train_days=1, test_days=1))
    three = generate(SynthConfig(n_series=3, train_days=1, test_days=1))
    for small, big in zip(one, three, strict=True):
        assert small.equals(big.filter(pl.col("series") == "m1"))


@pytest.mark.parametrize("n_features", [6, 8, 12])
def test_schema_and_dtypes(n_features: int) -> None:
    cfg = SynthConfig(n_series=2, n_features=n_features, train_days=1, test_days=1)
    features = list(SENSORS[:n_features])
    expected = {"timestamp": pl.Datetime("us"), "series": pl.Utf8}
    expected |= {f: pl.Float64 for f in features}
    expected |= {"label": pl.Int8, "anomaly": pl.Utf8}
    for frame in generate(cfg):
        # Datetime equality compares unit and time zone: microseconds, naive.
        assert dict(frame.schema) == expected
        assert list(frame.columns) == list(expected)


def test_default_sizes_and_series_names(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train, test = frames
    assert CFG.features == ("temp_in", "temp_out", "pressure", "flow", "rpm", "vibration",
                            "current", "voltage")  # fmt: skip
    for frame, rows in ((train, 7200), (test, 2880)):
        counts = frame.group_by("series").len().sort("series")
        assert counts["series"].to_list() == ["m1", "m2", "m3", "m4"]
        assert counts["len"].to_list() == [rows] * 4


def test_sorted_regular_timestamps_and_test_follows_train(
    frames: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    train, test = frames
    step = timedelta(seconds=CFG.freq_s)
    for frame in frames:
        assert frame.equals(frame.sort("series", "timestamp"))
        steps = frame.group_by("series").agg(pl.col("timestamp").diff().drop_nulls().unique())
        assert all(v == [step] for v in steps["timestamp"].to_list())
    assert train["timestamp"][0].isoformat() == CFG.start
    last = train.group_by("series").agg(pl.col("timestamp").max().alias("last"))
    first = test.group_by("series").agg(pl.col("timestamp").min().alias("first"))
    joined = last.join(first, on="series")
    assert joined.height == CFG.n_series
    assert (joined["first"] - joined["last"]).to_list() == [step] * CFG.n_series


def test_train_has_no_labels(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    train = frames[0]
    assert train["label"].sum() == 0
    assert train["anomaly"].null_count() == train.height


def test_labels_mark_exactly_the_anomalous_rows(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    test = frames[1]
    assert set(test["label"].unique().to_list()) == {0, 1}
    assert (test["label"] == 1).equals(test["anomaly"].is_not_null(), check_names=False)


def test_every_kind_in_every_series(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    kinds = frames[1].group_by("series").agg(pl.col("anomaly").drop_nulls().unique())
    assert kinds.height == CFG.n_series
    for found in kinds["anomaly"].to_list():
        assert sorted(found) == sorted(ANOMALY_KINDS)


def test_segments_are_contiguous_separate_and_after_the_lead_in(
    frames: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    for (series,), rows in frames[1].group_by("series"):
        labels = rows["label"].to_numpy()
        assert labels[:200].sum() == 0
        edges = np.flatnonzero(np.diff(np.r_[0, labels, 0]))
        starts, stops = edges[::2], edges[1::2]
        assert len(starts) == len(ANOMALY_KINDS) * CFG.anomalies_per_kind, series
        for s, e in zip(starts, stops, strict=True):
            kind = rows["anomaly"][int(s) : int(e)].unique().to_list()
            assert len(kind) == 1
            lengths = {"spike": (1, 5), "drift": (100, 180)}.get(kind[0], (10, 180))
            assert lengths[0] <= e - s <= lengths[1], (series, kind, e - s)


def test_events_agree_with_labels(
    frames: tuple[pl.DataFrame, pl.DataFrame], events: pl.DataFrame
) -> None:
    test = frames[1]
    assert events.height == CFG.n_series * len(ANOMALY_KINDS) * CFG.anomalies_per_kind
    covered = 0
    for ev in events.to_dicts():
        inside = test.filter(
            (pl.col("series") == ev["series"])
            & pl.col("timestamp").is_between(ev["start"], ev["end"])
        )
        assert inside["anomaly"].unique().to_list() == [ev["kind"]]
        assert 1 <= len(ev["sensors"]) <= 2 and set(ev["sensors"]) <= set(CFG.features)
        covered += inside.height
    assert covered == test["label"].sum()


@pytest.mark.parametrize("rate", [0.0, 0.002, 0.05])
def test_missing_rate_roughly_as_configured(rate: float) -> None:
    cfg = SynthConfig(missing_rate=rate)
    for frame in generate(cfg):
        cells = frame.select(cfg.features)
        observed = sum(cells.null_count().row(0)) / (cells.height * cells.width)
        assert observed == pytest.approx(rate, rel=0.25, abs=1e-12)
        assert cells.select(pl.all().is_nan().sum()).sum_horizontal().item() == 0
        assert frame.select("timestamp", "series", "label").null_count().sum_horizontal()[0] == 0


def test_readings_are_physically_plausible(frames: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    x = {c: frames[0][c].drop_nulls().to_numpy() for c in CFG.features}
    for sensor in ("pressure", "flow", "rpm", "vibration", "current"):
        assert x[sensor].min() > 0, sensor
    assert 360 < x["voltage"].min() and x["voltage"].max() < 440
    assert -10 < x["temp_in"].min() and x["temp_out"].max() < 60
    assert x["temp_out"].mean() > x["temp_in"].mean()
    assert 500 < x["rpm"].min() and x["rpm"].max() < 3600


@pytest.mark.parametrize("pair", [("rpm", "flow"), ("rpm", "current"), ("flow", "pressure")])
def test_load_driven_sensors_are_strongly_correlated(
    frames: tuple[pl.DataFrame, pl.DataFrame], pair: tuple[str, str]
) -> None:
    for (series,), rows in frames[0].group_by("series"):
        both = rows.select(pair).drop_nulls()
        r = np.corrcoef(both[pair[0]].to_numpy(), both[pair[1]].to_numpy())[0, 1]
        assert r > 0.7, (series, pair, r)


def test_injection_touches_only_the_event_rows_and_sensors(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    test = frames[1]
    a, b = (f.select(CFG.features).to_numpy() for f in (test, clean))
    known = ~np.isnan(a) & ~np.isnan(b)  # the clean run may miss a reading an anomaly keeps
    changed = (a != b) & known
    expected = np.zeros_like(changed)
    index = test.with_row_index("i")
    for ev in events.to_dicts():
        rows = index.filter(
            (pl.col("series") == ev["series"])
            & pl.col("timestamp").is_between(ev["start"], ev["end"])
        )["i"].to_numpy()
        # A correlation break rewrites the follower only; its partner keeps its readings.
        sensors = ev["sensors"][1:] if ev["kind"] == "correlation_break" else ev["sensors"]
        cols = np.array([CFG.features.index(s) for s in sensors])
        cells = np.ix_(rows, cols)
        assert changed[cells].sum() >= 0.9 * known[cells].sum(), ev
        expected[np.ix_(rows, cols)] = True
    assert not (changed & ~expected).any()
    # Anomalous readings are never hidden by a missing value.
    assert not np.isnan(a[expected]).any()


def test_stuck_sensor_repeats_its_last_value(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    for ev in _events_of(events, "stuck"):
        sensor = ev["sensors"][0]
        before, inside, _ = _segment(frames[1], ev, sensor)
        assert np.all(np.diff(inside) == 0), ev
        assert np.count_nonzero(np.diff(before[~np.isnan(before)])) > 0
        last = _segment(clean, ev, sensor)[0][-1]
        assert np.isnan(last) or inside[0] == last


def test_spike_is_a_large_short_upward_excursion(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    for ev in _events_of(events, "spike"):
        for sensor in ev["sensors"]:
            before, inside, after = _segment(frames[1], ev, sensor)
            jump = (inside - _segment(clean, ev, sensor)[1]) / _local_std(clean, ev, sensor)
            jump = jump[~np.isnan(jump)]  # where the clean run missed the reading
            assert np.all((4.5 < jump) & (jump < 8.5)), (ev, sensor, jump)
            neighbours = np.nanmedian(np.r_[before[-5:], after[:5]])
            excursion = np.max(np.abs(inside - neighbours))
            assert excursion > 3 * _within_std(before, after), (ev, sensor)


def test_level_shift_is_a_constant_step(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    for ev in _events_of(events, "level_shift"):
        for sensor in ev["sensors"]:
            before, inside, after = _segment(frames[1], ev, sensor)
            step = inside - _segment(clean, ev, sensor)[1]
            assert np.nanmax(step) - np.nanmin(step) < 1e-9 * np.nanmax(np.abs(step))
            size = abs(np.nanmean(step)) / _local_std(clean, ev, sensor)
            assert 3.5 < size < 7.5, (ev, sensor, size)
            # Seen in the data: the level jumps at both edges (the sensor itself may wander by
            # as much over the segment's hours, so edges, not whole means, are compared).
            edges = [
                abs(np.nanmean(inside[:10]) - np.nanmean(before[-10:])),
                abs(np.nanmean(inside[-10:]) - np.nanmean(after[:10])),
            ]
            sd = _within_std(before, after)
            assert max(edges) > 2.5 * sd and min(edges) > sd, (ev, sensor, edges, sd)


def test_drift_is_a_growing_ramp(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    for ev in _events_of(events, "drift"):
        sensor = ev["sensors"][0]
        inside = _segment(frames[1], ev, sensor)[1]
        ramp = np.abs(inside - _segment(clean, ev, sensor)[1])
        ramp = ramp[~np.isnan(ramp)]
        assert ramp[0] < 0.1 * ramp[-1] and np.all(np.diff(ramp) >= -1e-9), ev
        size = ramp[-1] / _local_std(clean, ev, sensor)
        assert 3.5 < size < 7.5, (ev, size)


def test_noise_burst_raises_local_noise(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    for ev in _events_of(events, "noise_burst"):
        for sensor in ev["sensors"]:
            before, inside, after = _segment(frames[1], ev, sensor)
            added = np.nanstd(inside - _segment(clean, ev, sensor)[1])
            assert 1.2 < added / _local_std(clean, ev, sensor) < 4, (ev, sensor)
            # First differences cancel the slow load-driven movement and keep the noise.
            normal = np.nanstd(np.r_[np.diff(before), np.diff(after)])
            assert np.nanstd(np.diff(inside)) > 2 * normal, (ev, sensor)
            assert np.nanstd(inside) > 1.5 * _within_std(before, after), (ev, sensor)


def test_correlation_break_decouples_the_pair(
    frames: tuple[pl.DataFrame, pl.DataFrame], clean: pl.DataFrame, events: pl.DataFrame
) -> None:
    train, test = frames
    for ev in _events_of(events, "correlation_break"):
        partner, follower = ev["sensors"]
        normal = train.filter(pl.col("series") == ev["series"]).select(partner, follower)
        r_normal = _corr(normal[partner].to_numpy(), normal[follower].to_numpy())
        r_before = _corr(*(_segment(clean, ev, s)[1] for s in (partner, follower)))
        r_inside = _corr(*(_segment(test, ev, s)[1] for s in (partner, follower)))
        assert r_normal > 0.7 and r_before > 0.5 and abs(r_inside) < 0.1, (
            ev, r_normal, r_before, r_inside,
        )  # fmt: skip
        # The replacement keeps the follower's level and spread: only the coupling breaks.
        replaced, original = _segment(test, ev, follower)[1], _segment(clean, ev, follower)[1]
        assert abs(np.nanmean(replaced) - np.nanmean(original)) < 0.1 * np.nanstd(original)
        assert np.nanstd(replaced) == pytest.approx(np.nanstd(original), rel=0.1)


@pytest.mark.parametrize(
    "changes",
    [
        {"n_features": 5},
        {"n_features": 13},
        {"n_series": 0},
        {"freq_s": 0},
        {"missing_rate": 1.0},
        {"missing_rate": -0.1},
        {"test_days": 0},
        {"start": "not a date"},
    ],
)
def test_invalid_config_is_rejected(changes: dict) -> None:
    with pytest.raises(ValueError):
        SynthConfig(**changes)


def test_too_many_anomalies_for_the_test_period_is_rejected() -> None:
    with pytest.raises(ValueError, match="too short"):
        generate(SynthConfig(n_series=1, test_days=0.5, anomalies_per_kind=3))


def test_more_anomalies_per_kind() -> None:
    cfg = SynthConfig(n_series=1, train_days=1, test_days=3, anomalies_per_kind=3)
    counts = anomaly_events(cfg).group_by("kind").len()
    assert dict(counts.iter_rows()) == {k: 3 for k in ANOMALY_KINDS}


def test_write_demo_writes_readable_files(tmp_path: Path) -> None:
    cfg = SynthConfig(n_series=2, train_days=1, test_days=1)
    out = tmp_path / "demo" / "nested"
    paths = write_demo(out, cfg)
    assert set(paths) == {"train", "test", "test_csv"}
    assert paths["train"].name == "train.parquet" and paths["test_csv"].name == "test.csv"
    train, test = generate(cfg)
    assert pl.read_parquet(paths["train"]).equals(train)
    assert pl.read_parquet(paths["test"]).equals(test)
    assert pl.read_csv(paths["test_csv"], schema=test.schema).equals(test)
    assert sorted(p.name for p in out.iterdir()) == ["test.csv", "test.parquet", "train.parquet"]
    write_demo(out, cfg)  # overwriting in place works and leaves no temporary files
    assert len(list(out.iterdir())) == 3
