"""``anomae monitor --shadow``: the candidate scores the same windows as batch scoring does,
its figures never reach the current model's families, an incompatible candidate is refused.
Promotion is tested in test_monitor_promotion.py, with the helpers defined here.

The models are real ONNX graphs (:func:`anomae.graph.build_graph`, no training): a zero
network, so a window's score is the mean square of its scaled readings."""

from __future__ import annotations

import json
import queue
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


def assert_gauges_are_batch_scores(run: Running, path: Path, data: dict[str, np.ndarray]) -> None:
    """Each series' anomae_anomaly_score is the last normalised score that batch scoring
    with the model at ``path`` gives the same rows."""
    windows, _, _ = score_all(Detector.load(path), series(data),
                              ScoreOptions(rule=RULE, progress=False))  # fmt: skip
    for name in ("m1", "m2"):
        last = windows.filter(pl.col("series") == name)["score_normalised"][-1]
        assert run.value("anomae_anomaly_score", series=name) == pytest.approx(last, rel=1e-5)


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
