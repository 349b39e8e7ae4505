"""A small progress bar on stderr for long work (no dependency; silent when not a TTY)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from anomae.interrupts import check


class Progress:
    """``with Progress(total, "scoring", "windows") as p: p.update(n)``."""

    def __init__(
        self,
        total: int,
        label: str,
        unit: str = "",
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total, self.label, self.unit = max(int(total), 0), label, unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self._t0 = time.perf_counter()
        self._last = 0.0

    def __enter__(self) -> Progress:
        return self

    def update(self, n: int) -> None:
        check()  # a Ctrl-C noted by anomae.interrupts.deferred is raised here, between pieces
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        el = max(now - self._t0, 1e-9)
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(30 * frac)
        rate = self.done / el
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {100 * frac:5.1f}% {self.done:,}/{self.total:,} "
            f"{self.unit} {rate:,.0f}/s eta {eta:4.0f}s"
        )
        self.stream.flush()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
