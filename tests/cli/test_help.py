"""``--help`` explains every option and argument, and ``-o`` means ``--out`` everywhere."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from anomae.cli import main


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_option_and_argument_is_explained(name: str) -> None:
    cmd = main.commands[name]
    assert cmd.help and cmd.short_help != "", name
    for p in cmd.params:
        if isinstance(p, click.Option):
            assert (p.help or "").strip(), f"{name} {p.opts[-1]} has no help text"
        elif isinstance(p, click.Argument):  # click arguments have no help: the text names them
            assert p.human_readable_name in cmd.help, f"{name}: {p.human_readable_name} unexplained"
    r = CliRunner().invoke(main, [name, "--help"])
    assert r.exit_code == 0 and "Traceback" not in r.output


def test_o_is_out_on_every_command_that_writes() -> None:
    with_out = []
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option) and ("-o" in p.opts or "--out" in p.opts):
                assert p.opts[:2] == ["-o", "--out"], (name, p.opts)
                with_out.append(name)
    assert sorted(with_out) == [
        "calibrate", "demo-data", "evaluate", "quantize", "replay", "retrain", "run", "score",
        "train", "tune",
    ]  # fmt: skip


def test_score_keeps_its_older_output_name() -> None:
    from anomae.cli.scoring import score

    for flag in ("-o", "--out", "--output"):
        ctx = score.make_context("score", ["m.onnx", "in.csv", flag, "s.parquet"])
        assert ctx.params["output"] == "s.parquet"


def test_main_help_states_the_exit_statuses_and_variables() -> None:
    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    for status in ("0 done", "1 bad data", "2 a bad command line", "130 interrupted"):
        assert status in text
    assert "ANOMAE_<COMMAND>_<OPTION>" in text
