"""The daemon's bounded intake queue (anomae/monitor/intake.py)."""

from __future__ import annotations

import threading

from anomae.monitor.intake import EventQueue


def test_intake_queue_is_bounded_and_blocking_put_waits() -> None:
    q = EventQueue(capacity=10)
    assert q.put("a", 6, block=False) and not q.put("b", 6, block=False)
    assert q.put("huge", 100, block=False) is False
    done = threading.Event()

    def producer() -> None:
        q.put("c", 6, block=True)
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.2)  # waiting for room
    assert q.get_many(1, 0) == ["a"]
    assert done.wait(2) and q.depth == 6
    stop = threading.Event()
    stop.set()
    assert q.put("d", 6, block=True, stop=stop) is False  # a stopping daemon refuses at once
    empty = EventQueue(4)
    assert empty.put("bigger than the queue", 9, block=False)  # an empty queue takes it
