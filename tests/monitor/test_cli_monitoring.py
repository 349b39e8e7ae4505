"""``anomae monitor`` end to end, as real processes on 127.0.0.1: replay equals ``anomae
score``, SIGTERM drains with no partial record, SIGHUP reloads (and refuses a model with
other features), malformed input never crashes it, options come from the environment."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import blocked_imports, run_cli

pytestmark = pytest.mark.slow
TRAIN_FLAGS = ["--window", "16", "--hidden", "32,8", "--epochs", "3", "--train-stride", "2"]
TRAIN_FLAGS += ["--method", "quantile", "--q", "0.995"]  # alarms enough to compare events


@pytest.fixture(scope="module")
def model(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("monitor-model") / "model.onnx"
    r = run_cli(["train", str(small_demo["train"]), "-o", str(path), *TRAIN_FLAGS, "--no-progress"])
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture(scope="module")
def events(small_demo: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test period as JSON lines, series interleaved in time; m1 with RFC 3339 times,
    m2 with epoch seconds, NaN values as null."""
    df = pl.read_parquet(small_demo["test"]).sort("timestamp", "series")
    feats = [c for c in df.columns if c not in ("timestamp", "series", "label", "anomaly")]
    path = tmp_path_factory.mktemp("monitor-events") / "events.jsonl"
    with open(path, "w") as f:
        for i, r in enumerate(df.iter_rows(named=True)):
            ts: Any = r["timestamp"].isoformat() + "Z"
            if r["series"] != "m1":
                ts = (r["timestamp"] - dt.datetime(1970, 1, 1)).total_seconds()
            vals = {k: (None if r[k] is None or r[k] != r[k] else r[k]) for k in feats}
            f.write(json.dumps({"series": r["series"], "ts": ts, "values": vals, "seq": i}) + "\n")
    return path


RUNNING: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_leftover_daemons() -> Any:
    yield
    while RUNNING:  # a failed test must not leave a daemon behind
        proc = RUNNING.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Daemon:
    """``anomae monitor`` in a subprocess; reads its structured log lines as they come."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, **kw: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "anomae.cli", "monitor", *args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            **kw,
        )
        RUNNING.append(self.proc)
        self.logs: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.wait_log("listening")["url"]

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for text in self.proc.stderr:
            try:
                self.logs.put(json.loads(text))
            except ValueError:
                self.logs.put({"msg": "raw", "text": text})

    def wait_log(self, msg: str, timeout: float = 30) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                rec = self.logs.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(rec)
            if rec.get("msg") == msg:
                return rec
        raise AssertionError(f"no log {msg!r} in {timeout}s; seen {self.seen}")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, ""

    def wait_ready(self, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while self.get("/readyz")[0] != 200:
            assert time.monotonic() < end, "never ready"
            time.sleep(0.05)

    def metric(self, name: str) -> float | None:
        for text in self.get("/metrics")[1].splitlines():
            if text.startswith(name + " "):
                return float(text.split()[-1])
        return None

    def wait_metric(self, name: str, value: float, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while self.metric(name) != value:
            assert time.monotonic() < end, f"{name} = {self.metric(name)}, waiting for {value}"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def sink_records(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")  # no partial record
    return [json.loads(x) for x in data.splitlines()]


def n_windows(model: Path, small_demo: dict[str, Path]) -> int:
    card = json.loads(run_cli(["inspect", str(model), "--json"]).stdout)
    length = card["window"]["length"]
    rows = pl.read_parquet(small_demo["test"]).group_by("series").len()["len"].to_list()
    return sum(r - length + 1 for r in rows)


def test_replay_from_stdin_equals_anomae_score(
    model: Path, events: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    sink = tmp_path / "out.jsonl"
    with open(events, "rb") as stdin:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "anomae.cli",
                "monitor",
                str(model),
                "--source",
                "-",
                "--sink",
                str(sink),
                "--listen",
                "127.0.0.1:0",
                "--max-gap-seconds",
                "1e9",
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    assert "post-rule min_windows=3 (card), max_gap=16 (card)" in r.stderr  # the card's policy
    stopped = json.loads(r.stderr.strip().splitlines()[-1])
    assert stopped["msg"] == "stopped" and stopped["invalid"] == stopped["dropped"] == 0
    scores, ev = tmp_path / "scores.parquet", tmp_path / "events.csv"
    r = run_cli(
        ["score", str(model), str(small_demo["test"]), "-o", str(scores), "--events", str(ev)]
    )
    assert r.returncode == 0, r.stderr
    batch = pl.read_parquet(scores)
    recs = sink_records(sink)
    win = pl.DataFrame([x for x in recs if x["type"] == "window"]).with_columns(
        pl.col("ts")
        .str.to_datetime(time_zone="UTC")
        .cast(pl.Datetime("ns", "UTC"))
        .alias("timestamp")
    )
    assert win.height == batch.height == stopped["scored"]
    both = batch.join(win, on=["series", "timestamp"], how="inner", suffix="_stream")
    assert both.height == batch.height  # the same windows, window for window
    # the batch scorer cuts long series with another branch of the graph: float rounding only
    np.testing.assert_allclose(both["score_stream"], both["score"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(both["coverage_stream"], both["coverage"], rtol=1e-6)
    assert (both["is_anomaly_stream"] == both["is_anomaly"]).mean() > 0.999
    streamed = [x for x in recs if x["type"] == "event"]
    batch_ev = pl.read_csv(ev)
    assert len(streamed) == batch_ev.height > 0
    key = lambda s, start: (s, start[:19])  # noqa: E731
    got = {
        key(x["series"], x["start"]): (x["n_windows"], ";".join(x["top_features"]))
        for x in streamed
    }
    want = {
        key(s, str(st).replace(" ", "T")): (n, tf)
        for s, st, n, tf in batch_ev.select("series", "start", "n_windows", "top_features").rows()
    }
    assert got == want


def test_sigterm_drains_follows_a_file_and_leaves_no_partial_record(
    model: Path, events: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    feed, sink = tmp_path / "feed.jsonl", tmp_path / "out.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    feed.write_bytes(b"".join(lines[:half]))
    sink.write_bytes(b'{"type": "window", "series": "crashed mid-wri')  # an earlier crash
    d = Daemon(
        [str(model), "--source", f"file:{feed}", "--follow", "--sink", str(sink)],
        env={"ANOMAE_MONITOR_LISTEN": "127.0.0.1:0", "ANOMAE_MONITOR_MAX_GAP_SECONDS": "1e9"},
    )
    assert d.get("/healthz")[0] == 200
    d.wait_ready()  # model loaded (and warmed up), file open
    with open(feed, "ab") as f:  # the file grows while followed
        f.write(b"".join(lines[half:]))
    d.wait_metric("anomae_windows_scored_total", float(n_windows(model, small_demo)))
    assert d.stop() == 0
    stopped = d.wait_log("stopped")
    recs = sink_records(sink)
    assert sum(x["type"] == "window" for x in recs) == stopped["scored"]
    assert stopped["received"] == len(lines)


def test_sigterm_while_busy_exits_zero_within_seconds(
    model: Path, events: Path, tmp_path: Path
) -> None:
    sink = tmp_path / "out.jsonl"
    big = tmp_path / "big.jsonl"
    data = events.read_bytes()
    big.write_bytes(data * 3)  # repeats are dropped as out of order: work without windows
    d = Daemon(
        [
            str(model),
            "--source",
            f"file:{big}",
            "--follow",
            "--sink",
            str(sink),
            "--listen",
            "127.0.0.1:0",
            "--queue-size",
            "4096",
        ]
    )
    t0 = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - t0 < 8
    recs = sink_records(sink)
    assert sum(x["type"] == "window" for x in recs) == d.wait_log("stopped")["scored"]


def test_sighup_reloads_a_recalibrated_model_and_refuses_other_features(
    model: Path, events: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    from anomae.modelfile import read_card, rewrite_card
    from anomae.reference import card_digest
    from anomae.spec import Threshold

    live = tmp_path / "model.onnx"
    shutil.copy(model, live)
    card = read_card(model)
    d = Daemon(
        [
            str(live),
            "--source",
            f"file:{events}",
            "--follow",
            "--listen",
            "127.0.0.1:0",
            "--reload-check-seconds",
            "0",
        ]
    )
    d.wait_metric("anomae_windows_scored_total", float(n_windows(model, small_demo)))
    old_threshold = d.metric("anomae_threshold")
    assert card.threshold is not None and old_threshold == pytest.approx(card.threshold.value)
    recal = tmp_path / "recal.onnx"
    th = Threshold(2 * card.threshold.value, "quantile", {"q": 0.999}, 10)
    rewrite_card(model, card.with_threshold(th), recal)
    os.replace(recal, live)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("model reloaded")
    d.wait_metric("anomae_threshold", 2 * card.threshold.value)
    other = tmp_path / "other.onnx"
    renamed = dataclasses.replace(card, features=tuple(f"x_{f}" for f in card.features))
    # as if exported with these names: a hand-renamed card alone fails Detector.load's check
    ref = {**card.parity["reference"], "card_sha256": card_digest(renamed)}
    parity = {**card.parity, "reference": ref}
    rewrite_card(model, dataclasses.replace(renamed, parity=parity), other)
    os.replace(other, live)
    d.proc.send_signal(signal.SIGHUP)
    refused = d.wait_log("model reload refused; keeping the old model")
    assert "features differ" in refused["detail"]
    assert 'anomae_model_reloads_total{result="refused"} 1.0' in d.get("/metrics")[1]
    assert d.metric("anomae_threshold") == 2 * card.threshold.value
    assert d.stop() == 0


def test_malformed_input_is_counted_and_never_crashes_torch_free(
    model: Path, events: Path, tmp_path: Path
) -> None:
    good = events.read_bytes().splitlines()[:200]
    bad = [
        b"{not json",
        b'{"series": "m1", "ts": 1, "values": {"temp": "hot"}}',
        b'{"series": "m1", "ts": 1, "values": {"nope": 1}}',
        b'{"series": 5, "ts": 1, "values": {}}',
        b"[" * 200_000,  # a huge line, without its newline at first
        b"\xff\xfe garbage",
        b'{"series": "m9", "ts": "not a time", "values": {"x": 1}}',
    ]
    feed = b"\n".join(good[:100] + bad + good[100:]) + b"\n"
    # the runtime must not need torch: make importing it fail
    path = blocked_imports(tmp_path / "block", "torch")["PYTHONPATH"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "anomae.cli",
            "monitor",
            str(model),
            "--source",
            "-",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "logfmt",
        ],
        input=feed,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert r.returncode == 0, r.stderr
    assert b"torch" not in r.stderr
    last = r.stderr.decode().strip().splitlines()[-1]
    assert "msg=stopped" in last and "invalid=7" in last and "received=207" in last


def test_bad_setup_exits_1_with_a_clear_error(model: Path, tmp_path: Path) -> None:
    r = run_cli(["monitor", str(tmp_path / "absent.onnx"), "--source", "-"])
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = run_cli(["monitor", str(model), "--source", str(tmp_path / "absent.jsonl")])
    assert r.returncode == 1 and "no such file" in r.stderr
    r = run_cli(["monitor", str(model), "--source", "amqp://x/y"])
    assert r.returncode == 1 and "unknown source" in r.stderr
    r = run_cli(["monitor", str(model), "--source", "-", "--listen", "nonsense"])
    assert r.returncode == 1 and "--listen" in r.stderr


def test_per_series_thresholds_replay_equals_anomae_score(tmp_path: Path) -> None:
    """Three series, three thresholds (two of their own, one the fleet's): the monitor and
    `anomae score` give the same normalised scores and the same events."""
    from test_calibrate_series import FEATURES, fleet, zero_model

    from anomae.events import PostRule, alarm_policy
    from anomae.spec import Threshold

    th = Threshold(2.0, "events", per_series={"quiet": 0.5, "noisy": 8.0})
    model = zero_model(tmp_path / "model.onnx", th, alarm_policy(PostRule(2, max_gap=3)))
    rng = np.random.default_rng(5)
    frames = []
    for s in fleet(1440, seed=4):  # quiet, mid, noisy: scores of about 0.25, 1 and 4
        v = s.values.copy()
        for start in rng.choice(1400, 6, replace=False):  # bursts, scaled to the series
            v[start : start + 8] *= 2.5
        frames.append(
            pl.DataFrame(
                {
                    "timestamp": pl.Series(s.timestamps).cast(pl.Datetime("ns")),
                    "series": [s.name] * len(v),
                    **{f: v[:, j] for j, f in enumerate(FEATURES)},
                }
            )
        )
    data = pl.concat(frames).sort("timestamp", "series")
    test = tmp_path / "test.parquet"
    data.write_parquet(test)
    feed = "".join(
        json.dumps(
            {
                "series": r["series"],
                "ts": (r["timestamp"] - dt.datetime(1970, 1, 1)).total_seconds(),
                "values": {f: r[f] for f in FEATURES},
            }
        )
        + "\n"
        for r in data.iter_rows(named=True)
    )
    sink = tmp_path / "out.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "anomae.cli", "monitor", str(model), "--source", "-"]
        + ["--sink", str(sink), "--listen", "127.0.0.1:0", "--max-gap-seconds", "1e9"],
        input=feed,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    scores, ev = tmp_path / "scores.parquet", tmp_path / "events.csv"
    r = run_cli(["score", str(model), str(test), "-o", str(scores), "--events", str(ev)])
    assert r.returncode == 0, r.stderr
    batch = pl.read_parquet(scores)
    recs = sink_records(sink)
    win = pl.DataFrame([x for x in recs if x["type"] == "window"]).with_columns(
        (pl.col("ts").str.to_datetime(time_zone="UTC"))
        .cast(pl.Datetime("ns", "UTC"))
        .alias("timestamp")
    )
    both = batch.join(win, on=["series", "timestamp"], how="inner", suffix="_stream")
    assert both.height == batch.height == win.height == 3 * (1440 - 3)
    np.testing.assert_array_equal(
        both["score_normalised_stream"].cast(pl.Float32), both["score_normalised"]
    )
    assert (both["is_anomaly_stream"] == both["is_anomaly"]).all()
    for name, want in (("quiet", 0.5), ("mid", 2.0), ("noisy", 8.0)):  # each its own
        w = batch.filter(pl.col("series") == name)
        np.testing.assert_array_equal(w["score_normalised"], w["score"] / np.float32(want))
    streamed = [x for x in recs if x["type"] == "event"]
    got = sorted((x["series"], x["start"][:19], x["n_windows"]) for x in streamed)
    batch_ev = pl.read_csv(ev)
    want_ev = sorted(
        (s, str(st).replace(" ", "T")[:19], n)
        for s, st, n in batch_ev.select("series", "start", "n_windows").rows()
    )
    assert got == want_ev
    assert {x[0] for x in got} == {"quiet", "mid", "noisy"}  # every series alarms on its bursts
