"""PrometheusSource against a real Prometheus started here on 127.0.0.1 with a history
backfilled by ``promtool tsdb create-blocks-from openmetrics``; URL and response parsing
without a server."""

from __future__ import annotations

import base64
import itertools
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from anomae.monitor.sources.base import Raw, Reading
from anomae.monitor.sources.prometheus import (
    PrometheusError,
    PrometheusSource,
    parse_matrix,
    parse_value,
)

STEP = 60
N = 120  # two hours of 1-minute samples
TAIL = 10  # grid points read after the last sample
INSTANCES = ("a", "b", "c")
FEATURES = ("temp", "rpm")
# (instance, feature) -> sample indices with no sample at all
MISSING = {("b", "rpm"): range(60, 70), ("c", "temp"): range(30, 33), ("c", "rpm"): range(30, 33)}
NAN_AT = {("a", "temp"): 50}  # a NaN sample, not a missing one
EXACT = {name: f"last_over_time({name}[59s])" for name in FEATURES}
Row = tuple[str, float, dict[str, float | None]]


def sample(instance: str, feature: str, k: int) -> float | None:
    """The backfilled value; None where no sample exists; NaN where the sample is NaN."""
    if k in MISSING.get((instance, feature), ()):
        return None
    if NAN_AT.get((instance, feature)) == k:
        return float("nan")
    i = INSTANCES.index(instance)
    if feature == "temp":
        return round(20 + 1.7 * i + 0.013 * k, 3)
    return 1000.0 * (i + 1) + (k % 17) * 2.25


def expected(t0: int, lookback_points: int, label: str = "instance") -> list[Row]:
    """What query_range must return: at grid point k the newest sample of k-lookback..k
    (Prometheus' lookback window includes both ends), NaN as None; no row without values."""
    rows: list[Row] = []
    for k in range(N + TAIL):
        for instance in INSTANCES:
            values: dict[str, float | None] = {}
            found = False
            for feature in FEATURES:
                values[feature] = None
                for j in range(k, k - lookback_points - 1, -1):
                    if 0 <= j < N and sample(instance, feature, j) is not None:
                        value = sample(instance, feature, j)
                        values[feature] = value if value == value else None
                        found = True
                        break
            if found:
                series = instance if label == "instance" else f"m-{instance}"
                rows.append((series, float(t0 + k * STEP), values))
    return rows


def rows(readings: list[Reading]) -> list[Row]:
    return [(r.series, r.ts, r.values) for r in readings]


def binary(name: str) -> str:
    path = shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/bin")
    if path is None:
        message = f"{name} not installed (apt-get install prometheus)"
        if os.environ.get("ANOMAE_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def backfill(path: Path, series: dict[str, list[tuple[int, float]]], data: Path) -> None:
    """``series`` maps 'name{labels}' to (timestamp, value) samples; one family per name."""
    lines: list[str] = []
    for key in sorted(series, key=lambda key: key.split("{")[0]):
        name = key.split("{")[0]
        if f"# TYPE {name} gauge" not in lines:
            lines.append(f"# TYPE {name} gauge")
        lines += [f"{key} {value!r} {ts}" for ts, value in series[key]]
    path.write_text("\n".join([*lines, "# EOF", ""]))
    cmd = [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(path), str(data)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


class PromServer:
    """A Prometheus with no scrape targets serving ``data``; stop and start keep the port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"prometheus://127.0.0.1:{self.port}"
        self.config = data.parent / "prometheus.yml"
        self.config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
        self.log = data.parent / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            binary("prometheus"),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=100y",  # backfilled blocks must survive
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus did not get ready:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromServer, int]]:
    """3 instances × 2 gauges, 1-minute samples for 2 hours ending 30 minutes ago."""
    root = tmp_path_factory.mktemp("prometheus")
    t0 = int(time.time()) // STEP * STEP - (N + 30) * STEP
    series: dict[str, list[tuple[int, float]]] = {}
    for instance, feature in itertools.product(INSTANCES, FEATURES):
        key = f'{feature}{{instance="{instance}",machine="m-{instance}",job="sensors"}}'
        samples = [(t0 + k * STEP, sample(instance, feature, k)) for k in range(N)]
        series[key] = [(ts, value) for ts, value in samples if value is not None]
    backfill(root / "history.om", series, root / "data")
    server = PromServer(root / "data")
    server.start()
    try:
        yield server, t0
    finally:
        server.stop()


def collect(source: PrometheusSource, timeout: float = 20.0) -> list[Reading]:
    """Run ``source`` to its ``until`` and return what it emitted."""
    out: list[Reading] = []

    def emit(item: Raw | Reading, block: bool) -> bool:
        assert block and isinstance(item, Reading)
        out.append(item)
        return True

    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(emit, stop))
    thread.start()
    thread.join(timeout)
    stop.set()
    thread.join()
    assert not thread.is_alive()
    return out


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.mark.parametrize("mode", ["once", "chunks-of-7", "incremental"])
def test_readings_equal_the_backfill(history: tuple[PromServer, int], mode: str) -> None:
    server, t0 = history
    end = t0 + (N + TAIL - 1) * STEP
    options: dict[str, object] = {"start": t0, "interval": 0.001}
    if mode == "once":
        options.update(once=True, clock=lambda: end + 0.5)
    elif mode == "chunks-of-7":
        options.update(until=end, chunk_points=7)
    else:  # live polling whose clock moves 3.5 steps per poll: partial steps, many requests
        ticks = itertools.count(t0 + 5 * STEP, 3.5 * STEP)
        options.update(until=end, clock=lambda: float(next(ticks)))
    source = PrometheusSource.from_url(server.url, queries=EXACT, step=STEP, **options)
    got = collect(source)
    assert rows(got) == expected(t0, lookback_points=0)
    assert source.up and source.errors == 0 and source.readings == len(got)
    assert source.unlabelled == source.conflicts == source.dropped == 0
    if mode == "incremental":
        assert source.polls > 30


def test_plain_selector_repeats_the_last_sample_for_the_lookback_delta(
    history: tuple[PromServer, int],
) -> None:
    """Backfilled data has no staleness markers: a gap reads as the last value for 5 minutes
    (both ends included: 5 more points at a 1-minute step), then as None."""
    server, t0 = history
    queries = {name: name for name in FEATURES}
    end = t0 + (N + TAIL - 1) * STEP
    source = PrometheusSource.from_url(server.url, queries=queries, start=t0, until=end)
    got = rows(collect(source))
    assert got == expected(t0, lookback_points=5)
    b = {ts: values for series, ts, values in got if series == "b"}
    assert b[t0 + 64 * STEP]["rpm"] == sample("b", "rpm", 59)
    assert b[t0 + 65 * STEP]["rpm"] is None


def test_series_label_names_the_series(history: tuple[PromServer, int]) -> None:
    server, t0 = history
    end = t0 + (N + TAIL - 1) * STEP
    options: dict[str, object] = {"start": t0, "until": end, "series_label": "machine"}
    source = PrometheusSource.from_url(server.url, queries=EXACT, **options)
    assert rows(collect(source)) == expected(t0, lookback_points=0, label="machine")

    options["series_label"] = "rack"
    source = PrometheusSource.from_url(server.url, queries=EXACT, **options)
    assert collect(source) == []
    assert source.up and source.unlabelled > 0


def test_a_bad_query_is_logged_and_retried(
    history: tuple[PromServer, int], caplog: pytest.LogCaptureFixture
) -> None:
    server, t0 = history
    queries = {"temp": EXACT["temp"], "rpm": "rate(rpm[5m]"}
    source = PrometheusSource.from_url(server.url, queries=queries, start=t0, interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(lambda item, block: True, stop))
    with caplog.at_level(logging.INFO, logger="anomae.monitor.sources.prometheus"):
        thread.start()
        wait_for(lambda: source.errors >= 3)
        stop.set()
        thread.join(1.0)
    assert not thread.is_alive() and not source.up and source.readings == 0
    assert "HTTP 400: bad_data" in caplog.text and "'rpm'" in caplog.text


def test_up_follows_a_prometheus_restart_with_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    """Live polling at a 1 s step of a series whose last sample is within the lookback delta
    (so every grid point has a value): the grid stays contiguous across the outage."""
    last = int(time.time()) - 20
    samples = [(last - 60 * k, 40.0 + k) for k in reversed(range(5))]
    backfill(tmp_path / "live.om", {'temp{instance="a"}': samples}, tmp_path / "data")
    server = PromServer(tmp_path / "data")
    server.start()
    got: list[Reading] = []
    source = PrometheusSource.from_url(
        server.url, queries={"temp": "temp"}, step=1, interval=0.1, lookback=3, timeout=2
    )

    def emit(item: Raw | Reading, block: bool) -> bool:
        assert isinstance(item, Reading)
        got.append(item)
        return True

    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(emit, stop))
    try:
        thread.start()
        wait_for(lambda: source.up and len(got) >= 3)
        server.stop()
        wait_for(lambda: not source.up)
        down = len(got)
        time.sleep(1.5)
        server.start()
        wait_for(lambda: source.up and len(got) >= down + 3)
    finally:
        stop.set()
        began = time.monotonic()
        thread.join(5)
        stopped_in = time.monotonic() - began
        server.stop()
    assert stopped_in < 1.0 and not thread.is_alive()
    assert source.errors >= 1 and source.polls > source.errors
    ts = [r.ts for r in got]
    assert all(b - a == 1.0 for a, b in itertools.pairwise(ts)), ts
    assert {(r.series, r.values["temp"]) for r in got} == {("a", 40.0)}


def test_stop_returns_promptly_while_a_request_hangs() -> None:
    with socket.socket() as hung:  # accepts connections (backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        url = f"prometheus://127.0.0.1:{hung.getsockname()[1]}"
        source = PrometheusSource.from_url(url, queries={"temp": "temp"}, timeout=30)
        stop = threading.Event()
        thread = threading.Thread(target=source.run, args=(lambda r, b: True, stop))
        thread.start()
        time.sleep(0.3)
        stop.set()
        thread.join(1.0)
        assert not thread.is_alive()


def test_an_unreachable_server_is_down_and_retried() -> None:
    source = PrometheusSource.from_url(
        f"prometheus://127.0.0.1:{free_port()}", queries={"temp": "temp"}, interval=0.02
    )
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(lambda r, b: True, stop))
    thread.start()
    wait_for(lambda: source.errors >= 3)
    stop.set()
    thread.join(1.0)
    assert not thread.is_alive() and not source.up and source.readings == 0


@pytest.mark.parametrize(
    "text, value",
    [
        ("21.5", 21.5),
        ("-2.5e-3", -0.0025),
        ("0", 0.0),
        ("NaN", None),
        ("+Inf", None),
        ("-Inf", None),
    ],
)
def test_parse_value(text: str, value: float | None) -> None:
    assert parse_value(text) == value


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"status":"success","data":{"resultType":"vector","result":[]}}', "matrix"),
        (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "bad_data: parse"),
        (b"404 page not found", "not a Prometheus API response"),
        (
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},'
            b'"histograms":[]}]}}',
            "native histogram",
        ),
    ],
)
def test_parse_matrix_errors(body: bytes, message: str) -> None:
    with pytest.raises(PrometheusError, match=message):
        parse_matrix(body)


def test_parse_value_rejects_text() -> None:
    with pytest.raises(PrometheusError, match="not a number"):
        parse_value("high")


@pytest.mark.parametrize(
    "url, base",
    [
        ("prometheus://localhost:9090", "http://localhost:9090"),
        (
            "https://vm.example:8428/select/0/prometheus/",
            "https://vm.example:8428/select/0/prometheus",
        ),
        ("http://[::1]:9090", "http://[::1]:9090"),
    ],
)
def test_from_url(url: str, base: str) -> None:
    assert PrometheusSource.from_url(url, queries={"t": "t"}).base_url == base


def test_from_url_credentials_become_basic_auth() -> None:
    source = PrometheusSource.from_url("https://bob:s%40cret@vm:8428", queries={"t": "t"})
    assert source.base_url == "https://vm:8428"
    assert source.headers["Authorization"] == "Basic " + base64.b64encode(b"bob:s@cret").decode()


@pytest.mark.parametrize(
    "url, message",
    [
        ("mqtt://localhost:1883/sensors", "not a Prometheus URL"),
        ("localhost:9090", "not a Prometheus URL"),
        ("prometheus://", "needs a host"),
        ("prometheus://localhost:ninety", "bad port"),
        ("prometheus://localhost:9090/?query=up", "no query"),
    ],
)
def test_from_url_rejects(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusSource.from_url(url, queries={"t": "t"})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"queries": {}}, "one PromQL expression per model feature"),
        ({"queries": {"t": " "}}, "empty PromQL"),
        ({"step": 0}, "step must be"),
        ({"step": 0.0001}, "step must be"),
        ({"interval": 0}, "interval"),
        ({"chunk_points": 20_000}, "chunk_points"),
    ],
)
def test_settings_are_checked(options: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {"queries": {"t": "t"}, **options}
    with pytest.raises(ValueError, match=message):
        PrometheusSource.from_url("prometheus://localhost:9090", **settings)  # type: ignore[arg-type]
