"""The daemon's own small HTTP server: ``/metrics``, ``/healthz`` and ``/readyz``.

* ``/metrics``: the registry in the Prometheus text format (OpenMetrics when asked for in
  ``Accept``; gzip when accepted); 500 with the error when the registry cannot be encoded;
* ``/healthz``: 200 while the process serves requests (liveness);
* ``/readyz``: 200 when ``ready()`` says so (model loaded and source up), else 503.

It binds ``127.0.0.1`` unless told otherwise; port 0 picks a free port (``server.port``
says which). With a certificate and key it speaks TLS only.

**Bounded.** One thread runs an asyncio loop for every connection (a thread per connection
let 80 idle clients exhaust a systemd ``TasksMax`` and break the next model reload). Each
connection has ``timeout`` seconds in all to complete its TLS handshake and send its request
head (at most 16 KiB), and as long to take the answer: a client sending a byte every few
seconds is cut off, not served forever. At most ``max_connections`` are open; a new one
beyond that closes the oldest, so idle clients cannot lock a scraper out. The registry is
encoded on one worker thread of its own. One request per connection (``Connection:
close``).

    >>> parse_listen("127.0.0.1:9108"), parse_listen(":0"), parse_listen("[::1]:80")
    (('127.0.0.1', 9108), ('127.0.0.1', 0), ('::1', 80))
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from anomae.monitor.logs import log

LOG = logging.getLogger("anomae.monitor")
REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256
MAX_HEAD_BYTES = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; an empty host is 127.0.0.1) → ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen wants host:port (port 0-65535, 0 = any free), got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context, or None without ``cert`` and ``key``; a ValueError names
    the option at fault."""
    if not (cert or key):
        return None
    if not (cert and key):
        raise ValueError("TLS needs both --tls-cert and --tls-key (PEM files)")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise ValueError(f"{option} {path}: no such file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"--tls-cert {cert} / --tls-key {key}: not a PEM certificate and its private key "
            f"({exc})"
        ) from exc
    return ctx


class MonitorHTTPServer:
    """Serves ``registry`` and the health endpoints on a background thread (see above)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ready: Callable[[], bool],
        listen: str = "127.0.0.1:0",
        tls_cert: str | None = None,
        tls_key: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> None:
        host, port = parse_listen(listen)
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self.tls = tls_context(tls_cert, tls_key)
        self.registry, self.ready = registry, ready
        self.max_connections, self.timeout = max_connections, timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.create_server((host, port), family=family, backlog=1024)
        self._sock.setblocking(False)
        self.host = host
        self.port = int(self._sock.getsockname()[1])
        self.scheme = "https" if self.tls else "http"
        self.open_connections = 0
        self._conns: dict[asyncio.Task[None], None] = {}  # insertion order: oldest first
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(_quiet)
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="anomae-http-encode")
        self._thread = threading.Thread(target=self._main, name="anomae-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> MonitorHTTPServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def close(self) -> None:
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)
        elif not self._thread.is_alive():
            self._loop.close()
        self._encoder.shutdown(wait=False)
        self._sock.close()

    # -- the loop thread -----------------------------------------------------------------
    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(
            self._connection,
            sock=self._sock,
            ssl=self.tls,
            ssl_handshake_timeout=self.timeout if self.tls else None,
            limit=MAX_HEAD_BYTES,
        )
        self._started.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.wait(list(self._conns), timeout=1.0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conns = self._conns
        conns[task] = None
        while len(conns) > self.max_connections:  # the oldest goes: idle clients cannot
            oldest = next(iter(conns))  # lock a scraper out
            del conns[oldest]
            oldest.cancel()
        self.open_connections = len(conns)
        done = False
        try:
            async with asyncio.timeout(self.timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                code, body, headers, send_body = await self._answer(head)
                lines = [f"HTTP/1.1 {code} {_REASONS.get(code, 'Error')}"]
                lines += [f"{k}: {v}" for k, v in headers]
                lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
                writer.write("\r\n".join(lines).encode("latin-1"))
                if send_body:
                    writer.write(body)
                await writer.drain()
                done = True
        except (asyncio.CancelledError, TimeoutError, asyncio.IncompleteReadError):
            pass  # evicted, too slow, or gone
        except (asyncio.LimitOverrunError, ConnectionError, OSError, ssl.SSLError):
            pass
        finally:
            conns.pop(task, None)
            self.open_connections = len(conns)
            if done:
                writer.close()
            else:
                writer.transport.abort()

    async def _answer(self, head: bytes) -> tuple[int, bytes, list[tuple[str, str]], bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, b"bad request line\n", [("Content-Type", _TEXT)], True
        method, target = parts[0], parts[1]
        if method not in ("GET", "HEAD"):
            return (
                405,
                b"only GET and HEAD\n",
                [("Content-Type", _TEXT), ("Allow", "GET, HEAD")],
                True,
            )
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path = target.split("?", 1)[0]
        body_too = method == "GET"
        if path == "/metrics":
            loop = asyncio.get_running_loop()
            accept, encoding = headers.get("accept", ""), headers.get("accept-encoding", "")
            try:
                body, out = await loop.run_in_executor(
                    self._encoder, self._metrics, accept, encoding
                )
            except Exception as exc:
                log(LOG, logging.ERROR, "/metrics failed", error=repr(exc))
                return 500, f"metrics failed: {exc!r}\n".encode(), [("Content-Type", _TEXT)], True
            return 200, body, out, body_too
        if path == "/healthz":
            return 200, b"ok\n", [("Content-Type", _TEXT)], body_too
        if path == "/readyz":
            ok = self.ready()
            return (
                (200 if ok else 503),
                (b"ready\n" if ok else b"not ready\n"),
                [("Content-Type", _TEXT)],
                body_too,
            )
        return (
            404,
            b"not found: try /metrics, /healthz or /readyz\n",
            [("Content-Type", _TEXT)],
            True,
        )

    def _metrics(self, accept: str, encoding: str) -> tuple[bytes, list[tuple[str, str]]]:
        encoder, ctype = choose_encoder(accept)
        body = encoder(self.registry)
        headers = [("Content-Type", ctype)]
        if gzip_accepted(encoding):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        return body, headers


def _quiet(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Failed handshakes and reset connections are the clients' business, not the log's."""
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, OSError)):
        return
    log(LOG, logging.DEBUG, "http: " + str(context.get("message")), error=repr(exc))
