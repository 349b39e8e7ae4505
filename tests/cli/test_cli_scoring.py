"""``anomae score`` (anomae/cli/scoring.py), in subprocesses."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow


def test_score_with_the_likelihood_alarm_policy(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    from anomae.likelihood import Likelihood, likelihood_scores

    out = tmp_path / "scores.parquet"
    args = ["score", str(trained), str(small_demo["test"]), "-o", str(out), "--likelihood"]
    r = run_cli([*args, "--likelihood-epsilon", "1e-4", "--likelihood-warmup", "50"])
    assert r.returncode == 0, r.stderr
    df = pl.read_parquet(out)
    spec = Likelihood(epsilon=1e-4, warmup=50)
    for part in df.partition_by("series", maintain_order=True):  # one history per series
        name = part["series"][0]
        want = likelihood_scores(part["score"].to_numpy(), spec).astype("float32")
        got = part["score_normalised"].to_numpy()
        assert got.tobytes() == want.tobytes(), name
        assert part["score_normalised"][:50].is_nan().all()
    assert (df["is_anomaly"] == (df["score_normalised"].fill_nan(0) > 1)).all()
    r = run_cli([*args, "--likelihood-epsilon", "2"])
    assert r.returncode == 2 and "epsilon must be in (0, 1)" in r.stderr
    # unset options take the model card's policy, else the library's defaults, as --help says
    from anomae.cli import score

    lk = Likelihood()
    for k in ("epsilon", "short", "long", "warmup", "season_s"):
        opt = next(p for p in score.params if p.name == f"likelihood_{k}")
        assert opt.default is None and f"else {getattr(lk, k):g}]" in str(opt.help), k


def test_bad_input_keeps_existing_output(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"yesterday's scores")
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,series,temp\n2026-01-01T00:00:00,m1,1.0\n")
    r = run_cli(["score", str(trained), str(bad), "-o", str(out), "--force"])
    assert r.returncode == 1
    assert "bad.csv" in r.stderr and "lacks" in r.stderr
    assert out.read_bytes() == b"yesterday's scores"
    assert list(tmp_path.glob(".scores.parquet.*")) == []


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_score_refuses_unusable_threshold(
    value: str, trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "s.parquet"
    args = [str(trained), str(small_demo["test"]), "-o", str(out), "--threshold", value]
    r = run_cli(["score", *args])
    assert r.returncode == 2 and "not a usable threshold" in r.stderr
    assert not out.exists()


def test_score_never_writes_over_its_input(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "x.csv"
    data.write_bytes(small_demo["test_csv"].read_bytes())
    r = run_cli(["score", str(trained), str(data), "-o", str(data), "--force"])
    assert r.returncode == 1 and "x.csv: is also an input" in r.stderr
    assert data.read_bytes() == small_demo["test_csv"].read_bytes()
