"""The daemon's own small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

* ``/metrics``: the registry in the Prometheus text format (OpenMetrics when asked for in
  ``Accept``; gzip when accepted);
* ``/healthz``: 200 while the process serves requests (liveness);
* ``/readyz``: 200 when ``ready()`` says so (model loaded and source up), else 503.

It binds ``127.0.0.1`` unless told otherwise; port 0 picks a free port (``server.port``
says which). With a certificate and key it speaks TLS only; the handshake happens in the
request's own thread, so a slow or broken client cannot hold up the others.

    >>> parse_listen("127.0.0.1:9108"), parse_listen(":0"), parse_listen("[::1]:80")
    (('127.0.0.1', 9108), ('127.0.0.1', 0), ('::1', 80))
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

REQUEST_TIMEOUT_S = 10.0


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; an empty host is 127.0.0.1) → ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen wants host:port (port 0-65535, 0 = any free), got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def __init__(self, addr: tuple[str, int], handler: type, family: int) -> None:
        self.address_family = family
        super().__init__(addr, handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        request.settimeout(REQUEST_TIMEOUT_S)
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


class MonitorHTTPServer:
    """Serves ``registry`` and the health endpoints on a background thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        listen: str = "127.0.0.1:0",
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        outer = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT_S

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                    body = encoder(registry)
                    headers = [("Content-Type", ctype)]
                    if gzip_accepted(self.headers.get("Accept-Encoding", "")):
                        import gzip

                        body = gzip.compress(body)
                        headers.append(("Content-Encoding", "gzip"))
                    self._send(200, body, headers)
                elif path == "/healthz":
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    ok = outer.ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n")

            def _send(
                self, code: int, body: bytes, headers: list[tuple[str, str]] | None = None
            ) -> None:
                self.send_response(code)
                for k, v in headers or [("Content-Type", "text/plain; charset=utf-8")]:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # scrapes every few seconds would drown the structured log

        self.ready = ready
        self._server = _Server((host, port), Handler, family)
        if tls_cert or tls_key:
            if not (tls_cert and tls_key):
                raise ValueError("TLS needs both --tls-cert and --tls-key")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(tls_cert, tls_key)
            self._server.tls = ctx
        self.host = host
        self.port = int(self._server.server_address[1])
        self.scheme = "https" if self._server.tls else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="anomae-http", daemon=True
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> MonitorHTTPServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
