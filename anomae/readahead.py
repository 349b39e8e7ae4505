"""Reading ahead: an iterator's next items produced in a background thread while the
caller works on the current one.

:func:`read_ahead` runs ``items`` in a thread and hands its items over through a queue; an
item is made only while fewer than ``depth + 1`` are alive (the caller's, and those made or
being made ahead of it; the caller's counts until it asks for the next one, so drop your
reference to an item first), so at most ``depth + 1`` are alive at once. Batch scoring
reads and splits the next batch of rows this way while onnxruntime (which releases the
GIL) scores the current one. An exception raised by
``items`` is raised again, the same object, where the caller takes the next item; when the
caller stops early (an error, Ctrl-C, ``break``), the thread is told to stop, ``items`` is
closed in its own thread, and the thread is joined before the caller's exception goes on.

    >>> list(read_ahead(iter(range(5))))
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
_POLL_S = 0.05  # how often a blocked producer looks whether the caller has stopped


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _produce(
    items: Iterator[T], out: queue.Queue[object], slots: threading.Semaphore, stop: threading.Event
) -> None:
    def slot() -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=_POLL_S):
                return True
        return False

    try:
        while slot():  # an item is made only when it may be alive
            try:
                x = next(items)
            except StopIteration:
                out.put(_END)
                break
            out.put(x)
            del x  # the caller's now: not held here while the next one waits for a slot
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
        out.put(_Raised(exc))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def read_ahead(
    items: Iterator[T], depth: int = 1, name: str = "anomae-read-ahead"
) -> Generator[T, None, None]:
    """``items``, each produced in a background thread up to ``depth`` ahead of the caller
    (module docstring)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    out: queue.Queue[object] = queue.Queue()  # bounded by the slots
    # depth + 1 slots: the caller's item and ``depth`` ahead; the caller's is given back
    # when it asks for the next (drop your reference to an item before asking)
    slots = threading.Semaphore(depth + 1)
    stop = threading.Event()
    thread = threading.Thread(
        target=_produce, args=(items, out, slots, stop), name=name, daemon=True
    )
    thread.start()
    try:
        while True:
            x = out.get()
            if x is _END:
                return
            if isinstance(x, _Raised):
                raise x.exc
            yield x  # type: ignore[misc]
            del x
            slots.release()
    finally:
        stop.set()
        thread.join()
