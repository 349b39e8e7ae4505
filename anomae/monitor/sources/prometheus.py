"""Prometheus / VictoriaMetrics polling source: one PromQL query per model feature, read with
``/api/v1/query_range`` on a fixed step grid and joined into :class:`Reading` objects.

Every reading's timestamp is a grid point ``k * step`` (aligned to the epoch, so live polls,
restarts and replays share one grid). Each poll reads the grid points after the last one
read, up to ``now - delay`` (or ``until``), in chunks of at most ``chunk_points`` points, so
nothing is read twice and nothing is skipped, across chunks, polls and server outages. A
chunk is one request per feature; a reading is ``(series, ts, {feature: value})`` where the
series id is the ``series_label`` label of the result and a feature absent at that point is
None. NaN and ±Inf samples are None too.

How ``query_range`` maps samples to grid points (Prometheus 2.x; it evaluates the query as
an instant query at every grid point ``t``):

- a plain selector (``temp``) returns the newest sample in ``[t - 5m, t]`` (the server's
  ``--query.lookback-delta``; Prometheus 2.42 ignores a ``lookback_delta`` URL parameter).
  With samples on the grid and ``step`` equal to the sample interval, each sample comes out
  exactly once, at its own timestamp; samples off the grid come out at the next grid point
  (scrape jitter across a grid point can then repeat one sample and skip the next).
- a gap in a scraped series turns None at once (scrapes write staleness markers), but
  backfilled or remote-written data has no staleness markers: a plain selector repeats the
  last value for 5 minutes (6 points at a 1-minute step). For exact gaps on grid-aligned
  data, query ``last_over_time(temp[59s])``: a range one step minus a little, because 2.x
  ranges include both ends (``[1m]`` would repeat each sample once).
- a grid point is read once: give ``delay`` the ingestion delay (the scrape duration; 30 s
  or more for VictoriaMetrics, which hides the newest ``-search.latencyOffset``) or the last
  point of a poll may hold a late sample's predecessor.

    >>> src = PrometheusSource.from_url(
    ...     "prometheus://127.0.0.1:9090", queries={"temp": "last_over_time(temp[59s])"})
    >>> src.base_url, src.step, src.interval, src.series_label
    ('http://127.0.0.1:9090', 60.0, 60.0, 'instance')
    >>> [parse_value(text) for text in ("21.5", "NaN", "+Inf", "-1e3")]
    [21.5, None, None, -1000.0]
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from anomae.errors import AnomaeError
from anomae.monitor.sources.base import Emit, Reading, Source

log = logging.getLogger(__name__)

MAX_POINTS = 11_000  # Prometheus refuses longer query_range results per series
_SCHEMES = {"prometheus": "http", "http": "http", "https": "https"}

Matrix = list[dict[str, Any]]


class PrometheusError(AnomaeError, RuntimeError):
    """A query failed: unreachable server, HTTP or API error, or not a float matrix."""


def parse_value(text: str) -> float | None:
    """A Prometheus sample value (a string in the API) as a float; NaN and ±Inf are None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise PrometheusError(f"sample value {text!r} is not a number") from None
    return value if math.isfinite(value) else None


def parse_matrix(body: bytes) -> Matrix:
    """The ``result`` list of a ``query_range`` response; PrometheusError for anything else."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise PrometheusError(f"not a Prometheus API response: {body[:200]!r}") from None
    if not isinstance(doc, dict):
        raise PrometheusError(f"not a Prometheus API response: {body[:200]!r}")
    if doc.get("status") != "success":
        raise PrometheusError(f"{doc.get('errorType', 'error')}: {doc.get('error', doc)}")
    data = doc.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        kind = data.get("resultType") if isinstance(data, dict) else None
        raise PrometheusError(f"expected a matrix result from query_range, got {kind!r}")
    if not isinstance(result, list):
        raise PrometheusError(f"matrix without a result list: {str(data)[:200]}")
    for series in result:
        if not isinstance(series, dict) or not isinstance(series.get("values"), list):
            raise PrometheusError(
                f"result series without float samples (a native histogram?): {str(series)[:200]}"
            )
    return result


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


class PrometheusSource(Source):
    """Polls ``query_range`` for each feature every ``interval`` seconds and emits readings
    in timestamp order (blocking). Counters: ``polls``, ``errors`` (failed polls),
    ``readings`` (emitted), ``dropped`` (refused by emit), ``unlabelled`` (result series
    without ``series_label``, skipped), ``conflicts`` (a second result series with the same
    id in one query, skipped). ``up`` is whether the last poll that had grid points to read
    succeeded. With ``until`` (or ``once``: until the time ``run`` starts) ``run`` returns
    once every grid point up to it has been read."""

    kind = "prometheus"

    def __init__(
        self,
        base_url: str,
        queries: Mapping[str, str],
        *,
        step: float = 60.0,
        interval: float | None = None,
        series_label: str = "instance",
        start: float | None = None,
        lookback: float | None = None,
        until: float | None = None,
        once: bool = False,
        delay: float = 0.0,
        timeout: float = 10.0,
        chunk_points: int = 1000,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not queries:
            raise ValueError("queries: give one PromQL expression per model feature")
        empty = [name for name, query in queries.items() if not query.strip()]
        if empty:
            raise ValueError(f"queries: empty PromQL expression for {empty}")
        step_ms = round(step * 1000)
        if step_ms < 1 or abs(step * 1000 - step_ms) > 1e-6:
            raise ValueError(f"step must be a positive whole number of milliseconds, got {step}")
        interval = step if interval is None else interval
        if interval <= 0 or timeout <= 0 or delay < 0:
            raise ValueError("interval and timeout must be > 0 and delay >= 0")
        if not 1 <= chunk_points <= MAX_POINTS:
            raise ValueError(f"chunk_points must be within 1..{MAX_POINTS}")
        self.base_url = base_url.rstrip("/")
        self.queries = dict(queries)
        self.step = step_ms / 1000
        self.interval = float(interval)
        self.series_label = series_label
        self.start = start
        self.lookback = 10 * self.step if lookback is None else lookback
        self.until = until
        self.once = once
        self.delay = delay
        self.timeout = timeout
        self.chunk_points = chunk_points
        self.headers = dict(headers or {})
        self.clock = clock
        self.polls = self.errors = self.readings = self.dropped = 0
        self.unlabelled = self.conflicts = 0
        self._step_ms = step_ms
        self._next_ms: int | None = None  # first grid point not yet read
        self._warned: set[tuple[str, str]] = set()

    @classmethod
    def from_url(cls, url: str, *, queries: Mapping[str, str], **options: Any) -> PrometheusSource:
        """``prometheus://host:port[/prefix]`` (plain HTTP), ``http://`` or ``https://``; a
        ``user:password@`` part becomes basic auth. ``options`` are the constructor's."""
        parts = urllib.parse.urlsplit(url)
        scheme = _SCHEMES.get(parts.scheme)
        if scheme is None:
            raise ValueError(
                f"not a Prometheus URL: {url!r} (expected prometheus://host:port, "
                "http://host:port or https://host:port)"
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"bad port in Prometheus URL {url!r}") from None
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"Prometheus URL needs a host and no query or fragment: {url!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        netloc = host if port is None else f"{host}:{port}"
        headers = dict(options.pop("headers", None) or {})
        if parts.username is not None:
            token = f"{urllib.parse.unquote(parts.username)}:"
            token += urllib.parse.unquote(parts.password or "")
            headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        base = urllib.parse.urlunsplit((scheme, netloc, parts.path, "", ""))
        return cls(base, queries, headers=headers, **options)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        until = self.until
        if self.once:
            now = self.clock() - self.delay
            until = now if until is None else min(until, now)
        while not stop.is_set():
            if self._poll(emit, stop, until):
                return
            stop.wait(self.interval)

    def _poll(self, emit: Emit, stop: threading.Event, until: float | None) -> bool:
        """Read every new grid point; True when caught up with ``until``."""
        step = self._step_ms
        now_ms = math.floor((self.clock() - self.delay) * 1000)
        if self._next_ms is None:
            first = self.start if self.start is not None else now_ms / 1000 - self.lookback
            self._next_ms = -(-math.ceil(first * 1000) // step) * step
        end_ms = now_ms if until is None else min(now_ms, math.floor(until * 1000))
        end_ms -= end_ms % step
        if self._next_ms > end_ms:
            return until is not None and self._next_ms > until * 1000
        self.polls += 1
        try:
            while self._next_ms <= end_ms and not stop.is_set():
                chunk_start = self._next_ms
                chunk_end = min(end_ms, chunk_start + (self.chunk_points - 1) * step)
                fetched = self._fetch(chunk_start, chunk_end, stop)
                if fetched is None:
                    return False
                for reading in self._join(fetched):
                    ts_ms = round(reading.ts * 1000)
                    if not chunk_start <= ts_ms <= chunk_end:
                        continue  # not asked for: never move the cursor back
                    if ts_ms >= self._next_ms:  # a new grid point: the earlier ones are out
                        if stop.is_set():
                            return False
                        self._next_ms = ts_ms - ts_ms % step + step
                    self.readings += 1
                    if not emit(reading, True):
                        self.dropped += 1
                self._next_ms = chunk_end + step
        except Exception as exc:
            self.errors += 1
            if self.up or self.errors == 1:
                log.warning("prometheus source down url=%s error=%s", self.base_url, exc)
            else:
                log.info("prometheus poll failed url=%s error=%s", self.base_url, exc)
            self.up = False
            if not isinstance(exc, PrometheusError):
                log.exception("unexpected error in prometheus source")
            return False
        if not self.up and not stop.is_set():
            log.info("prometheus source up url=%s", self.base_url)
            self.up = True
        return until is not None and self._next_ms > until * 1000

    def _fetch(self, start_ms: int, end_ms: int, stop: threading.Event) -> dict[str, Matrix] | None:
        """One request per feature, in threads so that a hung server never delays ``stop``:
        None when stopped first (the abandoned requests end within ``timeout``)."""
        out: dict[str, Matrix | Exception] = {}

        def fetch(feature: str) -> None:
            try:
                out[feature] = self._query_range(self.queries[feature], start_ms, end_ms)
            except Exception as exc:
                out[feature] = PrometheusError(f"feature {feature!r}: {exc}")

        threads = [
            threading.Thread(target=fetch, args=(feature,), name=f"prometheus-{feature}")
            for feature in self.queries
        ]
        for thread in threads:
            thread.daemon = True
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.05)
                if stop.is_set():
                    return None
        for result in out.values():
            if isinstance(result, Exception):
                raise result
        return out  # type: ignore[return-value]

    def _query_range(self, query: str, start_ms: int, end_ms: int) -> Matrix:
        params = {"query": query, "start": _seconds(start_ms), "end": _seconds(end_ms)}
        params["step"] = _seconds(self._step_ms)
        url = f"{self.base_url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                parse_matrix(body)
            except PrometheusError as api:
                raise PrometheusError(f"HTTP {exc.code}: {api}") from None
            raise PrometheusError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(f"cannot reach {self.base_url}: {reason}") from None
        return parse_matrix(body)

    def _join(self, fetched: Mapping[str, Matrix]) -> list[Reading]:
        """Readings by (timestamp, series) with every feature (None where absent)."""
        rows: dict[tuple[int, str], dict[str, float | None]] = {}
        for feature, result in fetched.items():
            seen: set[str] = set()
            for series in result:
                labels = series.get("metric") or {}
                name = labels.get(self.series_label)
                if name is None or name in seen:
                    if name is None:
                        self.unlabelled += 1
                    else:
                        self.conflicts += 1
                    self._warn_once(feature, labels, unlabelled=name is None)
                    continue
                seen.add(name)
                for point in series["values"]:
                    try:
                        ts_ms = round(float(point[0]) * 1000)
                        text = point[1]
                    except (TypeError, ValueError, IndexError):
                        raise PrometheusError(f"malformed sample {point!r}") from None
                    values = rows.setdefault((ts_ms, name), dict.fromkeys(self.queries))
                    values[feature] = parse_value(text)
        return [Reading(name, ts / 1000, values) for (ts, name), values in sorted(rows.items())]

    def _warn_once(self, feature: str, labels: Mapping[str, str], *, unlabelled: bool) -> None:
        why = "has no label" if unlabelled else "repeats the series id in"
        if (feature, why) in self._warned:
            return
        self._warned.add((feature, why))
        log.warning(
            "prometheus result skipped feature=%s labels=%s reason=%r",
            feature,
            dict(labels),
            f"{why} {self.series_label!r} (label_replace it or aggregate by it)",
        )
