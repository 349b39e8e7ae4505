"""``anomae monitor --shadow``: the candidate scores the same windows as batch scoring does,
its figures never reach the current model's families, an incompatible candidate is refused,
and promotion (by rule over the readings' time, or on request) swaps it in with the series'
state kept and the file written; a failed promotion keeps the current model and counts.

The models are real ONNX graphs (:func:`anomae.graph.build_graph`, no training): a zero
network, so a window's score is the mean square of its scaled readings."""

from __future__ import annotations

import json
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import run_cli
from prometheus_client import CollectorRegistry

from anomae.detector import Detector
from anomae.events import PostRule
from anomae.graph import Layer, build_graph
from anomae.io import SeriesData
from anomae.modelfile import write_model
from anomae.monitor.daemon import Monitor, MonitorOptions
from anomae.monitor.promotion import RESULTS
from anomae.monitor.scorer import MonitorError
from anomae.monitor.sources.base import Emit, Raw, Source
from anomae.score import ScoreOptions, score_all
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec

FEATURES = ("temp", "rpm")
RULE = PostRule(min_windows=2)
T0 = 1_767_571_200.0  # 2026-01-05, in the past: no reading is refused as future
EVENTS_BUDGET = {
    "false_events_per_day": 1 / 7,
    "expected_false_events_per_day": 0.1,
    "expected_false_events_per_day_ci": (0.0, 0.5),
}


def model(
    path: Path,
    value: float,
    scale: float = 1.0,
    features: tuple[str, ...] = FEATURES,
    length: int = 4,
) -> Path:
    n = len(features)
    card = ModelCard(
        features,
        WindowSpec(length, 1),
        Scaler((0.0,) * n, (scale,) * n),
        threshold=Threshold(value, "events", **EVENTS_BUDGET),  # type: ignore[arg-type]
        interval_s=60.0,
        max_gap_s=600.0,
    )
    w = np.zeros((length * n, length * n), np.float32)
    write_model(build_graph([Layer("MatMul", [w])], "flat", features, card.window, card.scaler),
                card, path)  # fmt: skip
    return path


def rows(n: int, bumps: dict[str, list[tuple[int, float]]], seed: int = 0) -> dict[str, Any]:
    """Two series of ``n`` minutes of small noise; ``bumps``: (row, height) of 6-row steps."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("m1", "m2"):
        v = rng.normal(0, 0.3, (n, 2)).astype(np.float32)
        for at, h in bumps.get(name, []):
            v[at : at + 6] += h
        out[name] = v
    return out


def readings(data: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> list[Raw]:
    out = []
    n = next(iter(data.values())).shape[0]
    for i in range(start, n if stop is None else stop):
        for name, v in data.items():
            line = {"series": name, "ts": T0 + 60 * i,
                    "values": {"temp": float(v[i, 0]), "rpm": float(v[i, 1])}}  # fmt: skip
            out.append(Raw(json.dumps(line).encode()))
    return out


def series(data: dict[str, np.ndarray]) -> list[SeriesData]:
    out = []
    for name, v in data.items():
        ts = ((T0 + 60 * np.arange(v.shape[0])) * 1e9).astype(np.int64)
        out.append(SeriesData(name, "test", ts, v, None, np.arange(v.shape[0])))
    return out


class FeedSource(Source):
    """Emits what is put into ``feed`` until stopped."""

    kind = "feed"

    def __init__(self) -> None:
        super().__init__()
        self.feed: queue.Queue[Raw] = queue.Queue()

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.up = True
        while not stop.is_set():
            try:
                emit(self.feed.get(timeout=0.05), True)
            except queue.Empty:
                pass
        self.up = False


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


class Running:
    """A monitor on its own thread, fed through a :class:`FeedSource`."""

    def __init__(self, current: Path, opts: MonitorOptions) -> None:
        self.reg = CollectorRegistry()
        self.src = FeedSource()
        self.mon = Monitor(Detector.load(current, threads=1), self.src, self.reg, opts,
                           loader=lambda p: Detector.load(p, threads=1))  # fmt: skip
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.mon.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def value(self, name: str, **labels: str) -> float | None:
        return self.reg.get_sample_value(name, labels)

    def feed(self, items: list[Raw]) -> None:
        before = self.value("anomae_events_received_total") or 0.0
        for item in items:
            self.src.feed.put(item)
        wait_for(lambda: self.mon.queue.depth == 0 and
                 self.value("anomae_events_received_total") == before + len(items))  # fmt: skip
        time.sleep(0.3)  # the last micro-batch is flushed and scored

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def opts(shadow: Path, **kw: Any) -> MonitorOptions:
    return MonitorOptions(rule=RULE, shadow=str(shadow), flush_ms=5.0, batch_size=256,
                          reload_check_seconds=1.0, stats_log_seconds=0, **kw)  # fmt: skip


def test_shadow_scores_as_batch_scoring_does_and_stays_off_the_alerted_families(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    data = rows(600, {"m1": [(100, 2.0), (400, 1.2)], "m2": [(300, 1.0)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data))
    finally:
        run.close()
    for path, label in ((cand, "shadow"), (current, "current")):
        windows, events, _ = score_all(Detector.load(path), series(data),
                                       ScoreOptions(rule=RULE, progress=False))  # fmt: skip
        anomalous = float(windows["is_anomaly"].sum())
        assert run.value("anomae_model_anomalous_windows_total", model=label) == anomalous
        for name in ("m1", "m2"):
            want = events.filter(pl.col("series") == name).height
            got = run.value("anomae_model_events_total", model=label, series=name) or 0.0
            assert got == want, (label, name)
            last = windows.filter(pl.col("series") == name)["score_normalised"][-1]
            metric = "anomae_shadow_anomaly_score" if label == "shadow" else "anomae_anomaly_score"
            assert run.value(metric, series=name) == pytest.approx(last, rel=1e-5)
    assert anomalous > 0
    # the shadow's events never reach the alerted families or the current model's count
    from prometheus_client import generate_latest

    text = generate_latest(run.reg).decode()
    assert 'model="shadow"' not in "".join(
        ln for ln in text.splitlines() if ln.startswith(("anomae_anomaly", "anomae_anomalies"))
    )
    assert run.value("anomae_model_promotions_total", result="ok") == 0


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"features": ("temp", "flow")}, "features differ"),
        ({"length": 5}, "window differs"),
    ],
)
def test_an_incompatible_candidate_is_refused_with_a_message(
    tmp_path: Path, kw: dict[str, Any], why: str
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, **kw)
    with pytest.raises(MonitorError, match=rf"--shadow .*cand.onnx: refused as a shadow .*{why}"):
        Monitor(Detector.load(current), FeedSource(), CollectorRegistry(), opts(cand))


def test_the_cli_refuses_an_incompatible_shadow(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, length=6)
    feed = tmp_path / "in.jsonl"
    feed.write_text("")
    res = run_cli(["monitor", str(current), "--source", str(feed), "--shadow", str(cand),
                   "--listen", "127.0.0.1:0"])  # fmt: skip
    assert res.returncode == 1
    assert "refused as a shadow of the current model: window differs" in res.stderr


def test_promotion_on_request_keeps_the_series_state_and_writes_the_model(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    data = rows(400, {"m1": [(150, 2.0)], "m2": [(250, 1.5)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 200))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        wait_for(lambda: run.mon.scorer.detector.sha256 == Detector.load(cand).sha256)
        assert current.read_bytes() == cand.read_bytes()  # a restart keeps it
        assert run.mon.scorer.shadow is None
        run.feed(readings(data, 200))
        time.sleep(2.5)  # two reload checks: the written file is not a change to reload
        assert run.value("anomae_model_reloads_total", result="ok") == 0
        run.mon.request_promotion()  # nothing left to promote: refused
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
    finally:
        run.close()
    counts = {r: run.value("anomae_model_promotions_total", result=r) for r in RESULTS}
    assert counts == {"ok": 1, "refused": 1, "error": 0}
    # the rings carried over: no window restarted, every row after the first 3 scored once
    assert run.value("anomae_windows_scored_total") == 2 * (400 - 3)
    windows, _, _ = score_all(Detector.load(cand), series(data),
                              ScoreOptions(rule=RULE, progress=False))  # fmt: skip
    for name in ("m1", "m2"):
        last = windows.filter(pl.col("series") == name)["score_normalised"][-1]
        assert run.value("anomae_anomaly_score", series=name) == pytest.approx(last, rel=1e-5)


def test_promotion_by_rule_over_the_readings_time(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 50.0)
    cand = model(tmp_path / "cand.onnx", 40.0)
    data = rows(3 * 1440, {})  # three quiet days: neither model has an event
    run = Running(current, opts(cand, shadow_promote_after_seconds=2 * 86400.0))
    try:
        run.feed(readings(data, 0, 1440))  # one day: not yet
        time.sleep(1.2)
        assert run.value("anomae_model_promotions_total", result="ok") == 0
        # from the end of the first window
        assert run.value("anomae_shadow_scored_seconds") == (1439 - 3) * 60
        run.feed(readings(data, 1440))
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
    finally:
        run.close()
    assert current.read_bytes() == cand.read_bytes()


def test_the_rule_refuses_a_shadow_that_misses_events_or_alarms_too_often(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    blind = model(tmp_path / "blind.onnx", 500.0)  # sees nothing: misses the bump
    data = rows(1440, {"m1": [(700, 3.0)]})
    run = Running(current, opts(blind, shadow_promote_after_seconds=3600.0))
    try:
        run.feed(readings(data))
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
        assert run.value("anomae_shadow_missed_events_total") == 1
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 0
    assert current.read_bytes() != blind.read_bytes()
    noisy = model(tmp_path / "noisy.onnx", 0.2)  # alarms all the time
    run = Running(current, opts(noisy, shadow_promote_after_seconds=3600.0))
    try:
        run.feed(readings(rows(1440, {})))
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 0


def test_a_failed_promotion_keeps_the_current_model_and_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    current = model(folder / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    data = rows(300, {"m1": [(100, 2.0)]})
    run = Running(current, opts(cand))
    sha = run.mon.scorer.detector.sha256
    try:
        run.feed(readings(data, 0, 150))
        shutil.rmtree(folder)
        folder.write_text("not a folder")  # the model file cannot be written
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="error") == 1)
        run.feed(readings(data, 150))
        assert run.mon.scorer.detector.sha256 == sha
        assert run.mon.scorer.shadow is not None  # still tried beside
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 0
    assert run.value("anomae_windows_scored_total") == 2 * (300 - 3)


def test_a_new_candidate_file_replaces_the_shadow_and_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5)
    data = rows(200, {"m1": [(100, 2.0)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 100))
        first = run.mon.scorer.shadow
        wrong = model(tmp_path / "wrong.onnx", 1.0, length=5)
        shutil.copy(wrong, cand)  # the next retrain run wrote a candidate of another window
        time.sleep(2.5)
        assert run.mon.scorer.shadow is first
        newer = model(tmp_path / "newer.onnx", 1.2, scale=0.9)
        shutil.copy(newer, cand)
        wait_for(lambda: run.mon.scorer.shadow is not first)
        assert run.mon.scorer.shadow.detector.sha256 == Detector.load(newer).sha256
        run.feed(readings(data, 100))
    finally:
        run.close()
    # the new shadow's figures start afresh: only the windows after it came
    assert (run.value("anomae_shadow_scored_seconds") or 0) < 100 * 60


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * 86400.0), ("12h", 43200.0), ("30m", 1800.0), ("45s", 45.0), ("90", 90.0),
     ("0", 0.0), ("1.5d", 129600.0), ("-1d", None), ("week", None), ("inf", None), ("", None)],
)  # fmt: skip
def test_shadow_promote_after_takes_a_duration(text: str, seconds: float | None) -> None:
    import click

    from anomae.cli.monitoring import _duration

    if seconds is None:
        with pytest.raises(click.BadParameter, match="7d, 12h, 30m or 45s"):
            _duration(text)
    else:
        assert _duration(text) == seconds
