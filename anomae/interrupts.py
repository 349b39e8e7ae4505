"""Ctrl-C at safe points of a long run.

Python raises ``KeyboardInterrupt`` in the main thread at whatever bytecode it runs when
SIGINT arrives, and that may be Python code that a native library calls back while it
works (polars builds an ``Enum`` type through Python): polars then panics on the error
instead of passing it on, and ``anomae score`` ended with a Rust backtrace and status 1
rather than "interrupted" and 130. Inside :func:`deferred`, the first SIGINT is only
noted and :func:`check` raises it where the caller is between two pieces of work
(:class:`~anomae.progress.Progress` checks on every update); a second SIGINT raises at
once, for a run that does not reach a check.

    >>> with deferred():
    ...     check()  # nothing pending
    >>> import os, signal
    >>> with deferred():
    ...     os.kill(os.getpid(), signal.SIGINT)  # noted, not raised
    ...     try:
    ...         check()
    ...     except KeyboardInterrupt:
    ...         print("raised at the check")
    raised at the check
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_pending = False


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a SIGINT came since the last check (in :func:`deferred`)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def _note(signum: int, frame: FrameType | None) -> None:
    global _pending
    if _pending:  # the second Ctrl-C: now
        raise KeyboardInterrupt
    _pending = True


@contextmanager
def deferred() -> Iterator[None]:
    """SIGINT noted for :func:`check` while inside (main thread only; elsewhere as it is)."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, _note)
    _pending = False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        _pending = False
