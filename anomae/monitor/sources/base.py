"""What every event source gives the daemon, and the interface sources implement.

A source turns its input (stdin, a followed file, MQTT, Prometheus queries) into items:
:class:`Raw` payloads the daemon parses (one JSON reading each) or ready :class:`Reading`
objects, or a :class:`RawBatch` of many payloads read together (the file and stdin sources
do this: one queue operation per chunk instead of per line). It hands them to
``emit(item, block)``, which returns False when the daemon's bounded queue is full: a
replayed file should block (``block=True``, nothing lost), a live broker feed must not
(``block=False``; the daemon counts the drop in ``anomae_events_dropped_total``).

    >>> r = Reading(series="m1", ts=1.0, values={"temp": 21.5})
    >>> r.series, r.values["temp"], r.seq
    ('m1', 21.5, None)
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Raw:
    """One undecoded event (a JSON line or an MQTT payload)."""

    payload: bytes
    series_hint: str | None = None  # e.g. taken from an MQTT topic
    received: float = field(default_factory=time.monotonic)


@dataclass
class RawBatch:
    """Undecoded events read together (lines of one chunk of a file), one receive time."""

    payloads: list[bytes]
    series_hint: str | None = None
    received: float = field(default_factory=time.monotonic)


@dataclass
class Reading:
    """One decoded reading of one series at one time; missing values are None."""

    series: str
    ts: float  # epoch seconds
    values: dict[str, float | None]
    seq: int | None = None
    received: float = field(default_factory=time.monotonic)


Emit = Callable[["Raw | Reading | RawBatch", bool], bool]


class Source(ABC):
    """A source of readings. ``run`` blocks until ``stop`` is set or the input ends (a
    non-followed file or stdin at EOF returns; live sources run until stopped)."""

    kind: str = "source"

    def __init__(self) -> None:
        self.up = False  # connected / reading: exported as anomae_source_up

    @abstractmethod
    def run(self, emit: Emit, stop: threading.Event) -> None: ...

    def lag(self) -> float | None:
        """Readings waiting at the source (a Kafka consumer's lag), or None where the source
        has no such notion; exported as ``anomae_source_lag_messages`` when not None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once after ``run`` returns."""
