"""`anomae score` under faults: SIGKILL at random moments, and a full disk (RLIMIT_FSIZE).

The model is a real anomae export (untrained weights: scoring does not care), the command
runs in a subprocess exactly as a user runs it. The scores are written in parts
(:mod:`anomae.parts`) as they are produced; a full disk while parts are written (small
parts) leaves the old outputs and no temporaries either.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")

from anomae.spec import ModelCard, Scaler, WindowSpec  # noqa: E402
from anomae.train.config import ArchConfig  # noqa: E402
from anomae.train.export import export_model  # noqa: E402
from anomae.train.model import build_model  # noqa: E402

pytestmark = pytest.mark.slow
F = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("faults")
    torch.manual_seed(0)
    card = ModelCard(
        features=tuple(f"s{i}" for i in range(F)),
        window=WindowSpec(16, 1),
        scaler=Scaler((0.0,) * F, (1.0,) * F),
    )
    rng = np.random.default_rng(0)
    model = folder / "m.onnx"
    rows = rng.normal(size=(1, 100, F)).astype(np.float32)
    export_model(build_model(ArchConfig(hidden=(16, 4)), 16, F), card, model, rows)
    n = 300_000
    data = pl.DataFrame(
        {
            "timestamp": np.arange(n, dtype=np.int64) * 60,
            "series": np.repeat(["m1", "m2", "m3"], n // 3),
            **{f"s{i}": rng.normal(size=n) * (1 + 3 * (rng.random(n) < 0.01)) for i in range(F)},
        }
    )
    big, small = folder / "big.parquet", folder / "small.parquet"
    data.write_parquet(big)
    data.head(3000).write_parquet(small)
    return {"model": model, "big": big, "small": small, "dir": folder}


def _cmd(setup: dict[str, Path], data: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "anomae.cli", "score", str(setup["model"]), str(data),
        "-o", str(out / "scores.parquet"), "--events", str(out / "events.parquet"),
        "--threshold", "3", "--force", "--no-progress",
    ]  # fmt: skip


def _run_id(path: Path) -> str:
    return pl.read_parquet_metadata(path)["anomae.run_id"]


def test_sigkill_leaves_old_or_new_outputs_never_partial(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    scores, events = tmp_path / "scores.parquet", tmp_path / "events.parquet"
    t0 = time.perf_counter()
    subprocess.run(_cmd(setup, setup["big"], tmp_path), env=env, check=True, capture_output=True)
    full = time.perf_counter() - t0
    want_rows = pl.read_parquet(scores).height
    old = {_run_id(scores), _run_id(events)}
    assert len(old) == 1
    rng = random.Random(1)
    outcomes = []
    for delay in [rng.uniform(0.3, 1.3) * full for _ in range(8)]:
        p = subprocess.Popen(_cmd(setup, setup["big"], tmp_path), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        # both files complete (readable, every window), and new scores only beside new
        # events: scores are renamed last; a pair from two runs has two run ids
        assert pl.read_parquet(scores).height == want_rows
        pl.read_parquet(events)
        s_id, e_id = _run_id(scores), _run_id(events)
        assert s_id == e_id or s_id in old, "new scores beside old events"
        outcomes.append("old" if s_id in old else "new")
        old = {s_id}
    temps = len(list(tmp_path.glob(".*.tmp")))
    r = subprocess.run(_cmd(setup, setup["small"], tmp_path), env=env, capture_output=True,
                       text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "scores.parquet"]
    print(f"full run {full:.2f}s; after each kill: {outcomes}; {temps} temporaries left")


def test_full_disk_is_a_clear_error_and_keeps_old_outputs(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(_cmd(setup, setup["small"], tmp_path), env=env, capture_output=True)
    assert r.returncode == 0, r.stderr
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert max(len(b) for b in before.values()) < 512 * 1024

    def limit() -> None:  # the file-size limit a full disk looks like to a writer
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    r = subprocess.run(_cmd(setup, setup["big"], tmp_path), env=env, capture_output=True,
                       text=True, preexec_fn=limit)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "scores.parquet: could not write: File too large" in r.stderr
    assert "previous file (if any) is unchanged" in r.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_full_disk_while_writing_parts_keeps_old_outputs(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(_cmd(setup, setup["small"], tmp_path), env=env, capture_output=True)
    assert r.returncode == 0, r.stderr
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code = (
        "import sys\n"
        "from anomae.score import ScoreOptions, score_files\n"
        "from anomae.atomic import OutputError\n"
        "try:\n"
        f"    score_files({str(setup['model'])!r}, [{str(setup['big'])!r}],\n"
        f"        {str(tmp_path / 'scores.parquet')!r}, {str(tmp_path / 'events.parquet')!r},\n"
        "        opts=ScoreOptions(threshold=3.0, progress=False), force=True,\n"
        "        batch_rows=20_000, part_rows=20_000)\n"
        "except OutputError as e:\n"
        "    print(e); sys.exit(1)\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))

    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       preexec_fn=limit)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "scores.parquet: could not write: File too large" in r.stdout
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
