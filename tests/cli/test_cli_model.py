"""``anomae calibrate`` and ``anomae inspect`` (anomae/cli/model.py), in subprocesses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("args", "method", "check"),
    [
        (
            ["--method", "pot", "--q", "0.01", "--init-quantile", "0.9"],
            "pot",
            lambda th: th["params"]["q"] == 0.01 and "gamma" in th["params"],
        ),
        (["--method", "ksigma", "--k", "4"], "ksigma", lambda th: th["params"]["k"] == 4),
        (["--method", "mad"], "mad", lambda th: th["expected_far"] is not None),
        # 1 false alarm per day at 1-minute sampling and stride 1: rate 1/1440 per window
        (
            ["--method", "fpr", "--alarms-per-day", "1"],
            "fpr",
            lambda th: abs(th["expected_far"] - 1 / 1440) < 1e-9,
        ),
        (
            ["--false-events-per-day", "1", "--search-min-windows", "1,3"],
            "events",
            lambda th: (
                th["expected_false_events_per_day"] == 1
                and th["post_rule"]["min_windows"] in (1, 3)
            ),
        ),
        (
            ["--method", "quantile", "--q", "0.99", "--per-feature"],
            "quantile",
            lambda th: len(th["per_feature"]) == 6,
        ),
    ],
)
def test_calibration_methods(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path, args: list[str], method: str, check
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m.onnx"
    r = run_cli(["calibrate", str(trained), str(small_demo["train"]), "-o", str(out), *args])
    assert r.returncode == 0, r.stderr
    assert "expected false-alarm rate" in r.stdout
    th = json.loads(run_cli(["inspect", str(out), "--json"]).stdout)["threshold"]
    assert th["method"] == method
    lo, hi = th["expected_far_ci"]
    assert lo <= hi
    assert check(th)


def test_f1_calibration_needs_anomalies(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "m.onnx"
    r = run_cli(
        ["calibrate", str(trained), str(small_demo["train"]), "--method", "f1", "-o", str(out)]
    )
    assert r.returncode == 1 and "label-free method" in r.stderr
    assert not out.exists()
    r = run_cli(
        ["calibrate", str(trained), str(small_demo["test"]), "--method", "f1", "-o", str(out)]
    )
    assert r.returncode == 0, r.stderr
    th = json.loads(run_cli(["inspect", str(out), "--json"]).stdout)["threshold"]
    assert th["method"] == "f1" and 0 < th["params"]["f1"] <= 1


def test_calibrate_in_place_keeps_mode_and_symlink(
    trained: Path, small_demo: dict[str, Path], tmp_path: Path
) -> None:
    real = tmp_path / "store" / "model-v1.onnx"
    real.parent.mkdir()
    real.write_bytes(trained.read_bytes())
    real.chmod(0o644)
    link = tmp_path / "model.onnx"
    link.symlink_to(real)
    r = run_cli(
        ["calibrate", str(link), str(small_demo["train"]), "--method", "quantile", "--q", "0.9"]
    )
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real.stat().st_mode & 0o777) == 0o644
    card = json.loads(run_cli(["inspect", str(real), "--json"]).stdout)
    assert card["threshold"]["params"] == {"q": 0.9}
