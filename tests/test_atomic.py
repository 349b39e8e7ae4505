"""Atomic file output (anomae/atomic.py): all-or-nothing writes, kept modes and symlinks,
refused outputs, and stale temporaries of killed writers removed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anomae.atomic import (
    STALE_AFTER_S,
    OutputError,
    atomic_text_writer,
    check_outputs,
    remove_stale_temps,
    temp_name,
    write_atomically,
)


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    old = tmp_path / "old.csv"
    old.write_text("before")
    old.chmod(0o640)
    mask = os.umask(0o027)
    try:
        write_atomically([(old, b"after"), (tmp_path / "new.csv", b"x")])
    finally:
        os.umask(mask)
    assert old.read_text() == "after" and (old.stat().st_mode & 0o777) == 0o640
    assert ((tmp_path / "new.csv").stat().st_mode & 0o777) == 0o640  # 0666 & ~0027
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "old.csv"]


def test_a_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "store" / "v1.csv"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "current.csv"
    link.symlink_to(real)
    write_atomically([(link, b"new")])
    assert link.is_symlink() and real.read_text() == "new"


def test_a_failed_write_renames_nothing_and_leaves_no_temporary(tmp_path: Path) -> None:
    first = tmp_path / "scores.csv"
    first.write_text("yesterday")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"not-a-folder/events.csv: could not write: ") as e:
        write_atomically([(first, b"today"), (blocker / "events.csv", b"x")])
    assert "previous file (if any) is unchanged" in str(e.value)
    assert first.read_text() == "yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder", "scores.csv"]


def test_the_text_writer_replaces_only_when_the_block_ends_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "readings.jsonl"
    path.write_text("previous\n")
    with pytest.raises(RuntimeError), atomic_text_writer(path) as out:
        out.write("half")
        raise RuntimeError("the reader failed")
    assert path.read_text() == "previous\n" and list(tmp_path.iterdir()) == [path]
    with atomic_text_writer(path) as out:
        out.write("whole\n")
    assert path.read_text() == "whole\n" and list(tmp_path.iterdir()) == [path]


def test_outputs_are_checked_before_any_work(tmp_path: Path) -> None:
    data, out = tmp_path / "data.csv", tmp_path / "out.csv"
    data.write_text("x")
    alias = tmp_path / "alias.csv"
    alias.symlink_to(data)
    with pytest.raises(OutputError, match="is also an input"):
        check_outputs([alias], inputs=[data], force=True)
    with pytest.raises(OutputError, match="given for two outputs"):
        check_outputs([out, tmp_path / "." / "out.csv"])
    check_outputs([out], inputs=[data])  # absent: fine
    out.write_text("old")
    with pytest.raises(OutputError, match="already exists; pass --force"):
        check_outputs([out])
    check_outputs([out], force=True)


def test_only_stale_temporaries_of_the_target_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    killed = tmp_path / f".scores.csv.{int(dead.stdout)}.abcd1234.tmp"
    mine = temp_name(target)  # this process is alive
    old_unnamed, new_unnamed = tmp_path / ".scores.csv.old.tmp", tmp_path / ".scores.csv.new.tmp"
    other = tmp_path / ".scores.csv.gz.999999.abcd1234.tmp"  # another file's temporary
    for p in (killed, mine, old_unnamed, new_unnamed, other):
        p.write_text("part")
    now = time.time()
    for p in (old_unnamed, other):
        os.utime(p, (now - STALE_AFTER_S - 60,) * 2)
    assert sorted(remove_stale_temps(target, now=now)) == sorted([killed, old_unnamed])
    assert all(p.exists() for p in (mine, new_unnamed, other))
