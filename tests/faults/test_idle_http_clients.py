"""Idle and slow HTTP clients against the monitor's server, with real sockets on 127.0.0.1:
1,000 idle connections cost no thread each and ``/metrics`` still answers within 1 s; a
client trickling a byte at a time is cut off; beyond the cap the oldest connection goes."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from anomae.monitor.http import MonitorHTTPServer

IDLE = 1000  # file descriptors: 2 per connection in this process; ulimit -n is checked


def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("anomae_test_total", "A counter.", registry=reg).inc(3)
    return reg


def connect(port: int, n: int, first_bytes: bytes = b"") -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first_bytes:
            s.sendall(first_bytes)
        out.append(s)
    return out


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for s in held:
        s.close()


def scrape(url: str, timeout: float) -> tuple[int, str]:
    with urllib.request.urlopen(url + "/metrics", timeout=timeout) as r:
        return r.status, r.read().decode()


def test_metrics_answer_within_a_second_with_1000_idle_connections(
    clients: list[socket.socket],
) -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * IDLE + 100:
        pytest.skip(f"ulimit -n {soft} is below the {2 * IDLE + 100} file descriptors needed")
    srv = MonitorHTTPServer(registry(), lambda: True, "127.0.0.1:0", max_connections=2 * IDLE)
    srv.start()
    try:
        threads = threading.active_count()
        clients += connect(srv.port, IDLE // 2)  # connected, silent
        clients += connect(srv.port, IDLE // 2, b"GET /metrics HTTP/1.1\r\nHost: x")  # no end
        deadline = time.monotonic() + 5
        while srv.open_connections < IDLE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.open_connections == IDLE
        assert threading.active_count() <= threads + 1  # no thread per connection
        t0 = time.monotonic()
        code, text = scrape(srv.url, timeout=1.0)  # raises on timeout
        assert code == 200 and "anomae_test_total 3.0" in text
        assert time.monotonic() - t0 < 1.0
    finally:
        srv.close()


def test_a_client_trickling_bytes_is_cut_off_at_the_request_timeout(
    clients: list[socket.socket],
) -> None:
    srv = MonitorHTTPServer(registry(), lambda: True, "127.0.0.1:0", timeout=0.5).start()
    try:
        (s,) = connect(srv.port, 1)
        clients.append(s)
        t0 = time.monotonic()
        closed = False
        for b in b"GET /metrics HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"x" * 100:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > 3:
                break
        if not closed:
            s.settimeout(2)
            try:
                closed = s.recv(100) == b""
            except ConnectionResetError:
                closed = True
        assert closed and time.monotonic() - t0 < 3.0
        assert scrape(srv.url, timeout=1.0)[0] == 200
    finally:
        srv.close()


def test_beyond_the_cap_the_oldest_connection_is_closed(clients: list[socket.socket]) -> None:
    srv = MonitorHTTPServer(registry(), lambda: True, "127.0.0.1:0", max_connections=20).start()
    try:
        clients += connect(srv.port, 60)
        deadline = time.monotonic() + 5
        while srv.open_connections > 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert srv.open_connections <= 20
        clients[0].settimeout(2)
        assert clients[0].recv(10) == b""  # the oldest was closed by the server
        assert scrape(srv.url, timeout=1.0)[0] == 200
    finally:
        srv.close()
