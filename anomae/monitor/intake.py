"""The daemon's bounded intake queue, counted in readings (a :class:`RawBatch` of 400
lines counts 400), so memory stays bounded whatever the sources send.

``put(item, n, block)``: a blocking put (file replay) waits for room; a non-blocking one
(a live broker feed) returns False at once when the queue is full, and the caller counts the
drop. An item larger than the whole queue is still taken when the queue is empty, so a
large chunk cannot wedge the source.

    >>> q = EventQueue(capacity=3)
    >>> q.put("a", 2, block=False), q.put("b", 2, block=False), q.depth
    (True, False, 2)
    >>> q.get_many(10, timeout=0), q.depth
    (['a'], 0)
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class EventQueue:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.depth = 0
        self._items: deque[tuple[Any, int]] = deque()
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, n: int, block: bool, stop: threading.Event | None = None) -> bool:
        with self._not_full:
            while self.depth and self.depth + n > self.capacity:
                if not block or (stop is not None and stop.is_set()):
                    return False
                self._not_full.wait(0.05)
            self._items.append((item, n))
            self.depth += n
            self._not_empty.notify()
        return True

    def get_many(self, max_n: int, timeout: float) -> list[Any]:
        """Items totalling at least ``max_n`` readings when that many wait (fewer when not);
        waits up to ``timeout`` seconds for the first."""
        with self._not_empty:
            if not self._items and timeout > 0:
                self._not_empty.wait(timeout)
            out = []
            taken = 0
            while self._items and taken < max_n:
                item, n = self._items.popleft()
                out.append(item)
                taken += n
            if taken:
                self.depth -= taken
                self._not_full.notify_all()
            return out
