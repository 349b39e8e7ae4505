"""Ctrl-C at safe points (anomae/interrupts.py)."""

from __future__ import annotations

import os
import signal

import pytest

from anomae.interrupts import check, deferred
from anomae.progress import Progress


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_the_first_ctrl_c_waits_for_a_check_the_second_does_not() -> None:
    with deferred():
        _ctrl_c()  # noted only
        with pytest.raises(KeyboardInterrupt):
            check()
        check()  # raised once, then cleared
        _ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c()  # a second one raises where it lands


def test_progress_updates_are_the_checks() -> None:
    with deferred(), Progress(10, "x", enabled=False) as bar:
        bar.update(1)
        _ctrl_c()
        with pytest.raises(KeyboardInterrupt):
            bar.update(1)
        assert bar.done == 1  # raised before counting


def test_outside_the_handler_is_what_it_was() -> None:
    before = signal.getsignal(signal.SIGINT)
    with deferred():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):  # Python's own: raised at once
        _ctrl_c()
        for _ in range(1000):
            pass
    check()  # nothing left pending
