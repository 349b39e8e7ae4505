"""Human-readable summaries (anomae/report.py), and the README's demo summary is what a
fresh clone's `anomae run pipelines/demo.toml` prints."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

from anomae.report import (
    alarm_text,
    architecture_text,
    false_events_text,
    parity_text,
    per_series_text,
    training_text,
)

REPO = Path(__file__).resolve().parents[1]


def test_false_events_text() -> None:
    th = {"expected_false_events_per_day": 0.1432, "expected_false_events_per_day_ci": [0, 0.5],
          "false_events_per_day": 1 / 7, "post_rule": {"min_windows": 3, "off": 1.0}}  # fmt: skip
    assert false_events_text(th) == (
        "expected false events 0.143 per series per day (95% CI 0-0.5) for a budget of 0.143, "
        "with post-rule {min_windows=3, off=1}"
    )
    assert false_events_text({"value": 1.0}) == ""  # not an events threshold


def test_per_series_text_names_fallbacks() -> None:
    th = {"value": 2.0, "per_series": {"a": 1.0, "b": 3.0, "c": 2.0},
          "per_series_fallback": {f"s{i}": "0.2 series-days" for i in range(7)}}  # fmt: skip
    text = per_series_text(th, names=2)
    assert text.startswith("per series: 3 thresholds, min 1 / median 2 / max 3; 7 series fell")
    assert "threshold 2: s0, s1 and 5 more; why, for s0: 0.2 series-days" in text
    assert per_series_text({"value": 1.0}) == ""


def test_parity_text_summarises_the_check_and_the_reference() -> None:
    reference = {"card_sha256": "ab", "rows": [[0.1]] * 19, "score": [0.1] * 4}
    parity = {"rtol": 1e-4, "atol": 1e-6, "max_rel_diff": 1.945e-06, "n_windows": 7317,
              "cases": ["given", "many windows, no NaN"], "reference": reference}  # fmt: skip
    assert parity_text(parity) == (
        "ONNX and torch agree within 1e-06 + 0.0001 x |torch|, worst relative difference "
        "1.9e-06, over 7,317 windows in 2 cases (given; many windows, no NaN), 4 reference "
        "windows re-scored on every load"
    )
    assert parity_text({}) == "not recorded"
    assert parity_text({"max_rel_diff": 0.0, "note": "old"}) == (
        "worst relative difference 0, note old"  # keys it does not know, as they are
    )


def test_architecture_text() -> None:
    dense = {"layout": "flat", "center": False, "aggregate": "max", "kind": "dense",
             "hidden": [8], "activation": "relu", "code_activation": "linear",
             "channels": [32, 64], "kernel": 5, "code": "features"}  # fmt: skip
    assert architecture_text(dense) == (
        "dense AE 8, linear code of 8 (one unit per feature varying in training), "
        "window score = max of the feature errors"
    )
    conv = {**dense, "kind": "conv", "hidden": [64, 16], "code": "fixed", "layout": "channels",
            "center": ["temp"], "aggregate": "mean", "extra": 1}  # fmt: skip
    assert architecture_text(conv) == (
        "conv AE, channels 32-64, kernel 5, dense 64-16, relu layers, linear code of 16, "
        "centred per window: temp, window score = mean of the feature errors, extra 1"
    )


def test_training_text() -> None:
    t = {"n_train_windows": 15498, "epochs_run": 12,
         "noise": {"kind": "salt_pepper", "sigma": 0.1, "p": 0.05},
         "sparsity": {"kind": "kl", "rho": 0.05, "beta": 0.001}}  # fmt: skip
    assert training_text(t) == (
        "15,498 windows, 12 epochs, salt_pepper noise p 0.05, kl sparsity rho 0.05 beta 0.001"
    )
    assert training_text({}) == "? windows, ? epochs, no noise"


def test_card_text_shows_parity_without_the_reference_rows(trained: Path) -> None:
    from anomae.modelfile import read_card
    from anomae.report import card_text

    text = card_text(read_card(trained), str(trained))
    line = next(x for x in text.splitlines() if x.lstrip().startswith("parity"))
    assert "reference windows re-scored on every load" in line and "rows" not in line


def test_alarm_text() -> None:
    assert alarm_text({}).startswith("not recorded")
    text = alarm_text({"post_rule": {"min_windows": 2}})
    assert text == "post-rule {min_windows=2}; fixed threshold"


def readme_summary() -> str:
    text = (REPO / "README.md").read_text()
    m = re.search(r"\n```\n(anomae run pipelines/demo\.toml\n.*?)```\n", text, flags=re.S)
    assert m, "README has no demo summary block"
    return m.group(1)


def without_timings(text: str) -> str:
    """Seconds vary from run to run and machine to machine; everything else must not."""
    return re.sub(r"\b\d+(\.\d+)?s\b", "<t>s", text)


def test_without_timings_keeps_everything_else() -> None:
    a = "  training   19,843 windows, 60 epochs (best 59), val loss 0.01341, 18.3s on cpu\n"
    assert without_timings(a) == without_timings(a.replace("18.3s", "41.0s"))
    assert without_timings(a) != without_timings(a.replace("60 epochs", "54 epochs"))


@pytest.mark.slow
def test_readme_demo_summary_is_what_the_demo_prints(tmp_path: Path) -> None:
    """`make demo`'s summary in README.md equals a fresh run's, timings aside (it needs
    torch; the demo data is generated under data/demo if missing, as `make demo` does)."""
    pytest.importorskip("torch")
    out = tmp_path / "demo"
    r = run_cli(["run", "pipelines/demo.toml", "--out", str(out)], cwd=REPO)
    assert r.returncode == 0, r.stderr
    start = r.stdout.index("anomae run pipelines/demo.toml\n")
    printed = r.stdout[start:].replace(str(out), "runs/demo")
    assert without_timings(printed) == without_timings(readme_summary())
    shutil.rmtree(out, ignore_errors=True)
