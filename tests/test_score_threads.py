"""`anomae score` with its helper threads (the next batch read ahead, the scores written as
they come): an error met by the reader thread is the same clear error, and neither it nor
Ctrl-C in the middle of a run leaves anything but the previous outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.errors import InputError
from anomae.score import ScoreOptions, score_files
from tests.test_stream_score import FEATURES, detector

T0 = 1_700_000_000


def _data(path: Path, n: int, series: int = 3) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, len(FEATURES)))
    pl.DataFrame(
        {"timestamp": T0 + np.arange(n) // series * 60,
         "series": np.tile([f"m{i}" for i in range(series)], n // series + 1)[:n],
         **{f: x[:, j] for j, f in enumerate(FEATURES)}}  # fmt: skip
    ).write_parquet(path)
    return path


def _old_outputs(tmp_path: Path, model: str, data: Path) -> dict[str, bytes]:
    opts = ScoreOptions(progress=False)
    score_files(model, [data], tmp_path / "s.parquet", tmp_path / "e.parquet", opts=opts)
    return {p.name: p.read_bytes() for p in tmp_path.glob("[se].parquet")}


def test_a_bad_cell_met_by_the_reader_thread_is_the_same_error(tmp_path: Path) -> None:
    model = detector(tmp_path, 5, 1).path
    data = _data(tmp_path / "d.parquet", 3000)
    old = _old_outputs(tmp_path, model, data)
    bad = tmp_path / "bad.csv"
    pl.read_parquet(data).with_columns(pl.col("a").cast(pl.String)).with_columns(
        pl.when(pl.int_range(pl.len()) == 2500).then(pl.lit("oops")).otherwise(pl.col("a"))
        .alias("a")
    ).write_csv(bad)  # fmt: skip
    threads = set(threading.enumerate())
    with pytest.raises(InputError, match=r"bad.csv: column 'a', row 2501 \(line 2502\): value "
                       '"oops" is not a number'):  # fmt: skip
        score_files(model, [bad], tmp_path / "s.parquet", tmp_path / "e.parquet",
                    opts=ScoreOptions(progress=False), force=True, batch_rows=500,
                    part_rows=100)  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.glob("[se].parquet")} == old
    assert not list(tmp_path.glob(".*.tmp"))
    assert set(threading.enumerate()) <= threads  # the reader and writer threads ended


def test_ctrl_c_in_the_middle_leaves_the_old_outputs_and_no_temporaries(tmp_path: Path) -> None:
    model = detector(tmp_path, 5, 1).path
    data = _data(tmp_path / "d.parquet", 3_000_000)
    old = _old_outputs(tmp_path, model, _data(tmp_path / "small.parquet", 3000))
    cmd = [sys.executable, "-m", "anomae.cli", "score", model, str(data),
           "-o", str(tmp_path / "s.parquet"), "--events", str(tmp_path / "e.parquet"),
           "--force", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".s.parquet.*.tmp")):  # the scores are being written
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in tmp_path.glob("[se].parquet")} == old
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_cpu_threads_are_calls_side_by_side_on_one_thread_sessions(
    tmp_path: Path, threads: int
) -> None:
    """On CPU ``threads`` onnxruntime calls run side by side, one onnxruntime thread each
    (0: one per core), and the outputs are the same bytes as one call at a time."""
    from anomae.detector import usable_cores
    from anomae.io import TableSpec
    from anomae.score import open_run

    det = detector(tmp_path, 5, 1)
    data = _data(tmp_path / "d.parquet", 3000, series=5)
    det2, _, sc = open_run(det.path, [data], tmp_path / "x.parquet", None, TableSpec(),
                           ScoreOptions(progress=False), False, "cpu", threads,
                           overlap=True)  # fmt: skip
    options = det2.session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == 1
    assert sc._worker is not None
    want = threads or usable_cores()
    assert sc._worker._max_workers == want
    sc.close()
    opts = ScoreOptions(chunk_windows=64, progress=False)
    outs = {}
    for t in sorted({1, threads}):
        d = tmp_path / f"t{t}"
        score_files(det.path, [data], d / "s.parquet", d / "e.parquet", opts=opts, threads=t)
        outs[t] = [(d / n).read_bytes() for n in ("s.parquet", "e.parquet")]
        assert pl.read_parquet(d / "s.parquet").height == 3000 - 5 * 4
    # the same bytes but the run id in the metadata
    assert [len(b) for b in outs[1]] == [len(b) for b in outs[threads]]
    a, b = (pl.read_parquet(tmp_path / f"t{t}" / "s.parquet") for t in (1, threads))
    assert a.equals(b)
