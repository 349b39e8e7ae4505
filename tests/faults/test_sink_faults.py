"""The ``--sink`` file under faults, with real processes: SIGINT drains and leaves whole
records; SIGKILL at any moment leaves at most one partial last record, which the next start
cuts off; a write that fails half-way (file size limit, like a full disk) is rolled back."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
FEATURES = ("s0", "s1", "s2", "s3")
T0 = 1_767_571_200  # 2026-01-05: in the past, whatever --max-future says


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dense AE with random weights (no training: faults, not accuracy)."""
    torch = pytest.importorskip("torch")
    from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec
    from anomae.train.config import ArchConfig
    from anomae.train.export import export_model
    from anomae.train.model import build_model

    torch.manual_seed(0)
    n_f = len(FEATURES)
    path = tmp_path_factory.mktemp("faults-model") / "model.onnx"
    card = ModelCard(
        features=FEATURES,
        window=WindowSpec(8, 1),
        scaler=Scaler((0.0,) * n_f, (1.0,) * n_f),
        threshold=Threshold(1.0, "quantile", {"q": 0.99}, 1000, 0.01),
    )
    net = build_model(ArchConfig(hidden=(16, 4)), 8, n_f).eval()
    rows = np.random.default_rng(0).normal(size=(1, 100, n_f)).astype(np.float32)
    export_model(net, card, path, rows)
    return path


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200k readings of 50 series, one a second each, interleaved in time."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("faults-events") / "events.jsonl"
    vals = rng.normal(size=(200_000, len(FEATURES))).round(4).tolist()
    with open(path, "w") as f:
        for i, v in enumerate(vals):
            rec = {
                "series": f"m{i % 50}",
                "ts": T0 + i // 50,
                "values": dict(zip(FEATURES, v, strict=True)),
            }
            f.write(json.dumps(rec) + "\n")
    return path


def start(model: Path, source: Path, sink: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["--source", f"file:{source}", "--sink", str(sink), "--listen", "127.0.0.1:0"]
    return subprocess.Popen(
        [sys.executable, "-m", "anomae.cli", "monitor", str(model), *args, *extra],
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_records(sink: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not (sink.exists() and sink.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < end, "no sink record in time"
        time.sleep(0.01)


def whole_records(data: bytes) -> list[dict]:
    assert data.endswith(b"\n"), data[-200:]  # no partial record
    return [json.loads(x) for x in data.splitlines()]


def test_sigint_drains_and_leaves_whole_records(model: Path, events: Path, tmp_path: Path) -> None:
    sink = tmp_path / "out.jsonl"
    proc = start(model, events, sink, "--follow", "--batch-size", "4096")
    wait_for_records(sink, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stopped = [json.loads(x) for x in err.splitlines() if '"stopped"' in x][-1]
    recs = whole_records(sink.read_bytes())
    assert sum(r["type"] == "window" for r in recs) == stopped["scored"] > 0


def test_sigkill_at_any_moment_then_restart_leaves_whole_records(
    model: Path, events: Path, tmp_path: Path
) -> None:
    sink, empty = tmp_path / "out.jsonl", tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    rng = random.Random(7)
    for _ in range(3):
        proc = start(model, events, sink, "--follow", "--batch-size", "4096")
        wait_for_records(sink, proc)
        time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        proc.communicate(timeout=30)
        data = sink.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        for x in complete.splitlines():
            json.loads(x)  # every line but a possibly torn last one is a whole record
        again = start(model, empty, sink)  # the next start cuts a torn tail off
        _, err = again.communicate(timeout=60)
        assert again.returncode == 0, err
        assert (len(data) > len(complete)) == ("cut a partial last record" in err)
        assert sink.read_bytes() == complete
        whole_records(complete)


def test_a_write_failing_half_way_is_rolled_back_to_whole_records(tmp_path: Path) -> None:
    sink = tmp_path / "out.jsonl"
    script = textwrap.dedent(
        f"""
        import resource, signal
        from anomae.monitor.sink import JsonlSink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        s = JsonlSink({str(sink)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))  # a disk that fills up
        line = '{{"type": "window", "pad": "' + "y" * 80 + '"}}\\n'
        failed = 0
        for _ in range(50):
            try:
                s.write([line] * 7)
            except OSError:
                failed += 1
        print(failed)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy()
    )
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) > 0
    recs = whole_records(sink.read_bytes())
    assert len(recs) % 7 == 0 and sink.stat().st_size <= 10_000
