"""The monitor's HTTP server on 127.0.0.1: /healthz, /readyz, /metrics, 404, HTTPS with a
self-signed certificate, and the --listen / TLS options refused with what is wrong."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from anomae.monitor.http import MonitorHTTPServer, parse_listen, tls_context


@pytest.mark.parametrize("text", ["9108", "host:", "h:port", "h:65536", ""])
def test_a_bad_listen_address_is_refused_with_the_form_it_wants(text: str) -> None:
    with pytest.raises(ValueError, match=r"--listen wants host:port \(port 0-65535"):
        parse_listen(text)


def test_tls_options_name_what_is_missing_or_wrong(tmp_path: Path) -> None:
    assert tls_context(None, None) is None
    with pytest.raises(ValueError, match="both --tls-cert and --tls-key"):
        tls_context(None, "k.pem")
    with pytest.raises(ValueError, match=r"--tls-key .*absent\.pem: no such file"):
        tls_context(__file__, str(tmp_path / "absent.pem"))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="not a PEM certificate and its private key"):
        tls_context(str(junk), str(junk))


def get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_health_ready_and_metrics() -> None:
    reg = CollectorRegistry()
    ready = {"v": False}
    srv = MonitorHTTPServer(reg, lambda: ready["v"], "127.0.0.1:0").start()
    try:
        assert srv.port > 0 and srv.url.startswith("http://127.0.0.1:")
        assert get(srv.url + "/healthz") == (200, "ok\n")
        assert get(srv.url + "/readyz")[0] == 503
        ready["v"] = True
        assert get(srv.url + "/readyz")[0] == 200
        assert get(srv.url + "/metrics")[0] == 200
        assert get(srv.url + "/nope")[0] == 404
    finally:
        srv.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    srv = MonitorHTTPServer(CollectorRegistry(), lambda: True, "127.0.0.1:0", str(cert), str(key))
    srv.start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        assert srv.url.startswith("https://")
        assert get(srv.url + "/readyz", ctx) == (200, "ready\n")
        with pytest.raises(OSError):  # plain HTTP is not served
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/healthz", timeout=2)
    finally:
        srv.close()
    with pytest.raises(ValueError, match="both"):
        MonitorHTTPServer(CollectorRegistry(), lambda: True, "127.0.0.1:0", str(cert), None)
