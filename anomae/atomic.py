"""Atomic file output: every file anomae writes goes through :func:`write_atomically`.

A file is written to a temporary name beside its target, flushed and fsynced, then renamed
over the target, and the folder is fsynced: a reader sees the old file or the new one, never
a part. Several files written together (scores and events) are all fully written to their
temporaries before the first rename. The rules every writer gets from here:

* **permissions**: a replaced file keeps its mode; a new file gets ``0666 & ~umask``, as
  ``open()`` would give it (a temporary from :mod:`tempfile` would be 0600);
* **symlinks**: a target that is a symlink is followed: the file it points to is replaced
  and the link is kept;
* **stale temporaries**: temporaries are named ``.<name>.<pid>.<random>.tmp``; a write
  removes those of the same target whose writer process is gone (or, for names without a
  pid, that are older than an hour), and logs a warning for each;
* **errors**: an ``OSError`` (full disk, file size limit, permissions) becomes an
  :class:`OutputError` that names the path and the cause; the old file is left intact.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomically([(d / "a.csv", b"x\\n"), (d / "b.csv", b"y\\n")])
    >>> (d / "a.csv").read_text(), sorted(p.name for p in d.iterdir())
    ('x\\n', ['a.csv', 'b.csv'])
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from anomae.errors import AnomaeError

log = logging.getLogger("anomae")

STALE_AFTER_S = 3600.0  # temporaries without a readable pid are stale after this long


class OutputError(AnomaeError):
    """An output file could not or may not be written; the message names it and says why."""


def target_of(path: str | Path) -> Path:
    """The file a write to ``path`` replaces: symlinks followed (a dangling one too)."""
    return Path(os.path.realpath(path))


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file (after symlinks; hard links too)."""
    ra, rb = target_of(a), target_of(b)
    if ra == rb:
        return True
    try:
        return os.path.samefile(ra, rb)
    except OSError:
        return False


def check_outputs(
    outputs: Sequence[str | Path], inputs: Sequence[str | Path] = (), force: bool = False
) -> None:
    """Refuse to write over an input, to write two outputs to one file, or (without
    ``force``) to replace an existing output; call before any work is done."""
    for i, out in enumerate(outputs):
        for src in inputs:
            if same_file(out, src):
                raise OutputError(
                    f"{out}: is also an input ({src}); refusing to write over it: choose "
                    f"another output path"
                )
        for other in outputs[:i]:
            if same_file(out, other):
                raise OutputError(f"{out}: given for two outputs; choose distinct paths")
        if not force and os.path.lexists(out):
            raise OutputError(
                f"{out}: already exists; pass --force to replace it, or choose another path"
            )


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(target: Path) -> int:
    try:
        return os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def temp_name(target: Path) -> Path:
    """A fresh temporary path beside ``target`` that :func:`remove_stale_temps` recognises."""
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def remove_stale_temps(target: str | Path, now: float | None = None) -> list[Path]:
    """Delete temporaries of ``target`` left by writers that were killed; return them.

    A temporary is stale when the pid in its name is not a live process, or, when its name
    has no pid (an older anomae), when it is older than :data:`STALE_AFTER_S`."""
    target = Path(target)
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    prefix = f".{target.name}."
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        parts = entry.name[len(prefix) : -len(".tmp")].split(".")
        if len(parts) == 2 and parts[0].isdigit():
            pid: str | None = parts[0]
        elif len(parts) == 1:
            pid = None
        else:
            continue  # a temporary of another file whose name extends this one's
        if not entry.is_file(follow_symlinks=False):
            continue
        try:
            if pid is not None and int(pid) != os.getpid():
                stale = not _pid_alive(int(pid))
            elif pid is None:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            else:
                stale = False
            if stale:
                size = entry.stat(follow_symlinks=False).st_size
                os.unlink(entry.path)
                removed.append(Path(entry.path))
                log.warning(
                    "removed %s (%s bytes): a temporary file of %s left by an interrupted write",
                    entry.path,
                    f"{size:,}",
                    target,
                )
        except OSError:
            continue  # another writer cleaned it up, or we may not: not our business
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    import errno

    hints = {
        errno.ENOSPC: "the disk is full; free space and run again",
        errno.EDQUOT: "the disk quota is exceeded; free space and run again",
        errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
        errno.EACCES: "permission denied; write elsewhere or fix the folder's permissions",
        errno.EROFS: "the filesystem is read-only; write elsewhere",
    }
    cause = exc.strerror or type(exc).__name__
    hint = hints.get(exc.errno or 0, "")
    return f"{cause}" + (f" ({hint})" if hint else "")


def _write_temp(target: Path, data: bytes) -> Path:
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, _mode_for(target))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


@contextmanager
def _as_output_error(path: str | Path) -> Iterator[None]:
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(
            f"{path}: could not write: {_why(exc)}; the previous file (if any) is unchanged"
        ) from exc


def write_atomically(files: Sequence[tuple[str | Path, bytes]]) -> None:
    """Replace each ``(path, data)`` atomically; all temporaries are complete before the
    first rename, and the renames happen in the order given (put the file that marks a
    complete run last). On any error nothing is renamed and no temporary is left."""
    plan = [(Path(p), target_of(p), data) for p, data in files]
    temps: list[Path] = []
    try:
        for shown, target, data in plan:
            with _as_output_error(shown):
                target.parent.mkdir(parents=True, exist_ok=True)
                remove_stale_temps(target)
                temps.append(_write_temp(target, data))
        for (shown, target, _), tmp in zip(plan, temps, strict=True):
            with _as_output_error(shown):
                os.replace(tmp, target)
        for folder in {target.parent for _, target, _ in plan}:
            _fsync_dir(folder)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see the module docstring for the rules)."""
    write_atomically([(path, data)])


@contextmanager
def atomic_text_writer(path: str | Path) -> Iterator[TextIO]:
    """A text stream whose content replaces ``path`` atomically when the block ends
    without error, for output too large to hold as one ``bytes`` (``anomae replay -o``);
    on any error the temporary is removed and ``path`` is unchanged."""
    shown, target = Path(path), target_of(path)
    with _as_output_error(shown):
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target)
        tmp = temp_name(target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with _as_output_error(shown), os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), _mode_for(target))
            yield out
            out.flush()
            os.fsync(out.fileno())
        with _as_output_error(shown):
            os.replace(tmp, target)
            _fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
