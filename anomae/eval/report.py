"""The benchmark report: ``anomae evaluate``'s terminal table and ``report.md``."""

from __future__ import annotations

from typing import Any

BENCH_COLUMNS = [
    ("f1", "F1"),
    ("event_f1", "event F1"),
    ("far", "FAR"),
    ("mar", "MAR"),
    ("vus_pr", "VUS-PR"),
    ("vus_roc", "VUS-ROC"),
    ("auc_pr", "AUC-PR"),
    ("auc_roc", "AUC-ROC"),
    ("pa_f1", "PA-F1*"),
]
FALSE_EVENTS = {  # summary key -> title; which one a report has depends on its data's time
    "false_events_per_day": "FE/day",
    "false_events_per_10k_rows": "FE/10k",
}
BENCH_NOTES = [
    "F1/FAR/MAR pooled over cases (no point-adjust); VUS/AUC and event F1 averaged per case;",
    "event F1: point-wise precision, event-wise recall (TSB-AD), which flagging all cannot win;",
    "FE/day (FE/10k: per 10,000 rows, data without time): events overlapping no labelled row;",
    "* point-adjusted F1 is inflated by construction: for comparison with papers only",
]
NAB_COLUMNS = [
    ("nab_standard", "NAB std"),
    ("nab_reward_low_FP_rate", "NAB lowFP"),
    ("nab_reward_low_FN_rate", "NAB lowFN"),
]


def _columns(report: dict[str, Any]) -> list[tuple[str, str]]:
    first = next(iter(report["summary"].values()))
    fe = [(k, t) for k, t in FALSE_EVENTS.items() if k in first]
    return (
        BENCH_COLUMNS[:2]
        + fe
        + BENCH_COLUMNS[2:]
        + (NAB_COLUMNS if "nab_standard" in first else [])
    )


def _cell(key: str, v: float) -> str:
    if v != v:
        return "–"
    if key.startswith("nab_"):
        return f"{v:.1f}"
    if key in ("far", "mar"):
        return f"{100 * v:.1f}%"
    if key in FALSE_EVENTS:
        return f"{v:.2f}"
    return f"{v:.3f}"


def benchmark_table(report: dict[str, Any]) -> str:
    """The summary as a fixed-width terminal table."""
    cols = _columns(report)
    b = report["benchmark"]
    w = max([14, *(len(name) + 1 for name in report["summary"])])
    lines = [
        f"{b['dataset']} ({b['protocol']}), {report['cases']} cases, {report['seconds']:.0f}s",
        f"{'detector':<{w}}" + "".join(f"{title:>10}" for _, title in cols),
    ]
    for name, s in report["summary"].items():
        lines.append(f"{name:<{w}}" + "".join(f"{_cell(k, s[k]):>10}" for k, _ in cols))
    return "\n".join(lines + BENCH_NOTES)


def benchmark_markdown(
    report: dict[str, Any], command: str = "", plots: list[tuple[str, str]] | None = None
) -> str:
    """``report.md``: the summary table and a per-case table for anomae; with ``plots``
    (case name, PNG path relative to report.md), a list of links to them."""
    cols = _columns(report)
    b = report["benchmark"]
    out = [f"# {b['dataset']} benchmark ({b['protocol']})", ""]
    if command:
        out += ["Reproduce with:", "", f"    {command}", ""]
    out += [
        "| detector | " + " | ".join(t for _, t in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name, s in report["summary"].items():
        out.append(f"| {name} | " + " | ".join(_cell(k, s[k]) for k, _ in cols) + " |")
    out += [
        "",
        "F1, FAR and MAR are pooled over all cases, point-wise, without point-adjust (SKAB's "
        "definitions); VUS, AUC and event F1 are per-case means. Event F1 is TSB-AD's "
        "event-based F1: point-wise precision with event-wise recall (a labelled anomaly is "
        "found when any of its rows is flagged), so flagging every row cannot win it. FE/day "
        "counts events (after the post-rules) that overlap no labelled anomaly, per day of "
        "test data pooled over cases (FE/10k: per 10,000 test rows, for data without time). "
        "PA-F1 (point-adjusted) is shown only for comparison with older papers: it is "
        "inflated by construction.",
        "",
        "## anomae per case",
        "",
        "| case | rows | anomalous | F1 | event F1 | false events | FAR | VUS-PR | AUC-ROC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["per_case"]["anomae"]:
        out.append(
            f"| {r['case']} | {r['rows']} | {r['anomalous']} | {_cell('f1', r['f1'])} | "
            f"{_cell('event_f1', r['event_f1'])} | {r['false_events']} | "
            f"{_cell('far', r['far'])} | {_cell('vus_pr', r['vus_pr'])} | "
            f"{_cell('auc_roc', r['auc_roc'])} |"
        )
    if plots:
        out += [
            "",
            "## Plots",
            "",
            "Each detector's score / threshold (log scale), labelled ranges shaded, events "
            "marked along the bottom:",
            "",
        ]
        out += [f"- [{case}]({path})" for case, path in plots]
    return "\n".join(out) + "\n"
