"""Every option of every command is the environment variable ``ANOMAE_<COMMAND>_<OPTION>``,
named after its long option (not its Python parameter), and ``--help`` shows it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from anomae.cli import main


def _options() -> list[tuple[str, click.Option]]:
    return [
        (name, p)
        for name, cmd in sorted(main.commands.items())
        for p in cmd.params
        if isinstance(p, click.Option) and p.expose_value
    ]


def _rule(command: str, option: click.Option) -> str:
    long = [o for o in option.opts if o.startswith("--")][0]
    return "ANOMAE_" + (command + "_" + long[2:]).upper().replace("-", "_")


def test_every_option_has_its_variable_and_help_shows_it() -> None:
    helps = {
        name: " ".join(CliRunner().invoke(main, [name, "--help"]).output.split())
        for name in main.commands
    }
    assert len(_options()) > 100
    for name, opt in _options():
        assert opt.envvar == _rule(name, opt), (name, opt.opts)
        assert f"env var: {opt.envvar}" in helps[name], (name, opt.opts)


def test_examples_of_the_rule() -> None:
    envvars = {(name, p.opts[-1]): p.envvar for name, p in _options()}
    assert envvars[("inspect", "--json")] == "ANOMAE_INSPECT_JSON"
    assert envvars[("run", "--out")] == "ANOMAE_RUN_OUT"
    assert envvars[("demo-data", "--series")] == "ANOMAE_DEMO_DATA_SERIES"
    assert envvars[("monitor", "--source-opt")] == "ANOMAE_MONITOR_SOURCE_OPT"
    assert envvars[("score", "--output")] == "ANOMAE_SCORE_OUT"  # -o, --out, --output


def test_renamed_options_follow_their_variables(tmp_path: Path) -> None:
    """--out (out_dir), --series (n_series), --features (n_features) of demo-data: click's
    automatic names (ANOMAE_DEMO_DATA_OUT_DIR, ..._N_SERIES) used to win, the rule's did not."""
    out = tmp_path / "demo"
    env = {
        "ANOMAE_DEMO_DATA_OUT": str(out),
        "ANOMAE_DEMO_DATA_SERIES": "1",
        "ANOMAE_DEMO_DATA_FEATURES": "6",
        "ANOMAE_DEMO_DATA_N_SERIES": "3",  # the parameter's name: not a variable any more
    }
    r = CliRunner().invoke(main, ["demo-data"], env=env)
    assert r.exit_code == 0, r.output
    import polars as pl

    test = pl.read_parquet(out / "test.parquet")
    assert test["series"].unique().to_list() == ["m1"]
    assert "vibration" in test.columns and "current" not in test.columns  # sensors 6 and 7


def test_inspect_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """--json is the parameter as_json: its variable is ANOMAE_INSPECT_JSON all the same."""
    from anomae.cli.model import inspect

    assert inspect.make_context("inspect", ["m.onnx"]).params["as_json"] is False
    monkeypatch.setenv("ANOMAE_INSPECT_AS_JSON", "1")  # the parameter's name: not a variable
    assert inspect.make_context("inspect", ["m.onnx"]).params["as_json"] is False
    monkeypatch.setenv("ANOMAE_INSPECT_JSON", "1")
    assert inspect.make_context("inspect", ["m.onnx"]).params["as_json"] is True


def test_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    env = {"ANOMAE_DEMO_DATA_OUT": str(tmp_path / "env"), "ANOMAE_DEMO_DATA_FEATURES": "6"}
    args = ["demo-data", "--out", str(out), "--series", "1"]
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 0, r.output
    assert (out / "train.parquet").is_file() and not (tmp_path / "env").exists()
