"""Fleet threshold vs per-series thresholds on the demo (4 machines, events calibration).

Runs ``pipelines/demo.toml`` with ``[calibrate] per_series = true`` (a temporary copy, data
written under a temporary folder), then scores the test period twice with the same model:
once with the card as calibrated (each machine its own threshold) and once with its
per-series thresholds removed (the fleet threshold for all). Prints events, false events
and detected anomalies, in total and per machine. Needs torch (it trains).

    python bench/per_series_demo.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from anomae.detector import Detector
from anomae.eval.evaluate import event_metrics
from anomae.events import PostRule
from anomae.io import read_series
from anomae.modelfile import read_card, rewrite_card
from anomae.pipeline import load_pipeline
from anomae.run import run_pipeline
from anomae.score import ScoreOptions, score_all

ROOT = Path(__file__).resolve().parent.parent


def pipeline_copy(folder: Path) -> Path:
    text = (ROOT / "pipelines" / "demo.toml").read_text()
    text = text.replace('"../data/demo/', f'"{folder}/data/')
    text = re.sub(r"\[calibrate\]\n", "[calibrate]\nper_series = true\n", text, count=1)
    path = folder / "demo_per_series.toml"
    path.write_text(text)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, default=None, help="Work here and keep the files.")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="per-series-"))
    folder.mkdir(parents=True, exist_ok=True)
    toml = pipeline_copy(folder)
    t0 = time.perf_counter()
    run_pipeline(toml, folder / "run")
    print(f"trained and calibrated in {time.perf_counter() - t0:.0f}s ({folder})\n")
    model = folder / "run" / "model.onnx"
    card = read_card(model)
    th = card.threshold
    assert th is not None
    fleet_model = folder / "fleet.onnx"
    rewrite_card(
        model,
        card.with_threshold(replace(th, per_series={}, per_series_fallback={})),
        fleet_model,
    )
    pipe = load_pipeline(toml)
    rule = PostRule(**card.alarm["post_rule"])
    rows = []
    per_machine: dict[str, dict[str, tuple[int, int]]] = {}
    for label, path in (("fleet threshold", fleet_model), ("per-series thresholds", model)):
        det = Detector.load(path)
        series, _ = read_series(list(pipe.data.test), pipe.data.table(), features=card.features)
        windows, _, _ = score_all(det, series, ScoreOptions(rule=rule))
        m = event_metrics(windows)
        rows.append((label, m["events"], m["false_events"], m["segments_detected"], m["segments"]))
        for name, w in windows.group_by("series", maintain_order=True):
            mm = event_metrics(w)
            per_machine.setdefault(str(name[0]), {})[label] = (mm["events"], mm["false_events"])
    print(f"fleet threshold {th.value:.4g}, post-rule {card.alarm.get('post_rule')}")
    print(
        f"{'machine':<10}{'own threshold':>15}{'fleet: events/false':>22}"
        f"{'own: events/false':>20}"
    )
    for name, by in per_machine.items():
        own = th.per_series.get(name)
        own_text = f"{own:.4g}" if own is not None else "fallback"
        f_ev, f_fa = by["fleet threshold"]
        o_ev, o_fa = by["per-series thresholds"]
        print(f"{name:<10}{own_text:>15}{f'{f_ev}/{f_fa}':>22}{f'{o_ev}/{o_fa}':>20}")
    print(f"\n{'thresholds':<24}{'events':>8}{'false':>8}{'detected':>10}")
    for label, ev, fa, det_n, total in rows:
        print(f"{label:<24}{ev:>8}{fa:>8}{f'{det_n}/{total}':>10}")
    if th.per_series_fallback:
        print(f"\nfell back to the fleet threshold: {th.per_series_fallback}")


if __name__ == "__main__":
    main()
