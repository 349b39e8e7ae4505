"""Batch vs stream on irregular data: windows and events of ``anomae score`` and of an
``anomae monitor`` replay, without the card's gap rule (as before it existed: batch windows
straight across gaps, the monitor restarts at 10x each series' recent interval) and with it.

Demo data (4 machines x 8 sensors, one row a minute), a model trained with the default
recipe (fewer epochs), and six gaps of 17-33 minutes cut into each test series.

    python bench/gap_agreement.py [--epochs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from anomae.modelfile import read_card, rewrite_card
from anomae.synth import SynthConfig, write_demo

GAPS_MIN = (17, 21, 25, 33, 19, 29)


def cli(*args: str, stdin: Path | None = None) -> subprocess.CompletedProcess[str]:
    with open(stdin, "rb") if stdin else open("/dev/null", "rb") as f:
        r = subprocess.run(
            [sys.executable, "-m", "anomae.cli", *args], stdin=f, capture_output=True, text=True
        )
    if r.returncode != 0:
        raise SystemExit(f"anomae {' '.join(args)} failed:\n{r.stderr}")
    return r


def with_gaps(test: Path, out: Path) -> Path:
    """Six gaps cut into each series, in normal stretches (an hour clear of any label), so
    whatever the gaps change is not a labelled anomaly."""
    df = pl.read_parquet(test)
    parts = []
    for i, (_, part) in enumerate(df.group_by("series", maintain_order=True)):
        keep = np.ones(part.height, bool)
        labelled = part["label"].to_numpy() > 0
        for k, minutes in enumerate(GAPS_MIN):
            start = (k + 1) * part.height // (len(GAPS_MIN) + 1) + 11 * i
            while labelled[max(start - 60, 0) : start + minutes + 60].any():
                start += 30
            keep[start : start + minutes - 1] = False
        parts.append(part.filter(pl.Series(keep)))
    path = out / "irregular.parquet"
    pl.concat(parts).write_parquet(path)
    return path


def replay_lines(path: Path, out: Path) -> Path:
    df = pl.read_parquet(path).sort("timestamp", "series")
    feats = [c for c in df.columns if c not in ("timestamp", "series", "label", "anomaly")]
    df = df.with_columns((pl.col("timestamp").dt.epoch("us") / 1e6).alias("ts"))
    lines = out / "irregular.jsonl"
    with open(lines, "w") as f:
        for r in df.iter_rows(named=True):
            vals = {k: (None if r[k] is None or r[k] != r[k] else r[k]) for k in feats}
            f.write(json.dumps({"series": r["series"], "ts": r["ts"], "values": vals}) + "\n")
    return lines


def compare(model: Path, data: Path, lines: Path, out: Path) -> dict[str, int]:
    scores, events, sink = out / "scores.parquet", out / "events.csv", out / "sink.jsonl"
    cli("score", str(model), str(data), "-o", str(scores), "--events", str(events), "--force")
    sink.unlink(missing_ok=True)
    cli("monitor", str(model), "--source", "-", "--sink", str(sink), "--listen", "127.0.0.1:0",
        stdin=lines)  # fmt: skip
    batch, ev = pl.read_parquet(scores), pl.read_csv(events)
    recs = [json.loads(x) for x in sink.read_text().splitlines()]
    win = pl.DataFrame([x for x in recs if x["type"] == "window"]).with_columns(
        pl.col("ts").str.to_datetime(time_zone="UTC")  # the scores file's times are UTC
        .cast(pl.Datetime("ns", "UTC")).alias("timestamp")
    )  # fmt: skip
    both = batch.join(win, on=["series", "timestamp"], how="inner", suffix="_s")
    same = both.filter((pl.col("score") - pl.col("score_s")).abs() <= 1e-5 * pl.col("score").abs())
    streamed = {(x["series"], x["start"][:19]) for x in recs if x["type"] == "event"}
    batch_ev = {(s, str(t).replace(" ", "T")[:19]) for s, t in ev.select("series", "start").rows()}
    # an event whose windows hold no labelled row is a false alarm
    ids = (pl.col("in_event") & ~pl.col("in_event").shift(1, fill_value=False)).cum_sum()
    hit = (
        batch.with_columns(ids.alias("e"))
        .filter("in_event")
        .group_by("series", "e")
        .agg(pl.col("label").max())
    )
    return {
        "batch windows": batch.height,
        "monitor windows": win.height,
        "same windows": same.height,
        "batch events": len(batch_ev),
        "batch false": int((hit["label"] == 0).sum()),
        "monitor events": len(streamed),
        "same events": len(batch_ev & streamed),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="Work here and keep the files.")
    a = ap.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="anomae-gaps-"))
    work.mkdir(parents=True, exist_ok=True)
    demo = write_demo(work / "demo", SynthConfig(train_days=3.0, test_days=3.0))
    after = work / "model.onnx"
    if not after.exists():
        cli("train", str(demo["train"]), "-o", str(after), "--epochs", str(a.epochs),
            "--no-progress")  # fmt: skip
    card = read_card(after)
    before = work / "model-no-gap-rule.onnx"
    rewrite_card(after, dataclasses.replace(card, max_gap_s=0.0), before)
    data = with_gaps(demo["test"], work)
    lines = replay_lines(data, work)
    n = pl.read_parquet(data).height
    span = f"{min(GAPS_MIN)}-{max(GAPS_MIN)}"
    print(f"{n:,} test rows, 4 series at 60 s, six gaps of {span} min in each;")
    print(f"card: median interval {card.interval_s:g} s, gap limit {card.max_gap_s:g} s\n")
    rows = {
        "no gap rule in the card": compare(before, data, lines, work),
        "card's gap rule": compare(after, data, lines, work),
    }
    keys = list(next(iter(rows.values())))
    print(f"{'':<26}" + "".join(f"{k:>16}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<26}" + "".join(f"{r[k]:>16,}" for k in keys))


if __name__ == "__main__":
    main()
