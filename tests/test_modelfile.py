"""Atomic writes (permissions, symlinks, stale temporaries, errors) and model-file reading."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from anomae.atomic import OutputError, atomic_write_bytes, write_atomically
from anomae.modelfile import load_onnx, read_card
from anomae.spec import CARD_KEY, ModelCardError


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    p = tmp_path / "m.onnx"
    p.write_bytes(b"old")
    for mode in (0o644, 0o640, 0o600):
        p.chmod(mode)
        atomic_write_bytes(p, b"new")
        assert _mode(p) == mode and p.read_bytes() == b"new"


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "new.csv", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.csv") == mode


def test_symlinked_target_is_replaced_and_link_kept(tmp_path: Path) -> None:
    real = tmp_path / "store" / "model-v3.onnx"
    real.parent.mkdir()
    real.write_bytes(b"v3")
    real.chmod(0o644)
    link = tmp_path / "model.onnx"
    link.symlink_to(real)
    atomic_write_bytes(link, b"v4")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"v4" and _mode(real) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "store"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "scores.parquet"
    dead = tmp_path / f".scores.parquet.{_dead_pid()}.ab12cd34.tmp"
    live = tmp_path / f".scores.parquet.{os.getppid()}.ab12cd34.tmp"  # a writer still running
    old = tmp_path / ".scores.parquet.k3j_x9z1.tmp"  # an older anomae's name, no pid
    young = tmp_path / ".scores.parquet.q1w2e3r4.tmp"
    other = tmp_path / f".events.csv.{_dead_pid()}.ab12cd34.tmp"  # another target's
    for p in (dead, live, old, young, other):
        p.write_bytes(b"\0" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    with caplog.at_level(logging.WARNING, logger="anomae"):
        atomic_write_bytes(target, b"new")
    assert not dead.exists() and not old.exists()
    assert live.exists() and young.exists() and other.exists()
    assert str(dead) in caplog.text and "interrupted write" in caplog.text


def test_all_temporaries_written_before_any_rename(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    with pytest.raises(OutputError, match=r"b\.csv/x\.csv: could not write"):
        write_atomically([(a, b"new a"), (b / "x.csv", b"")])  # b is a file, not a folder
    assert a.read_bytes() == b"old a"  # nothing renamed before the failure was known
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv"]


def _model_with_external_data(tmp_path: Path) -> Path:
    w = numpy_helper.from_array(np.zeros(4, np.float32), "unused")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        initializer=[w],
    )
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, "{}"
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="big.bin", size_threshold=0)
    return path


def test_external_data_is_refused_and_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anomae.detector import Detector, DetectorError

    path = _model_with_external_data(tmp_path)
    monkeypatch.chdir(tmp_path)  # onnxruntime would find big.bin from here
    with pytest.raises(DetectorError, match=r"ext\.onnx: tensors stored in external data"):
        Detector.load(path)
    (tmp_path / "big.bin").unlink()  # loading it now would fail differently
    with pytest.raises(ModelCardError, match=r"ext\.onnx: tensors stored in external data"):
        load_onnx(path)
    with pytest.raises(ModelCardError, match="single-file models"):
        read_card(path)
