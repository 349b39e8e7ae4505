"""The daemon's bounded intake queue, counted in readings (a :class:`RawBatch` of 400
lines counts 400) and in payload bytes, so memory stays bounded whatever the sources send:
65,536 readings of up to 64 KiB each would otherwise be 4 GiB.

``put(item, n, block)``: a blocking put (file replay) waits for room; a non-blocking one
(a live broker feed) returns False at once when the queue is full, and the caller counts the
drop. An item larger than the whole queue is still taken when the queue is empty, so a
large chunk cannot wedge the source.

    >>> q = EventQueue(capacity=3, max_bytes=100)
    >>> q.put("a", 2, block=False), q.put("b", 2, block=False), q.depth
    (True, False, 2)
    >>> q.get_many(10, timeout=0), q.depth
    (['a'], 0)
    >>> q.put("big", 1, block=False, nbytes=80), q.put("more", 1, block=False, nbytes=30)
    (True, False)
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any


class EventQueue:
    def __init__(self, capacity: int, max_bytes: float = math.inf) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        if max_bytes < 1:
            raise ValueError(f"queue max_bytes must be >= 1, got {max_bytes}")
        self.capacity, self.max_bytes = capacity, max_bytes
        self.depth = 0
        self.bytes = 0
        self._items: deque[tuple[Any, int, int]] = deque()
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def __len__(self) -> int:
        return len(self._items)

    def put(
        self,
        item: Any,
        n: int,
        block: bool,
        stop: threading.Event | None = None,
        nbytes: int = 0,
    ) -> bool:
        with self._not_full:
            while self.depth and (
                self.depth + n > self.capacity or self.bytes + nbytes > self.max_bytes
            ):
                if not block or (stop is not None and stop.is_set()):
                    return False
                self._not_full.wait(0.05)
            self._items.append((item, n, nbytes))
            self.depth += n
            self.bytes += nbytes
            self._not_empty.notify()
        return True

    def get_many(self, max_n: int, timeout: float) -> list[Any]:
        """Items totalling at least ``max_n`` readings when that many wait (fewer when not);
        waits up to ``timeout`` seconds for the first."""
        with self._not_empty:
            if not self._items and timeout > 0:
                self._not_empty.wait(timeout)
            out = []
            taken = taken_bytes = 0
            while self._items and taken < max_n:
                item, n, nbytes = self._items.popleft()
                out.append(item)
                taken += n
                taken_bytes += nbytes
            if taken:
                self.depth -= taken
                self.bytes -= taken_bytes
                self._not_full.notify_all()
            return out
