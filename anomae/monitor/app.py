"""``anomae monitor`` as one library call: :func:`run_monitor` wires model, source, metrics,
HTTP server, sink and signals around a :class:`~anomae.monitor.daemon.Monitor`.

Sources by ``--source``: ``-`` (stdin), ``file:PATH`` or a plain path (``--follow`` to keep
reading as it grows), ``mqtt://`` / ``mqtts://``
(:class:`anomae.monitor.sources.mqtt.MqttSource`), ``kafka://`` / ``kafkas://``
(:class:`anomae.monitor.sources.kafka.KafkaSource`) and ``prometheus://``
(:class:`anomae.monitor.sources.prometheus.PrometheusSource`). The last three are
imported only when used; ``--source-opt KEY=VALUE`` pairs become their ``from_url`` keyword
arguments (numbers and true/false are converted unless the value is in double quotes;
``query.FEATURE=PROMQL`` pairs are gathered into ``queries={FEATURE: PROMQL}``).

    >>> source_options(["qos=1", "tls=false", 'client_id="42"', "query.temp=avg(temp)"])
    {'qos': 1, 'tls': False, 'client_id': '42', 'queries': {'temp': 'avg(temp)'}}
"""

from __future__ import annotations

import importlib
import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomae.errors import install_hint
from anomae.monitor.daemon import Monitor, MonitorError, MonitorOptions
from anomae.monitor.logs import log, setup_logging
from anomae.monitor.sink import JsonlSink
from anomae.monitor.sources.base import Source
from anomae.monitor.sources.files import FileSource, StdinSource

LOG = logging.getLogger("anomae.monitor")
REMOTE = {
    "mqtt": ("anomae.monitor.sources.mqtt", "MqttSource", install_hint("mqtt")),
    "mqtts": ("anomae.monitor.sources.mqtt", "MqttSource", install_hint("mqtt")),
    "prometheus": ("anomae.monitor.sources.prometheus", "PrometheusSource", ""),
    "kafka": ("anomae.monitor.sources.kafka", "KafkaSource", "pip install 'anomae[kafka]'"),
    "kafkas": ("anomae.monitor.sources.kafka", "KafkaSource", "pip install 'anomae[kafka]'"),
}


@dataclass(frozen=True)
class MonitorConfig:
    model: str
    source: str
    source_opts: tuple[str, ...] = ()
    follow: bool = False
    from_end: bool = False
    sink: str | None = None
    listen: str = "127.0.0.1:9108"
    tls_cert: str | None = None
    tls_key: str | None = None
    device: str = "cpu"
    threads: int = 1
    log_format: str = "json"
    log_level: str = "info"
    options: MonitorOptions = field(default_factory=MonitorOptions)


def _value(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]  # quoted: a string even if it looks like a number
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def source_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → keyword arguments for a remote source's ``from_url``."""
    out: dict[str, Any] = {}
    queries: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise MonitorError(f"--source-opt wants KEY=VALUE, got {pair!r}")
        if key.startswith("query."):
            queries[key[len("query.") :]] = value
        else:
            out[key] = _value(value)
    if queries:
        out["queries"] = queries
    return out


def open_source(
    spec: str,
    follow: bool = False,
    from_end: bool = False,
    max_bytes: int = 64 * 1024,
    opts: Sequence[str] = (),
) -> Source:
    """The source named by ``--source``."""
    if spec == "-":
        return StdinSource(max_bytes=max_bytes)
    scheme, sep, _ = spec.partition("://")
    if sep and scheme in REMOTE:
        module, cls_name, hint = REMOTE[scheme]
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError) as exc:
            extra = f"; {hint}" if hint else ""
            raise MonitorError(
                f"the {scheme}:// source is not available ({type(exc).__name__}: {exc}){extra}"
            ) from exc
        kwargs = source_options(opts)
        if module.endswith(".mqtt"):
            kwargs.setdefault("max_payload_bytes", max_bytes)  # --max-line-bytes
        try:
            return cls.from_url(spec, **kwargs)  # type: ignore[no-any-return]
        except ImportError as exc:
            raise MonitorError(f"the {scheme}:// source needs {exc.name}: {hint}") from exc
        except (TypeError, ValueError) as exc:
            raise MonitorError(f"--source {spec}: {exc}") from exc
    if sep:
        raise MonitorError(
            f"unknown source {spec!r}: use -, file:PATH, a path, mqtt://, mqtts://, kafka://, "
            "kafkas:// or prometheus://"
        )
    path = spec[len("file:") :] if spec.startswith("file:") else spec
    if not follow and not Path(path).is_file():
        raise MonitorError(f"--source {spec}: no such file (use --follow to wait for it)")
    return FileSource(path, follow=follow, from_end=from_end, max_bytes=max_bytes)


def tune_malloc(keep_bytes: int = 32 * 2**20) -> bool:
    """Stop glibc from returning each freed batch array to the OS (and page-faulting it back
    on the next batch): arrays up to ``keep_bytes`` come from the heap and up to that much
    free heap is kept. Measured here: the windowing step ran 3x faster. Process-wide, so the
    daemon calls it, the library does not. False where it is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(
            libc.mallopt(m_mmap_threshold, keep_bytes)
            and libc.mallopt(m_trim_threshold, 2 * keep_bytes)
        )
    except (OSError, AttributeError):
        return False


def _registry() -> Any:
    from prometheus_client import (
        CollectorRegistry,
        GCCollector,
        PlatformCollector,
        ProcessCollector,
        disable_created_metrics,
    )

    disable_created_metrics()  # *_created samples only add series to every scrape
    reg = CollectorRegistry()
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    return reg


def check_options(o: MonitorOptions) -> None:
    """Refuse settings the daemon cannot run with, naming the option and what it takes."""
    checks = [
        (o.batch_size >= 1, f"--batch-size must be >= 1, got {o.batch_size}"),
        (o.flush_ms >= 0, f"--flush-ms must be >= 0, got {o.flush_ms}"),
        (o.top_k >= 0, f"--top-k must be >= 0, got {o.top_k}"),
        (o.threshold is None or o.threshold > 0, f"--threshold must be > 0, got {o.threshold}"),
        (o.queue_size >= 1, f"--queue-size must be >= 1 reading, got {o.queue_size}"),
        (o.queue_bytes >= 1, f"--queue-bytes must be >= 1, got {o.queue_bytes}"),
        (o.max_series >= 1, f"--max-series must be >= 1, got {o.max_series}"),
        (o.max_line_bytes >= 1, f"--max-line-bytes must be >= 1, got {o.max_line_bytes}"),
        (
            o.max_future_seconds >= 0,
            f"--max-future must be >= 0 (0: off), got {o.max_future_seconds}",
        ),
        (
            o.series_ttl_seconds >= 0,
            f"--series-ttl must be >= 0 (0: never), got {o.series_ttl_seconds}",
        ),
        (
            o.max_gap_seconds is None or o.max_gap_seconds >= 0,
            f"--max-gap-seconds must be >= 0 (0: auto), got {o.max_gap_seconds}",
        ),
        (o.drain_seconds >= 0, f"--drain-seconds must be >= 0, got {o.drain_seconds}"),
        (
            o.reload_check_seconds >= 0,
            f"--reload-check-seconds must be >= 0 (0: SIGHUP only), got {o.reload_check_seconds}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise MonitorError(message)


def open_sink(path: str) -> JsonlSink:
    """The ``--sink`` file, opened for appending (a crash's partial last record cut off)."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise MonitorError(f"--sink {path}: folder {folder} does not exist; create it first")
    try:
        return JsonlSink(path)
    except OSError as exc:
        raise MonitorError(f"--sink {path}: cannot open it for appending ({exc.strerror})") from exc


def run_monitor(cfg: MonitorConfig, stop: threading.Event | None = None) -> int:
    """Run the daemon until its input ends or SIGTERM/SIGINT; returns the exit status."""
    from anomae.detector import Detector
    from anomae.monitor.http import MonitorHTTPServer, parse_listen, tls_context

    setup_logging(cfg.log_format, cfg.log_level)
    tune_malloc()
    stop = stop or threading.Event()
    o = cfg.options
    check_options(o)

    def load(path: str) -> Any:
        return Detector.load(path, device=cfg.device, threads=cfg.threads)

    try:  # a wrong --listen or TLS path fails now, before the model loads, naming its option
        parse_listen(cfg.listen)
        tls_context(cfg.tls_cert, cfg.tls_key)
    except ValueError as exc:
        raise MonitorError(str(exc)) from exc
    det = load(cfg.model)
    source = open_source(cfg.source, cfg.follow, cfg.from_end, o.max_line_bytes, cfg.source_opts)
    registry = _registry()
    sink = open_sink(cfg.sink) if cfg.sink else None
    if sink is not None and sink.repaired:
        log(
            LOG,
            logging.WARNING,
            "sink: cut a partial last record",
            path=sink.path,
            bytes=sink.repaired,
        )
    mon = Monitor(det, source, registry, o, sink=sink, loader=load)
    restore = _install_signals(stop, mon)  # before "listening": a SIGTERM after it drains
    try:
        try:
            http = MonitorHTTPServer(
                registry, mon.ready, cfg.listen, cfg.tls_cert, cfg.tls_key
            ).start()
        except ValueError as exc:  # names its option: --listen, --tls-cert or --tls-key
            raise MonitorError(str(exc)) from exc
        except OSError as exc:
            raise MonitorError(f"--listen {cfg.listen}: {exc.strerror or exc}") from exc
        log(
            LOG,
            logging.INFO,
            "listening",
            url=http.url,
            port=http.port,
            model=cfg.model,
            model_sha256=det.sha256,
            features=list(det.card.features),
            window=det.card.window.length,
            stride=det.card.window.stride,
            threshold=mon.scorer.threshold,
            max_gap_seconds=mon.table.max_gap_seconds,
            source=cfg.source,
        )
        try:
            return mon.run(stop)
        finally:
            http.close()
    finally:
        restore()


def _install_signals(stop: threading.Event, mon: Monitor) -> Any:
    """SIGTERM/SIGINT stop, SIGHUP reloads, SIGUSR1 promotes the shadow, SIGUSR2 rolls the
    promotion back (main thread only); returns an undo function."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_stop(signum: int, _frame: Any) -> None:
        log(LOG, logging.INFO, "signal", signal=signal.Signals(signum).name)
        stop.set()

    def on_hup(_signum: int, _frame: Any) -> None:
        log(LOG, logging.INFO, "signal", signal="SIGHUP")
        mon.request_reload()

    def on_usr1(_signum: int, _frame: Any) -> None:
        log(LOG, logging.INFO, "signal", signal="SIGUSR1")
        mon.request_promotion()

    def on_usr2(_signum: int, _frame: Any) -> None:
        log(LOG, logging.INFO, "signal", signal="SIGUSR2")
        mon.request_promotion(rollback=True)

    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
    old = {s: signal.getsignal(s) for s in sigs}
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, on_usr2)

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore
