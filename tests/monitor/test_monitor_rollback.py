"""Rollback of a promotion (anomae/monitor/rollback.py) on a running daemon: by request
(SIGUSR2) and by rule (--rollback-within), refused without MODEL.previous, a failed write
keeps the current model; each counted."""

from __future__ import annotations

import time
from pathlib import Path

from test_monitor_shadow import (
    Running,
    assert_gauges_are_batch_scores,
    model,
    opts,
    readings,
    rows,
    wait_for,
)

from anomae.detector import Detector
from anomae.monitor.promotion import RESULTS
from anomae.monitor.rollback import previous_path


def rollbacks(run: Running) -> dict[tuple[str, str], float]:
    return {(reason, result): run.value("anomae_model_rollbacks_total", reason=reason,
                                        result=result) or 0.0
            for reason in ("signal", "rule") for result in RESULTS}  # fmt: skip


def test_rollback_on_request_restores_the_old_model_and_keeps_the_series_state(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    old, old_sha = current.read_bytes(), Detector.load(current).sha256
    data = rows(600, {"m1": [(150, 2.0), (450, 2.0)], "m2": [(250, 1.5)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 200))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        run.feed(readings(data, 200, 400))
        assert run.mon.scorer.detector.sha256 != old_sha
        run.mon.request_promotion(rollback=True)
        wait_for(lambda: rollbacks(run)["signal", "ok"] == 1)
        wait_for(lambda: run.mon.scorer.detector.sha256 == old_sha)
        assert current.read_bytes() == old  # on disk too: a restart keeps it
        assert not Path(previous_path(str(current))).exists()  # used up
        run.feed(readings(data, 400))
        time.sleep(2.5)  # two reload checks: the written file is not a change to reload
        assert run.value("anomae_model_reloads_total", result="ok") == 0
        run.mon.request_promotion(rollback=True)  # nothing left to roll back to
        wait_for(lambda: rollbacks(run)["signal", "refused"] == 1)
        run.mon.request_promotion()  # the rolled-back candidate is not the shadow any more
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
    finally:
        run.close()
    assert run.mon.scorer.detector.sha256 == old_sha
    assert sum(rollbacks(run).values()) == 2
    # the rings carried over both swaps: every row after the first 3 scored once
    assert run.value("anomae_windows_scored_total") == 2 * (600 - 3)
    assert_gauges_are_batch_scores(run, current, data)


def test_rollback_by_rule_when_the_promoted_model_alarms_over_its_budget(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    noisy = model(tmp_path / "noisy.onnx", 0.2)  # alarms all the time
    old, old_sha = current.read_bytes(), Detector.load(current).sha256
    data = rows(1000, {})
    run = Running(current, opts(noisy, rollback_within_seconds=6 * 3600.0))
    try:
        run.feed(readings(data, 0, 100))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        assert current.read_bytes() == noisy.read_bytes()
        run.feed(readings(data, 100))  # its events: over 0.5 per day x 6 h within 6 h
        wait_for(lambda: rollbacks(run)["rule", "ok"] == 1)
        wait_for(lambda: run.mon.scorer.detector.sha256 == old_sha)
        assert current.read_bytes() == old
        time.sleep(1.2)  # not promoted again: the shadow is gone until its file changes
        assert run.mon.scorer.shadow is None and run.mon.promotion.shadow is None
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 1
    assert sum(rollbacks(run).values()) == 1
    assert run.value("anomae_windows_scored_total") == 2 * (1000 - 3)


def test_a_rule_rollback_without_a_previous_model_is_refused_once(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    noisy = model(tmp_path / "noisy.onnx", 0.2)
    data = rows(600, {})
    run = Running(current, opts(noisy, rollback_within_seconds=6 * 3600.0))
    try:
        run.feed(readings(data, 0, 100))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        Path(previous_path(str(current))).unlink()  # removed by hand
        run.feed(readings(data, 100))
        wait_for(lambda: rollbacks(run)["rule", "refused"] == 1)
        time.sleep(2.2)  # two more ticks: the rule is done with this promotion
    finally:
        run.close()
    assert sum(rollbacks(run).values()) == 1
    assert current.read_bytes() == noisy.read_bytes()


def test_a_promoted_model_within_its_budget_is_kept(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 50.0)
    cand = model(tmp_path / "cand.onnx", 40.0)
    data = rows(600, {})  # quiet: neither model has an event
    run = Running(current, opts(cand, rollback_within_seconds=4 * 3600.0))
    try:
        run.feed(readings(data, 0, 100))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        assert run.mon.promotion.rollback.watching is not None
        run.feed(readings(data, 100))  # over 4 h of readings after the promotion
        wait_for(lambda: run.mon.promotion.rollback.watching is None)
    finally:
        run.close()
    assert sum(rollbacks(run).values()) == 0
    assert current.read_bytes() == cand.read_bytes()


def test_a_rollback_without_a_previous_model_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    old, old_sha = current.read_bytes(), Detector.load(current).sha256
    data = rows(200, {"m1": [(100, 2.0)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 100))
        run.mon.request_promotion(rollback=True)
        wait_for(lambda: rollbacks(run)["signal", "refused"] == 1)
        run.feed(readings(data, 100))
        assert run.mon.scorer.shadow is not None  # the shadow still runs beside
    finally:
        run.close()
    assert run.mon.scorer.detector.sha256 == old_sha and current.read_bytes() == old
    assert sum(rollbacks(run).values()) == 1
    assert run.value("anomae_windows_scored_total") == 2 * (200 - 3)


def test_a_failed_rollback_keeps_the_current_model_and_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    current = model(folder / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    data = rows(300, {"m1": [(100, 2.0)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 100))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        sha = Detector.load(cand).sha256
        wait_for(lambda: run.mon.scorer.detector.sha256 == sha)
        # MODEL now points into a "folder" that is a file: it cannot be written (as root too)
        (tmp_path / "blocker").write_text("not a folder")
        current.unlink()
        current.symlink_to(tmp_path / "blocker" / "current.onnx")
        run.mon.request_promotion(rollback=True)
        wait_for(lambda: rollbacks(run)["signal", "error"] == 1)
        run.feed(readings(data, 100))
        assert run.mon.scorer.detector.sha256 == sha
        assert Path(previous_path(str(current))).exists()  # still there for another try
    finally:
        run.close()
    assert sum(rollbacks(run).values()) == 1
    assert run.value("anomae_windows_scored_total") == 2 * (300 - 3)
