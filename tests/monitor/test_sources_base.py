"""What every source gives the daemon (anomae/monitor/sources/base.py): the item types
and the Source interface a new source implements."""

from __future__ import annotations

import threading
import time

import pytest

from anomae.monitor.sources.base import Emit, Raw, RawBatch, Reading, Source


class OneShot(Source):
    """The smallest real source: emits one payload and returns."""

    kind = "one-shot"

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.up = True
        emit(Raw(b"{}"), True)


def test_a_source_must_implement_run() -> None:
    with pytest.raises(TypeError, match="run"):
        Source()  # type: ignore[abstract]

    class NoRun(Source):
        pass

    with pytest.raises(TypeError, match="run"):
        NoRun()  # type: ignore[abstract]


def test_a_source_starts_down_and_close_is_optional() -> None:
    src = OneShot()
    assert src.up is False and src.kind == "one-shot"
    got: list[object] = []
    src.run(lambda item, block: got.append((item, block)) or True, threading.Event())
    assert src.up and len(got) == 1 and got[0][1] is True
    src.close()  # the default hook does nothing and does not raise
    assert Source.kind == "source"


def test_each_item_gets_its_own_receive_time() -> None:
    before = time.monotonic()
    a, b = Raw(b"{}"), RawBatch([b"{}", b"{}"], series_hint="m1")
    r = Reading("m1", 1.0, {"temp": None})
    assert before <= a.received <= b.received <= r.received <= time.monotonic()
    assert (a.series_hint, b.series_hint, r.seq) == (None, "m1", None)
    assert Raw(b"", received=5.0).received == 5.0
