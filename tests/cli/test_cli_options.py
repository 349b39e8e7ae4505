"""The option builders the commands share (anomae.cli.options), tested on a small click
command of their own: environment variable names, the threshold, device and integer-list
checks, the calibration section built from the options, and the post-rule taken from the
options or the model card's alarm policy (said on stderr)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from anomae.calibrate_settings import CalibrateSection
from anomae.cli.options import (
    TRAIN_DEVICE,
    _calibration,
    _card_alarm,
    _card_rule,
    _ints,
    _threshold_text,
    envvar_name,
    post_rule_options,
    set_envvars,
)
from anomae.events import PostRule
from anomae.spec import Threshold


@click.command()
@post_rule_options
@TRAIN_DEVICE
def probe(**kw: Any) -> None:
    click.echo(repr(sorted(kw.items())))


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(probe, list(args), env=env)


def test_every_option_gets_its_environment_variable() -> None:
    opt = next(p for p in probe.params if p.name == "min_windows")
    assert isinstance(opt, click.Option)
    assert envvar_name("probe", opt) == "ANOMAE_PROBE_MIN_WINDOWS"
    set_envvars(probe, "probe")
    try:
        res = invoke(env={"ANOMAE_PROBE_MIN_WINDOWS": "7", "ANOMAE_PROBE_DEVICE": "cuda:1"})
        assert res.exit_code == 0 and "('min_windows', 7)" in res.output
        assert "('device', 'cuda:1')" in res.output
        assert "env var: ANOMAE_PROBE_TOP_K" in " ".join(invoke("--help").output.split())
    finally:
        for p in probe.params:
            p.envvar, p.show_envvar = None, False  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan"])
def test_a_threshold_must_be_finite_and_positive(value: str) -> None:
    res = invoke("--threshold", value)
    assert res.exit_code == 2 and "must be a finite number above 0" in res.output
    assert invoke("--threshold", "2.5").exit_code == 0


@pytest.mark.parametrize(
    ("device", "ok"),
    [("cpu", True), ("cuda:0", True), ("auto", True), ("gpu", False), ("cuda:", False),
     ("CPU", False)],
)  # fmt: skip
def test_the_training_device(device: str, ok: bool) -> None:
    res = invoke("--device", device)
    assert (res.exit_code == 0) is ok, res.output
    if not ok:
        assert "use cpu, cuda, cuda:N" in res.output


def test_integer_lists_and_the_calibration_section() -> None:
    assert _ints("1, 2,,5") == [1, 2, 5] and _ints("") == []
    with pytest.raises(click.BadParameter, match="comma-separated integers, got '1,x'"):
        _ints("1,x")
    section = _calibration("events", search_min_windows="2,4", false_events_per_day=0.5)
    assert section == CalibrateSection(min_windows=(2, 4), false_events_per_day=0.5)
    with pytest.raises(click.BadParameter, match="k is not a parameter of method 'quantile'"):
        _calibration("quantile", k=3.0)


def test_the_post_rule_from_options_or_the_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alarm = {"post_rule": {"min_windows": 5, "cooldown": 2}}
    assert _card_rule(alarm, None, 1, None, None) == PostRule(5, 1, 1.0, 2)
    err = capsys.readouterr().err
    assert "min_windows=5 (" in err and "max_gap=1 (option)" in err
    with pytest.raises(click.BadParameter, match="min_windows must be >= 1"):
        _card_rule({}, 0, None, None, None)
    junk = tmp_path / "m.onnx"
    junk.write_bytes(b"junk")
    assert _card_alarm(junk) == {}  # loading the model reports what is wrong with it
    assert _card_rule(str(junk), None, None, None, None) == PostRule(3)


def test_the_threshold_line() -> None:
    th = Threshold(2.5, "quantile", {"q": 0.99}, 12_000, expected_far=0.01,
                   expected_far_ci=(0.008, 0.012))  # fmt: skip
    assert _threshold_text(th) == (
        "threshold 2.5 by quantile {q=0.99} on 12,000 windows; expected false-alarm rate "
        "0.01 per window (95% CI 0.008-0.012)"
    )
