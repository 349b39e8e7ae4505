"""The optional JSON-lines sink: one record per scored window and per finalised event.

Records are whole lines written with one ``os.write`` per batch on a file opened in append
mode, so the file only ever grows by complete lines unless the write fails or the process
dies in the middle of it. A failed write (disk full, file size limit) after a partial one
is cut back to where the batch began before the error goes up, so the next batch does not
follow a torn line. A kill in the middle (SIGKILL can end a long write early) leaves a last
line without its newline; the next start cuts the file back to the last complete record
(:func:`repair_tail`), so the replayed rows follow cleanly.

Window record::

    {"type": "window", "series": "m1", "ts": "2026-01-05T03:00:00Z", "score": 0.0123,
     "score_normalised": 0.56, "is_anomaly": false, "anomaly": false, "coverage": 1.0,
     "top_features": ["rpm", "flow", "temp_in"]}

``ts`` is the timestamp of the window's last reading (RFC 3339, UTC), ``is_anomaly`` the
window's own label (normalised score > 1) and ``anomaly`` the series' state after the
post-rules. Event records (``"type": "event"``) carry ``start``, ``end``, ``peak``,
``peak_score_normalised``, ``duration_s``, ``n_windows`` and ``top_features``, like the
rows of ``anomae score --events``. NaN scores (nothing observed) are written as ``null``.

    >>> rfc3339(np.array([1767571260.0, 1767571260.25]))
    ['2026-01-05T00:01:00.000Z', '2026-01-05T00:01:00.250Z']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from anomae.verdict import is_anomalous


def rfc3339(ts: np.ndarray) -> list[str]:
    """Epoch seconds → RFC 3339 UTC strings (second, millisecond or microsecond precision)."""
    us = np.round(np.asarray(ts, np.float64) * 1e6).astype(np.int64)
    unit: Any = "s" if not (us % 1_000_000).any() else "ms" if not (us % 1000).any() else "us"
    out = np.datetime_as_string(us.astype("datetime64[us]"), unit=unit, timezone="UTC")
    return out.tolist()  # type: ignore[no-any-return]


def repair_tail(path: str | Path) -> int:
    """Cut a partial last line (left by a crash) off ``path``; returns the bytes removed."""
    p = Path(path)
    if not p.exists():
        return 0
    size = p.stat().st_size
    if size == 0:
        return 0
    with open(p, "rb+") as f:
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                break
            pos -= step
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


class JsonlSink:
    """Appends complete JSON lines to ``path`` (repairing a crash's partial line first)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.repaired = repair_tail(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.records = 0

    def write(self, lines: Sequence[str]) -> None:
        """Write ``lines`` (each ending in a newline) in one call."""
        if not lines:
            return
        data = "".join(lines).encode()
        view = memoryview(data)
        n = os.write(self._fd, view)
        if n < len(data):  # rare: a short write; the rest may fail (disk full)
            start = os.fstat(self._fd).st_size - n
            try:
                view = view[n:]
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError:
                os.ftruncate(self._fd, start)  # whole records only
                raise
        self.records += len(lines)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _floats(x: np.ndarray) -> list[str]:
    """JSON numbers, 9 significant digits (a float32 exactly; twice as fast as ``repr``),
    ``null`` for NaN and infinities."""
    out = list(map("%.9g".__mod__, x.tolist()))
    for i in np.flatnonzero(~np.isfinite(x)).tolist():
        out[i] = "null"
    return out


_TF = ("false", "true")
_heads: dict[str, str] = {}
_tops: dict[tuple[tuple[str, ...], int], str] = {}


def _head(name: str) -> str:
    head = _heads.get(name)
    if head is None:
        if len(_heads) > 65536:
            _heads.clear()
        head = _heads[name] = f'{{"type": "window", "series": {json.dumps(name)}, "ts": "'
    return head


def window_lines(
    names: Sequence[str],
    ts: np.ndarray,
    score: np.ndarray,
    norm: np.ndarray,
    active: Sequence[bool],
    coverage: np.ndarray,
    top: np.ndarray,
    features: tuple[str, ...],
) -> list[str]:
    """One JSON line per window (columns of equal length; ``top`` feature indices ``[n, k]``).

    Formatted by hand rather than with ``json.dumps`` per record: the sink must not cost
    more than the scoring (values are converted column by column, heads and top-feature
    lists are cached)."""
    n_f = len(features)
    keys = (top * (n_f ** np.arange(top.shape[1])[::-1])).sum(1).tolist() if top.size else []
    tops = []
    for key, idx in zip(keys, top.tolist(), strict=True):
        text = _tops.get((features, key))
        if text is None:
            text = _tops[(features, key)] = json.dumps([features[j] for j in idx])
        tops.append(text)
    if not top.size:
        tops = ["[]"] * len(names)
    anomalous = is_anomalous(norm).tolist()
    return [
        f'{_head(n)}{t}", "score": {s}, "score_normalised": {v}, "is_anomaly": {_TF[x]}, '
        f'"anomaly": {_TF[a]}, "coverage": {c}, "top_features": {tf}}}\n'
        for n, t, s, v, x, a, c, tf in zip(
            names,
            rfc3339(ts),
            _floats(score),
            _floats(norm),
            anomalous,
            active,
            _floats(coverage),
            tops,
            strict=True,
        )
    ]


def event_line(event: dict) -> str:
    """One JSON line for an event record from :class:`anomae.monitor.alarms.SeriesAlarms`."""
    start, end, peak = rfc3339(np.array([event["start"], event["end"], event["peak"]]))
    rec = {**event, "start": start, "end": end, "peak": peak}
    rec["peak_score_normalised"] = (
        None if not np.isfinite(rec["peak_score_normalised"]) else rec["peak_score_normalised"]
    )
    return json.dumps(rec) + "\n"
