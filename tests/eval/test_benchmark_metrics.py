"""The harness's per-case and summary metrics, by hand: event F1 and false events per day
(or per 10,000 rows where the data has no time)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from anomae.eval.benchmark import (
    Scored,
    case_events,
    case_metrics,
    pipeline_rule,
    span_days,
    summarise,
)
from anomae.eval.datasets import Case
from anomae.eval.report import benchmark_table
from anomae.events import PostRule

HOUR = 3600 * 10**9
LABEL = "0011100011"  # two labelled anomalies: rows 2-4 and 8-9


def _case(label: str = LABEL, step: int = HOUR, meta: dict[str, Any] | None = None) -> Case:
    n = len(label)
    return Case(
        name="c",
        features=("value",),
        train=np.zeros((4, 1), np.float32),
        test=np.zeros((n, 1), np.float32),
        test_label=np.array([int(c) for c in label], np.int8),
        test_timestamps=np.arange(n, dtype=np.int64) * step,
        train_timestamps=np.arange(-4, 0, dtype=np.int64) * step,
        meta=meta or {},
    )


def _scored(flags: str) -> Scored:
    return Scored(np.array([2.0 if c == "1" else 0.5 for c in flags]), 1.0)


@pytest.mark.parametrize(
    ("flags", "false_events", "event_f1"),
    [
        # events 0-1 and 5-6 overlap no label, 8-9 does; precision 2/6, recall 1/2
        ("1100011011", 2, 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2)),
        ("0010000010", 0, 1.0),  # one row in each anomaly
        ("0000000000", 0, 0.0),
        ("0000010000", 1, 0.0),
    ],
)
def test_case_metrics_by_hand(flags: str, false_events: int, event_f1: float) -> None:
    m = case_metrics(_scored(flags), _case(), PostRule(min_windows=1), vus_window=2)
    assert m["false_events"] == false_events
    assert m["event_f1"] == pytest.approx(event_f1)
    assert m["span_days"] == pytest.approx(10 / 24)  # 10 hourly rows


@pytest.mark.parametrize(
    ("flags", "rule", "starts", "ends"),
    [
        ("1100011011", PostRule(min_windows=1), [0, 5, 8], [1, 6, 9]),
        ("1100011011", PostRule(min_windows=3), [], []),
        ("1100011011", PostRule(min_windows=2, max_gap=2), [0, 5], [1, 9]),
        ("0000000000", PostRule(min_windows=1), [], []),
    ],
)
def test_case_events_are_the_events_case_metrics_counts(
    flags: str, rule: PostRule, starts: list[int], ends: list[int]
) -> None:
    """bench/single_anomaly.py counts false events per file from these ranges."""
    a, b = case_events(_scored(flags), len(flags), rule)
    assert a.tolist() == starts and b.tolist() == ends
    m = case_metrics(_scored(flags), _case(), rule, vus_window=2)
    assert m["false_events"] == sum(
        not any(LABEL[i] == "1" for i in range(s, e + 1)) for s, e in zip(starts, ends, strict=True)
    )


def test_case_events_of_flagging_everything_is_one_range() -> None:
    a, b = case_events(Scored(np.ones(10), 1.0, flag_all=True), 10, PostRule())
    assert a.tolist() == [0] and b.tolist() == [9]


def test_pipeline_rule_is_the_score_section() -> None:
    from anomae.pipeline import load_pipeline

    root = Path(__file__).resolve().parents[2] / "pipelines"
    rule = pipeline_rule(load_pipeline(root / "nab.toml"))
    assert (rule.min_windows, rule.cooldown) == (1, 100)  # the univariate recipe's [score]
    rule = pipeline_rule(load_pipeline(root / "skab.toml"))
    assert (rule.min_windows, rule.max_gap) == (3, 16)  # the multivariate recipe's


def test_flagging_everything_no_longer_scores_event_f1_one() -> None:
    everything = Scored(np.ones(10), 1.0, flag_all=True)
    m = case_metrics(everything, _case(), PostRule(), vus_window=2)
    # one event, and it overlaps: no false event, but precision is 5/10: F1 2/3, not 1
    assert m["false_events"] == 0
    assert m["event_f1"] == pytest.approx(2 / 3)


def test_summary_pools_false_events_over_days() -> None:
    rule = PostRule(min_windows=1)
    rows = [
        case_metrics(_scored("1100011011"), _case(), rule, vus_window=2),  # 2 in 10 h
        case_metrics(_scored("00000000000001"), _case("0" * 14), rule, vus_window=2),  # 1 in 14 h
    ]
    s = summarise(rows)
    assert s["false_events_per_day"] == pytest.approx(3.0)
    assert "false_events_per_10k_rows" not in s
    # 0.4 and 0: a case without anomalies scores 0 with an alarm (NaN, skipped, without)
    assert s["event_f1"] == pytest.approx(0.2)
    table = benchmark_table(
        {
            "benchmark": {"dataset": "d", "protocol": "p"},
            "cases": 2,
            "seconds": 1,
            "summary": {"x": s},
        }
    )
    assert "FE/day" in table and "    3.00" in table and "event F1" in table


def test_summary_per_10k_rows_without_time() -> None:
    """load_matrix numbers the rows (meta["timestamps"] says so): no days to divide by."""
    untimed = _case(step=10**9, meta={"timestamps": "row number as seconds"})
    assert span_days(untimed) is None
    rule = PostRule(min_windows=1)
    rows = [
        case_metrics(_scored("1100011011"), untimed, rule, vus_window=2),
        case_metrics(_scored("0010000010"), _case(), rule, vus_window=2),
    ]
    s = summarise(rows)
    assert s["false_events_per_10k_rows"] == pytest.approx(2 / 20 * 1e4)
    assert "false_events_per_day" not in s
    table = benchmark_table(
        {
            "benchmark": {"dataset": "d", "protocol": "p"},
            "cases": 2,
            "seconds": 1,
            "summary": {"x": s},
        }
    )
    header = table.splitlines()[1]
    assert "FE/10k" in header and "FE/day" not in header


def test_span_days_one_row_and_irregular_steps() -> None:
    one = _case("1")
    assert one.test_timestamps.size == 1 and span_days(one) == 0.0
    c = _case("0000")
    c.test_timestamps = np.array([0, 1, 2, 10], np.int64) * HOUR  # median step 1 h
    assert math.isclose(span_days(c) or 0.0, 11 / 24)


def test_fit_frame_keeps_file_order_where_timestamps_repeat_or_step_back() -> None:
    """NAB's daylight-saving artefacts: rows stay in file order, timestamps made strictly
    increasing by the least nudge (1 ns), untouched elsewhere."""
    from anomae.eval.benchmark import _frame

    ts = np.array([0, 60, 120, 120, 100, 180, 240], np.int64) * 10**9
    x = np.arange(7, dtype=np.float32)[:, None]
    case = Case("c", ("v",), x, x[:0], np.zeros(0, np.int8), ts[:0], ts)
    frame = _frame(case)
    got = frame["timestamp"].cast(pl.Int64).to_numpy()
    assert (np.diff(got) > 0).all()
    np.testing.assert_array_equal(got, [0, 60e9, 120e9, 120e9 + 1, 120e9 + 2, 180e9, 240e9])
    np.testing.assert_array_equal(frame["v"].to_numpy(), x[:, 0])
