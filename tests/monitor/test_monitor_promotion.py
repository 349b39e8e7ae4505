"""Promotion of a shadow model (``anomae monitor --shadow``): on request or by rule over the
readings' time, with the series' state kept and the model file written; a shadow that
misses events or alarms too often is refused; a failed write keeps the current model and
is counted; a new candidate file replaces the shadow. A rollback (on request or by rule:
the promoted model alarms over its card's budget) restores MODEL.previous on disk and in
memory with the series' state kept; without a previous model it is refused; a failed write
keeps the current model. The daemon, models and helpers are
those of test_monitor_shadow.py: real ONNX graphs, real threads."""

from __future__ import annotations

import shutil
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


def test_promotion_on_request_keeps_the_series_state_and_writes_the_model(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    data = rows(400, {"m1": [(150, 2.0)], "m2": [(250, 1.5)]})
    old = current.read_bytes()
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 200))
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
        wait_for(lambda: run.mon.scorer.detector.sha256 == Detector.load(cand).sha256)
        assert current.read_bytes() == cand.read_bytes()  # a restart keeps it
        assert Path(previous_path(str(current))).read_bytes() == old  # kept for a rollback
        assert run.mon.scorer.shadow is None
        run.feed(readings(data, 200))
        time.sleep(2.5)  # two reload checks: the written file is not a change to reload
        assert run.value("anomae_model_reloads_total", result="ok") == 0
        run.mon.request_promotion()  # nothing left to promote: refused
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
    finally:
        run.close()
    counts = {r: run.value("anomae_model_promotions_total", result=r) for r in RESULTS}
    assert counts == {"ok": 1, "refused": 1, "error": 0}
    # the rings carried over: no window restarted, every row after the first 3 scored once
    assert run.value("anomae_windows_scored_total") == 2 * (400 - 3)
    assert_gauges_are_batch_scores(run, cand, data)


def test_promotion_by_rule_over_the_readings_time(tmp_path: Path) -> None:
    current = model(tmp_path / "current.onnx", 50.0)
    cand = model(tmp_path / "cand.onnx", 40.0)
    data = rows(3 * 1440, {})  # three quiet days: neither model has an event
    run = Running(current, opts(cand, shadow_promote_after_seconds=2 * 86400.0))
    try:
        run.feed(readings(data, 0, 1440))  # one day: not yet
        time.sleep(1.2)
        assert run.value("anomae_model_promotions_total", result="ok") == 0
        # from the end of the first window
        assert run.value("anomae_shadow_scored_seconds") == (1439 - 3) * 60
        run.feed(readings(data, 1440))
        wait_for(lambda: run.value("anomae_model_promotions_total", result="ok") == 1)
    finally:
        run.close()
    assert current.read_bytes() == cand.read_bytes()


def test_the_rule_refuses_a_shadow_that_misses_events_or_alarms_too_often(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    blind = model(tmp_path / "blind.onnx", 500.0)  # sees nothing: misses the bump
    data = rows(1440, {"m1": [(700, 3.0)]})
    run = Running(current, opts(blind, shadow_promote_after_seconds=3600.0))
    try:
        run.feed(readings(data))
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
        assert run.value("anomae_shadow_missed_events_total") == 1
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 0
    assert current.read_bytes() != blind.read_bytes()
    noisy = model(tmp_path / "noisy.onnx", 0.2)  # alarms all the time
    run = Running(current, opts(noisy, shadow_promote_after_seconds=3600.0))
    try:
        run.feed(readings(rows(1440, {})))
        wait_for(lambda: run.value("anomae_model_promotions_total", result="refused") == 1)
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 0


def test_a_failed_promotion_keeps_the_current_model_and_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    current = model(folder / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5, scale=0.8)
    data = rows(300, {"m1": [(100, 2.0)]})
    run = Running(current, opts(cand))
    sha = run.mon.scorer.detector.sha256
    try:
        run.feed(readings(data, 0, 150))
        shutil.rmtree(folder)
        folder.write_text("not a folder")  # the model file cannot be written
        run.mon.request_promotion()
        wait_for(lambda: run.value("anomae_model_promotions_total", result="error") == 1)
        run.feed(readings(data, 150))
        assert run.mon.scorer.detector.sha256 == sha
        assert run.mon.scorer.shadow is not None  # still tried beside
    finally:
        run.close()
    assert run.value("anomae_model_promotions_total", result="ok") == 0
    assert run.value("anomae_windows_scored_total") == 2 * (300 - 3)


def test_a_new_candidate_file_replaces_the_shadow_and_a_bad_one_is_refused(
    tmp_path: Path,
) -> None:
    current = model(tmp_path / "current.onnx", 2.0)
    cand = model(tmp_path / "cand.onnx", 1.5)
    data = rows(200, {"m1": [(100, 2.0)]})
    run = Running(current, opts(cand))
    try:
        run.feed(readings(data, 0, 100))
        first = run.mon.scorer.shadow
        wrong = model(tmp_path / "wrong.onnx", 1.0, length=5)
        shutil.copy(wrong, cand)  # the next retrain run wrote a candidate of another window
        time.sleep(2.5)
        assert run.mon.scorer.shadow is first
        newer = model(tmp_path / "newer.onnx", 1.2, scale=0.9)
        shutil.copy(newer, cand)
        wait_for(lambda: run.mon.scorer.shadow is not first)
        assert run.mon.scorer.shadow.detector.sha256 == Detector.load(newer).sha256
        run.feed(readings(data, 100))
    finally:
        run.close()
    # the new shadow's figures start afresh: only the windows after it came
    assert (run.value("anomae_shadow_scored_seconds") or 0) < 100 * 60
