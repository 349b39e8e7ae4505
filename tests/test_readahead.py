"""Reading ahead (anomae.readahead): items in order and at most ``depth`` ahead, the
producer's exception raised again in the caller (the same object, after the items before
it), and a caller that stops early stops the thread and closes the producer."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator

import pytest

from anomae.readahead import read_ahead


def test_items_in_order_and_never_more_than_depth_ahead() -> None:
    made: list[int] = []
    taken: list[int] = []
    ahead: list[int] = []

    def items() -> Iterator[int]:
        for i in range(50):
            made.append(i)
            ahead.append(len(made) - len(taken))
            yield i

    for depth in (1, 3):
        made.clear(), taken.clear(), ahead.clear()
        for x in read_ahead(items(), depth):
            taken.append(x)
        assert taken == list(range(50))
        # ``depth`` made or being made, one with the caller (plus one the caller has
        # taken but not yet counted)
        assert max(ahead) <= depth + 2


class _Batch:
    """An item whose lifetime is counted."""

    alive = 0
    most = 0

    def __init__(self) -> None:
        _Batch.alive += 1
        _Batch.most = max(_Batch.most, _Batch.alive)
        weakref.finalize(self, _Batch._gone)

    @staticmethod
    def _gone() -> None:
        _Batch.alive -= 1


@pytest.mark.parametrize("depth", [1, 2])
def test_at_most_depth_plus_one_items_alive_with_a_slow_caller(depth: int) -> None:
    # batch scoring's memory: the caller's batch and ``depth`` ahead, not one more held
    # by a producer blocked on a full queue
    _Batch.alive = _Batch.most = 0

    def items() -> Iterator[_Batch]:
        for _ in range(12):
            yield _Batch()

    n = 0
    for b in read_ahead(items(), depth):
        time.sleep(0.02)  # the producer is faster: it waits for a slot
        n += 1
        del b  # done with it before asking for the next
    assert n == 12
    assert _Batch.most == depth + 1


def test_the_producers_error_is_raised_again_after_its_items() -> None:
    boom = ValueError("m.csv: column 'a', row 38 (line 39): value 'oops' is not a number")

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise boom

    got = []
    with pytest.raises(ValueError) as info:
        for x in read_ahead(items()):
            got.append(x)
    assert got == [1, 2]
    assert info.value is boom


@pytest.mark.parametrize("how", ["break", "error"])
def test_a_caller_that_stops_closes_the_producer_in_its_thread(how: str) -> None:
    closed: list[str] = []

    def items() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(threading.current_thread().name)

    before = {t.name for t in threading.enumerate()}
    gen = read_ahead(items(), name="test-read-ahead")
    try:
        for x in gen:
            if x == 3:
                if how == "error":
                    raise KeyboardInterrupt
                break
    except KeyboardInterrupt:
        pass
    gen.close()
    assert closed == ["test-read-ahead"]
    assert {t.name for t in threading.enumerate()} <= before


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be >= 1"):
        next(read_ahead(iter([1]), 0))
