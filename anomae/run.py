"""``anomae run``: one pipeline file carried out.

train (or tune, with ``[tune]``) → export (parity-checked) → calibrate → score → report.
Each step is a function the CLI's single commands (``train``, ``calibrate``, ``score``)
call too, so the pipeline and the commands cannot drift apart."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from anomae.calibrate_model import calibrate_trained
from anomae.errors import PipelineError
from anomae.io import SeriesData, TableSpec, read_series, read_table
from anomae.period import period_window
from anomae.pipeline import Pipeline, load_pipeline, shape_recipe
from anomae.spec import ModelCard
from anomae.train.step import require_torch, train_step


def report_path(out_dir: Path) -> Path:
    return out_dir / "report.json"


def run_pipeline(
    path: str | Path, out_dir: str | Path, threads: int | None = None
) -> dict[str, Any]:
    """Run the whole pipeline in ``path``; write model, scores, events and report to ``out_dir``.
    ``threads``, when given, replaces the file's ``[train] threads``."""
    from anomae.atomic import target_of, temp_name, write_atomically
    from anomae.detector import Detector
    from anomae.eval.compare import compare_baselines
    from anomae.eval.evaluate import evaluate_windows, span_days
    from anomae.modelfile import atomic_write_bytes, rewrite_card
    from anomae.score import ScoreOptions, encode_table, score_all

    t_start = time.perf_counter()

    def load(n_features: int | None = None) -> Any:
        pipe = load_pipeline(path, n_features)
        if threads is None:
            return pipe
        return dataclasses.replace(pipe, train={**pipe.train, "threads": threads})

    pipe = load()
    require_torch()  # before any data is read or output folder made
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = pipe.data
    if d.generate:
        _generate_if_missing(pipe)
    table = d.table()
    model_path = out / "model.onnx"
    if pipe.tune is None:
        series, features = read_series(list(d.train), table)
        note = ""
    else:  # label-free model choice: the training files' label column is never read
        from anomae.tune import label_free, label_note

        series, features = read_series(list(d.train), label_free(table))
        note = label_note(list(d.train), d.label) or ""
        if note and pipe.train.get("progress", True):
            print(note)
    chosen = shape_recipe(len(features)) if pipe.auto else None  # recipe = "auto"
    if pipe.auto:
        pipe = load(len(features))
    # trained and calibrated beside the old model, which is replaced once, when complete
    tmp_model = temp_name(target_of(model_path))
    try:
        pipe, card, train_summary, rule, cal = _train_and_calibrate(
            pipe, series, features, tmp_model
        )
        rewrite_card(tmp_model, card, model_path)
    finally:
        tmp_model.unlink(missing_ok=True)
    assert card.threshold is not None
    tuned = None if pipe.tune is None else {**card.training["tune"], "labels": note}
    report: dict[str, Any] = {
        "pipeline": str(path),
        "config": pipe.to_dict(),
        "model": {
            "path": str(model_path),
            "features": list(features),
            "window": dataclasses.asdict(card.window),
            "parity": card.parity,
            **({"recipe": chosen} if chosen else {}),
        },
        "training": train_summary,
        "threshold": dataclasses.asdict(card.threshold),
        "alarm": card.alarm,
    }
    if tuned is not None:
        report["tune"] = tuned
    scoring_model = model_path
    if pipe.export.quantize == "int8":
        from anomae.quantize import quantize_beside

        report["int8"] = quantize_beside(model_path, *cal)
        if report["int8"]["written"]:
            scoring_model = Path(report["int8"]["path"])
    if d.test:
        det = Detector.load(scoring_model)
        test_series, _ = read_series(list(d.test), table, features=features)
        opts = ScoreOptions(rule=rule, top_k=pipe.score.top_k, likelihood=pipe.likelihood)
        windows, events, summary = score_all(det, test_series, opts)
        write_atomically(
            [
                (out / "events.csv", encode_table(events, out / "events.csv")),
                (out / "scores.parquet", encode_table(windows, out / "scores.parquet")),
            ]
        )
        report["scoring"] = {**dataclasses.asdict(summary), "model": str(scoring_model)}
        if "label" in windows.columns:
            kinds = _anomaly_kinds(list(d.test), table, windows)
            # numbered rows (no time column) have no days: false events are counted, not rated
            days = None if table.rows else sum(span_days(s.timestamps) for s in test_series)
            labelled, kind = (windows, None) if kinds is None else (kinds, "anomaly")
            report["metrics"] = evaluate_windows(labelled, kind, days)
            # what the model adds: the baselines through the same calibration and post-rules
            cal_files = (
                read_series(list(d.calibration), table, features=features)[0]
                if d.calibration
                else None
            )
            report["baselines"] = compare_baselines(
                pipe, series, test_series, labelled, cal_files, kind, days
            )
    report["seconds_total"] = round(time.perf_counter() - t_start, 2)
    atomic_write_bytes(report_path(out), json.dumps(report, indent=2, default=str).encode())
    return report


def _train_and_calibrate(
    pipe: Pipeline, series: list[SeriesData], features: tuple[str, ...], model_path: Path
) -> tuple[Pipeline, ModelCard, dict[str, Any], Any, tuple[list[Any], list[str] | None]]:
    """Train (with ``[tune]``: the model chosen from normal data) to ``model_path`` and
    calibrate its threshold and alarm policy; returns the pipeline trained (the tuned one),
    the card (the caller writes it), the training summary, the post-rule, and the
    calibration row blocks with their series names (None: the held-out blocks')."""
    d = pipe.data
    table = d.table()
    if pipe.tune is None:
        pipe, period = period_window(pipe, [s.values for s in series])
        card, train_summary, cal_rows = train_step(
            pipe, series, features, model_path, calibrated=not d.calibration
        )
        if period is not None:
            train_summary["period"] = period
    else:
        from anomae.tune import tuned_train_step

        echo = print if pipe.train.get("progress", True) else (lambda _: None)
        pipe, card, train_summary, cal_rows = tuned_train_step(
            pipe, series, features, model_path, echo, calibrated=not d.calibration
        )
    cal_names = cal_labels = None
    if d.calibration:
        cal_series, _ = read_series(list(d.calibration), table, features=features)
        cal_rows = [s.values for s in cal_series]
        cal_names = [s.name for s in cal_series]
        cal_labels = [s.labels for s in cal_series] if pipe.calibrate.method == "f1" else None
    if not cal_rows:
        raise PipelineError(
            f"{pipe.source}: no calibration data: set [calibrate] holdout > 0 or [data] calibration"
        )
    card, rule = calibrate_trained(model_path, card, cal_rows, pipe, series, cal_labels, cal_names)
    if cal_names is None:
        from anomae.holdout import holdout_blocks

        cal_names = holdout_blocks(pipe, series)[2]
    return pipe, card, train_summary, rule, (cal_rows, cal_names)


def _anomaly_kinds(paths: list[str], table: TableSpec, windows: Any) -> Any:
    """Join the test files' ``anomaly`` kind column (if any) onto the windows by end time."""
    import polars as pl

    frames = []
    for p in paths:
        df = read_table(p, table)  # timestamps parsed as every reader parses them
        if "anomaly" not in df.columns or table.series not in df.columns:
            return None
        frames.append(
            df.select(
                pl.col(table.series).cast(pl.Utf8).alias("series"),
                pl.col(table.timestamp).alias("timestamp"),
                pl.col("anomaly").fill_null(""),
            )
        )
    kinds = pl.concat(frames)
    return windows.join(kinds, on=["series", "timestamp"], how="left", maintain_order="left")


def _generate_if_missing(pipe: Pipeline) -> None:
    d = pipe.data
    if d.generate != "demo":
        raise PipelineError(f'{pipe.source} [data]: generate must be "demo" or absent')
    paths = [Path(p) for p in (*d.train, *d.test)]
    if all(p.exists() for p in paths):
        return
    from anomae.synth import SynthConfig, write_demo

    write_demo(paths[0].parent, SynthConfig(seed=d.seed))
