"""JSON-lines sources: stdin (``--source -``) and a file (``file:PATH``), optionally followed.

Both read chunks of up to 64 KiB, cut them into lines and emit each chunk's lines as one
:class:`RawBatch` with ``block=True``: a replay never loses a line, and a slow scorer slows
the reading down instead of growing memory. A line longer than ``max_bytes`` is not kept
whole: its first ``max_bytes + 1`` bytes are emitted (the parser counts it ``too_large``)
and the rest is skipped up to the next newline. Blank lines are skipped. At the end of a
non-followed input the last line counts even without a newline, and ``run`` returns.

``follow=True`` (``--follow``, like ``tail -F``): at the end of the file, wait and poll
(every ``poll_s``). A partial last line waits for its newline. When the file shrinks (it was
truncated, e.g. by ``copytruncate``) reading restarts at its beginning; when the path names
a new file (rotation by rename), the old one is read to its end first and the new one from
its beginning. ``from_end=True`` starts at the current end instead of the beginning.

    >>> split = LineSplitter(max_bytes=8)
    >>> split.feed(b'{"a":1}\\n{"b"'), split.feed(b':2}\\n0123456789abc\\nx'), split.end()
    ([b'{"a":1}'], [b'{"b":2}', b'0123456789abc'], [b'x'])
"""

from __future__ import annotations

import os
import sys
import threading
import time

from anomae.monitor.readings import MAX_BYTES
from anomae.monitor.sources.base import Emit, RawBatch, Source

CHUNK = 64 * 1024


class LineSplitter:
    """Bytes in, complete lines out; bounded memory whatever the input."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._carry = b""
        self._skipping = False  # inside an over-long line, dropping bytes up to its newline

    def feed(self, data: bytes) -> list[bytes]:
        parts = (self._carry + data).split(b"\n")
        tail = parts.pop()
        if self._skipping:
            if not parts:
                self._carry = b""
                return []
            parts.pop(0)  # the rest of the over-long line
            self._skipping = False
        lines = [p for p in parts if p.strip()]
        if len(tail) > self.max_bytes:
            lines.append(tail[: self.max_bytes + 1])  # counted too_large by the parser
            tail, self._skipping = b"", True
        self._carry = tail
        return lines

    def end(self) -> list[bytes]:
        tail, self._carry = self._carry, b""
        return [tail] if tail.strip() and not self._skipping else []

    def reset(self) -> None:
        self._carry, self._skipping = b"", False


class StdinSource(Source):
    """Lines from standard input (or any file descriptor) until end of input or stop."""

    kind = "stdin"

    def __init__(self, fd: int | None = None, max_bytes: int = MAX_BYTES) -> None:
        super().__init__()
        self.fd = fd
        self.max_bytes = max_bytes

    def run(self, emit: Emit, stop: threading.Event) -> None:
        split = LineSplitter(self.max_bytes)
        fd = sys.stdin.fileno() if self.fd is None else self.fd
        self.up = True
        try:
            while not stop.is_set():
                data = os.read(fd, CHUNK)  # returns what a pipe has: low latency
                if not data:
                    break
                lines = split.feed(data)
                if lines and not emit(RawBatch(lines), True):
                    return
            lines = split.end()
            if lines and not stop.is_set():
                emit(RawBatch(lines), True)
        finally:
            self.up = False


class FileSource(Source):
    """Lines of a file; with ``follow`` it keeps reading as the file grows or rotates."""

    kind = "file"

    def __init__(
        self,
        path: str,
        follow: bool = False,
        from_end: bool = False,
        poll_s: float = 0.01,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        super().__init__()
        self.path = path
        self.follow = follow
        self.from_end = from_end
        self.poll_s = poll_s
        self.max_bytes = max_bytes
        self.rotations = 0
        self.truncations = 0

    def run(self, emit: Emit, stop: threading.Event) -> None:
        split = LineSplitter(self.max_bytes)
        fd = self._open(stop, first=True)
        if fd is None:
            return
        self.up = True
        try:
            while not stop.is_set():
                data = os.read(fd, CHUNK)
                if data:
                    lines = split.feed(data)
                    if lines and not emit(RawBatch(lines), True):
                        return
                    continue
                if not self.follow:
                    break
                swapped = self._check(fd, split, stop)
                if swapped is None:
                    time.sleep(self.poll_s)
                elif swapped != fd:
                    tail = split.end()  # the old file ended; its last line is complete
                    if tail and not emit(RawBatch(tail), True):
                        os.close(swapped)
                        return
                    os.close(fd)
                    fd = swapped
            if not self.follow:
                tail = split.end()
                if tail and not stop.is_set():
                    emit(RawBatch(tail), True)
        finally:
            os.close(fd)
            self.up = False

    def _open(self, stop: threading.Event, first: bool) -> int | None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                if not self.follow:
                    raise
                if stop.wait(max(self.poll_s, 0.1)):
                    return None
                continue
            if first and self.from_end:
                os.lseek(fd, 0, os.SEEK_END)
            return fd

    def _check(self, fd: int, split: LineSplitter, stop: threading.Event) -> int | None:
        """At the end of the file: a new fd after rotation, ``fd`` after truncation (seeked
        back to the start), or None when nothing changed."""
        st = os.fstat(fd)
        pos = os.lseek(fd, 0, os.SEEK_CUR)
        if st.st_size < pos:
            self.truncations += 1
            os.lseek(fd, 0, os.SEEK_SET)
            split.reset()
            return fd
        try:
            path_st = os.stat(self.path)
        except FileNotFoundError:
            return None  # renamed away, the new one not there yet
        if (path_st.st_ino, path_st.st_dev) != (st.st_ino, st.st_dev):
            if os.fstat(fd).st_size > os.lseek(fd, 0, os.SEEK_CUR):
                return None  # the old file grew after all: read it first
            new = self._open(stop, first=False)
            if new is not None:
                self.rotations += 1
            return new
        return None
