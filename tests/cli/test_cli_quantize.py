"""``anomae quantize`` in a subprocess with torch blocked: it writes the int8 model when the
gate passes, ``inspect`` shows the gate, a stricter gate refuses with exit 1 leaving the
output as it was, and an existing output needs --force. The model is test_quantize.py's
PCA autoencoder (numpy weights, no training)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import blocked_imports, run_cli
from test_quantize import F, _build, _series


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("q") / "model.onnx")


def _csv(path: Path, rows: np.ndarray) -> Path:
    import polars as pl

    ts = np.arange(rows.shape[0], dtype=np.int64) * 60_000_000_000
    frame = {"timestamp": pl.Series(ts).cast(pl.Datetime("ns"))}
    pl.DataFrame({**frame, **{f"s{i}": rows[:, i] for i in range(F)}}).write_csv(path)
    return path


@pytest.mark.slow
def test_cli_quantizes_without_torch_and_refuses_with_exit_1(good: Path, tmp_path: Path) -> None:
    data = _csv(tmp_path / "held_out.csv", _series(2))
    out = tmp_path / "model.int8.onnx"
    env = blocked_imports(tmp_path / "block", "torch")
    done = run_cli(["quantize", str(good), str(data), "-o", str(out)], env=env)
    assert done.returncode == 0, done.stderr
    assert "int8 gate passed" in done.stdout and "Spearman" in done.stdout
    assert "speed: int8 " in done.stdout and "x float32's speed" in done.stdout
    shown = run_cli(["inspect", str(out)], env=env)
    assert (
        "  int8         dynamic, 12 matrix products, one-window calls float32, gate: false alarms"
        in shown.stdout
    )
    assert "; speed: int8 " in shown.stdout
    before = out.read_bytes()
    strict = ["--min-spearman", "1", "--force"]
    refused = run_cli(["quantize", str(good), str(data), "-o", str(out), *strict], env=env)
    assert refused.returncode == 1
    assert "error: the int8 model would change the alarms" in refused.stderr
    assert out.read_bytes() == before
    exists = run_cli(["quantize", str(good), str(data), "-o", str(out)], env=env)
    assert exists.returncode == 1 and "already exists" in exists.stderr


@pytest.mark.slow
def test_cli_backs_off_a_sensitive_layer_and_says_so(tmp_path: Path) -> None:
    """The decoder's outlier weight fails the all-int8 gate: by default the decoder goes
    back to float32 and the command and ``inspect`` say so; ``--no-backoff`` refuses."""
    bad = _build(tmp_path / "bad.onnx", outlier=500.0)
    data = _csv(tmp_path / "held_out.csv", _series(2))
    out = tmp_path / "bad.int8.onnx"
    refused = run_cli(["quantize", str(bad), str(data), "-o", str(out), "--no-backoff"])
    assert refused.returncode == 1 and not out.exists()
    done = run_cli(["quantize", str(bad), str(data), "-o", str(out)])
    assert done.returncode == 0, done.stderr
    assert "6 matrix products int8 (layers [1] of 2 kept float32)" in done.stdout
    shown = run_cli(["inspect", str(out)]).stdout
    assert (
        "  int8         dynamic, 6 matrix products, layers [1] of 2 float32, "
        "one-window calls float32, gate:"
        in shown
    )
