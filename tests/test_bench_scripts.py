"""The benchmark scripts under ``bench/`` still run, at toy sizes: they import the package's
functions directly, so a rename or a changed output (a function moved to another module, a
time column that became UTC, a hook the monitor now asks of every source) breaks them
silently, and the next measurement starts with a repair. Each runs in a subprocess in its
own folder and must print its table; the figures are not checked (timing is measured on a
quiet machine, never asserted). The scripts that read ``../shared/datasets`` or train
many models are left out: their harnesses are the benchmark pipelines, tested elsewhere."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "bench"

# script, its arguments at a toy size, a line its table must print
SCRIPTS = [
    ("monitor_bench.py", ["--events", "20000", "--series", "10", "--rate", "20000",
                          "--likelihood"], "likelihood / plain replay"),
    ("score_size.py", ["--rows", "20000", "--series", "10", "--days", "2", "--kernel-rows",
                       "5000", "--folder", "{tmp}"], "rows/s vs kernel"),
    ("chunk_size.py", ["--shapes", "mv8", "--chunks", "256", "--rounds", "1", "--windows",
                       "2500", "--procs", "2", "--folder", "{tmp}"], "vs default"),
    ("score_cpu.py", ["--rows", "20000", "--series", "10", "--kernel-rows", "5000",
                      "--folder", "{tmp}"], "host (end - kernel)"),
    ("score_folder.py", ["--rows", "20000", "--series", "10", "--days", "2", "--partitions",
                         "2", "--folder", "{tmp}"], "folder date"),
    ("csv_memory.py", ["--rows", "20000", "--folder", "{tmp}"], "peak RSS MiB"),
    ("score_bench.py", ["--rows", "20000", "--batches", "64,2048", "--seconds", "0.1",
                        "--rounds", "1"], "parquet->parquet"),
    ("timestamp_parse.py", ["--n", "2000"], "RFC 3339"),
    ("shadow_bench.py", ["--events", "5000", "--series", "10", "--rounds", "1"],
     "CPU per reading with / without the shadow"),
    ("kafka_bench.py", ["--events", "2000", "--series", "10"], "readings/s"),
    ("gap_agreement.py", ["--epochs", "1"], "card's gap rule"),
    ("events_calibration.py", [], "series-days"),
    ("api_bench.py", ["--series", "2", "--test-days", "2", "--rounds", "1"], "score_rows"),
    ("per_series_fleet.py", [], "own: false/day"),
    ("periodic.py", ["--kinds", "ecg", "--periods", "40", "--seeds", "0"], "period window"),
    ("wide_plant.py", ["{tmp}/wide", "--machines", "2", "--plants", "1"], "plant0: train"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("script", "args", "expect"), SCRIPTS, ids=[s[0].removesuffix(".py") for s in SCRIPTS]
)
def test_bench_script_runs(tmp_path: Path, script: str, args: list[str], expect: str) -> None:
    if script == "kafka_bench.py" and importlib.util.find_spec("confluent_kafka") is None:
        pytest.skip("confluent-kafka is not installed (pip install '.[kafka]')")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = subprocess.run([sys.executable, str(BENCH / script), *argv], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, f"{script} failed:\n{r.stderr[-3000:]}"
    assert expect in r.stdout, f"{script} printed no {expect!r}:\n{r.stdout[-2000:]}"


def test_every_script_is_run_here_or_named_as_left_out() -> None:
    """A new script is either smoke-run above or named here with why not."""
    left_out = {
        "feature_errors.py",  # trains demo models per seed (tens of seconds)
        "gpu_check.py",  # needs onnxruntime-gpu and a GPU (it says so and exits 1)
        "int8_static.py",  # needs trained models (--make) and ../shared/datasets
        "multivariate_variants.py",  # ../shared/datasets: SMAP, SKAB
        "per_series_demo.py",  # trains on the demo data (about 20 s)
        "predict_variants.py",  # ../shared/datasets and many models
        "recipe_shape.py",  # ../shared/datasets/smap
        "single_anomaly.py",  # ../shared/datasets
        "soak.py",  # a real mosquitto for minutes
        "train_threads.py",  # times training with each thread count
        "tune_hindsight.py",  # tunes on the demo and SKAB
    }
    scripts = {p.name for p in BENCH.glob("*.py")}
    run = {s[0] for s in SCRIPTS}
    assert scripts == run | left_out, (scripts - run - left_out, (run | left_out) - scripts)
