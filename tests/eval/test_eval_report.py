"""The benchmark report (anomae.eval.report) from a report dict: the terminal table's
columns and cell formats, NAB columns only with NAB scores, and report.md's summary,
per-case table, reproduce command and plot links."""

from __future__ import annotations

import math
from typing import Any

from anomae.eval.report import BENCH_NOTES, benchmark_markdown, benchmark_table

SUMMARY = {"f1": 0.5, "event_f1": 2 / 3, "false_events_per_day": 1.25, "far": 0.012,
           "mar": 0.3, "vus_pr": 0.41, "vus_roc": 0.8, "auc_pr": 0.4, "auc_roc": math.nan,
           "pa_f1": 0.9}  # fmt: skip
CASE = {"case": "valve1/3", "rows": 1000, "anomalous": 120, "f1": 0.5, "event_f1": 0.75,
        "false_events": 2, "far": 0.01, "vus_pr": 0.4, "auc_roc": 0.9}  # fmt: skip


def report(**summary: dict[str, float]) -> dict[str, Any]:
    return {
        "benchmark": {"dataset": "SKAB", "protocol": "semi-supervised"},
        "cases": 34,
        "seconds": 12.4,
        "summary": summary or {"anomae": SUMMARY, "iforest": SUMMARY},
        "per_case": {"anomae": [CASE]},
    }


def test_the_table_has_a_title_a_header_a_row_per_detector_and_the_notes() -> None:
    lines = benchmark_table(report()).splitlines()
    assert lines[0] == "SKAB (semi-supervised), 34 cases, 12s"
    assert lines[1].split() == ["detector", "F1", "event", "F1", "FE/day", "FAR", "MAR",
                                "VUS-PR", "VUS-ROC", "AUC-PR", "AUC-ROC", "PA-F1*"]  # fmt: skip
    assert lines[2].split() == ["anomae", "0.500", "0.667", "1.25", "1.2%", "30.0%", "0.410",
                                "0.800", "0.400", "–", "0.900"]  # fmt: skip
    assert lines[3].startswith("iforest ")
    assert lines[4:] == BENCH_NOTES


def test_per_10k_rows_and_nab_columns_follow_the_summary() -> None:
    s = {k: v for k, v in SUMMARY.items() if k != "false_events_per_day"}
    s |= {"false_events_per_10k_rows": 3.0, "nab_standard": 61.27,
          "nab_reward_low_FP_rate": 55.0, "nab_reward_low_FN_rate": 66.04}  # fmt: skip
    header, row = benchmark_table(report(a_very_long_detector_name=s)).splitlines()[1:3]
    assert "FE/10k" in header and "FE/day" not in header
    assert header.endswith("   NAB std NAB lowFP NAB lowFN")
    assert row.split()[-3:] == ["61.3", "55.0", "66.0"]
    assert row.startswith("a_very_long_detector_name ")
    assert len(row) == len(header)  # the first column widens to the name: columns align


def test_markdown_has_the_command_both_tables_and_the_plots() -> None:
    md = benchmark_markdown(report(), "anomae evaluate skab", [("valve1/3", "plots/v13.png")])
    assert md.startswith("# SKAB benchmark (semi-supervised)\n\nReproduce with:\n\n"
                         "    anomae evaluate skab\n")  # fmt: skip
    row = "| anomae | 0.500 | 0.667 | 1.25 | 1.2% | 30.0% | 0.410 | 0.800 | 0.400 | – | 0.900 |"
    assert row in md
    assert "| valve1/3 | 1000 | 120 | 0.500 | 0.750 | 2 | 1.0% | 0.400 | 0.900 |" in md
    assert md.endswith("- [valve1/3](plots/v13.png)\n")
    bare = benchmark_markdown(report())
    assert "Reproduce with" not in bare and "## Plots" not in bare
