"""The stderr progress bar (anomae/progress.py)."""

from __future__ import annotations

import io

from anomae.progress import Progress


def test_draws_counts_and_ends_with_a_newline() -> None:
    out = io.StringIO()
    with Progress(200, "scoring", "windows", enabled=True, stream=out) as p:
        p.update(50)
        p.update(150)
    text = out.getvalue()
    assert text.endswith("\n")
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("scoring [" + "#" * 30 + "]")
    assert "100.0% 200/200 windows" in last


def test_silent_when_not_a_tty() -> None:
    out = io.StringIO()  # isatty() is False
    with Progress(10, "x", stream=out) as p:
        p.update(10)
    assert out.getvalue() == ""
    assert p.done == 10


def test_zero_total_draws_full() -> None:
    out = io.StringIO()
    with Progress(0, "empty", enabled=True, stream=out):
        pass
    assert "100.0% 0/0" in out.getvalue()
