"""The file source (anomae/monitor/sources/files.py): line splitting, following growth,
truncation and rotation."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from anomae.monitor.sources.base import RawBatch
from anomae.monitor.sources.files import FileSource, LineSplitter


def test_line_splitter_bounds_long_lines_and_keeps_partial_ones() -> None:
    s = LineSplitter(max_bytes=5)
    # blank lines skipped; an over-long line is cut to max_bytes + 1 (counted too_large)
    assert s.feed(b"ab\n\n  \ncdefghij") == [b"ab", b"cdefgh"]
    assert s.feed(b"klm") == []  # still inside the over-long line: dropped
    assert s.feed(b"nop\nqr") == []
    assert s.feed(b"\n") == [b"qr"]
    assert s.feed(b"st") == [] and s.end() == [b"st"]


def _collect(src: FileSource, stop: threading.Event) -> tuple[list[bytes], threading.Thread]:
    got: list[bytes] = []

    def emit(item: object, block: bool) -> bool:
        assert block and isinstance(item, RawBatch)
        got.extend(item.payloads)
        return True

    th = threading.Thread(target=src.run, args=(emit, stop), daemon=True)
    th.start()
    return got, th


def _wait_for(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_file_source_follows_growth_truncation_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"1\n2\n")
    stop = threading.Event()
    src = FileSource(str(path), follow=True, poll_s=0.01)
    got, th = _collect(src, stop)
    _wait_for(lambda: got == [b"1", b"2"])
    with open(path, "ab") as f:
        f.write(b"3\n4")  # a partial line waits for its newline
    _wait_for(lambda: got[-1] == b"3")
    time.sleep(0.05)
    assert got == [b"1", b"2", b"3"]
    with open(path, "ab") as f:
        f.write(b"\n")
    _wait_for(lambda: got[-1] == b"4")
    path.write_bytes(b"5\n")  # truncated and rewritten (copytruncate)
    _wait_for(lambda: got[-1] == b"5")
    os.rename(path, tmp_path / "events.jsonl.1")  # rotated
    with open(tmp_path / "events.jsonl.1", "ab") as f:
        f.write(b"6\n")  # the old file's last lines are still read
    path.write_bytes(b"7\n")
    _wait_for(lambda: got[-1] == b"7")
    assert got == [b"1", b"2", b"3", b"4", b"5", b"6", b"7"]
    assert (src.truncations, src.rotations) == (1, 1)
    stop.set()
    th.join(2)
    assert not th.is_alive() and not src.up


def test_file_source_without_follow_reads_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"a\nb\nlast-without-newline")
    got, th = _collect(FileSource(str(path)), threading.Event())
    th.join(5)
    assert got == [b"a", b"b", b"last-without-newline"]


def test_file_source_from_end_reads_only_what_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"old\n")
    stop = threading.Event()
    got, th = _collect(FileSource(str(path), follow=True, from_end=True, poll_s=0.01), stop)
    time.sleep(0.1)
    with open(path, "ab") as f:
        f.write(b"new\n")
    _wait_for(lambda: got == [b"new"])
    stop.set()
    th.join(2)
