"""The table columns the data-reading commands resolve (anomae.cli.tables): each option
given wins, else the model card's columns (said on stderr when they differ from the
defaults), else timestamp / series / label; an unreadable card falls back to the defaults;
'' turns the label off; --features splits into a TableSpec, and with a model may only
repeat the model's features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomae.cli.tables import _card_columns, _columns, _data_columns, _table
from anomae.graph import Layer, build_graph
from anomae.modelfile import write_model
from anomae.spec import DEFAULT_COLUMNS, ModelCard, Scaler, WindowSpec

CARD_COLUMNS = {"timestamp": "time", "series": "machine", "label": None, "timestamp_unit": "ms"}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    window = WindowSpec(2)
    card = ModelCard(("a",), window, Scaler((0.0,), (1.0,)), columns=dict(CARD_COLUMNS))
    path = tmp_path_factory.mktemp("cols") / "m.onnx"
    write_model(build_graph([Layer("MatMul", [np.zeros((2, 2), np.float32)])], "flat",
                            card.features, window, card.scaler), card, path)  # fmt: skip
    return path


def test_the_card_fills_what_the_options_leave_unset(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _card_columns(model) == CARD_COLUMNS
    cols = _columns(model, None, "unit", None)
    assert cols == {"timestamp": "time", "series": "unit", "label": None, "timestamp_unit": "ms"}
    err = capsys.readouterr().err
    assert err == "columns from the model card: timestamp 'time', label None, timestamp_unit 'ms'\n"
    _columns(model, "t", "s", "l", "s")  # every option given: nothing from the card
    assert capsys.readouterr().err == ""


def test_without_a_model_or_with_an_unreadable_one_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    assert _card_columns(junk) == DEFAULT_COLUMNS
    assert _columns(None, None, None, "") == {
        "timestamp": "timestamp", "series": "series", "label": None, "timestamp_unit": None,
    }  # fmt: skip
    assert _data_columns(None, None, None, None) == {
        "timestamp": "timestamp", "series": "series", "label": "label", "timestamp_unit": "",
    }  # fmt: skip
    assert capsys.readouterr().err == ""  # the defaults are not announced


def test_the_table_spec_of_the_options(model: Path) -> None:
    spec = _table(None, None, "y", "", model=model)
    assert (spec.timestamp, spec.series, spec.label) == ("time", "machine", "y")
    assert spec.timestamp_unit == "ms"
    assert _table(None, None, None, " temp, ,rpm ").features == ("temp", "rpm")
    assert _table(None, None, None, "").features is None  # every numeric column


def test_features_given_with_a_model_must_be_the_models(model: Path, tmp_path: Path) -> None:
    """Scoring reads the model's features by name: repeating them is allowed, another list
    is refused instead of being silently ignored."""
    import click

    assert _table(None, None, None, " a ", model=model).features == ("a",)
    with pytest.raises(click.BadParameter, match="temp, rpm: the model was trained on a "):
        _table(None, None, None, "temp,rpm", model=model)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")  # left to the model's loading, which names the problem
    assert _table(None, None, None, "temp", model=junk).features == ("temp",)


def test_defaults_name_the_model_card_only_where_there_is_one() -> None:
    import click
    from click.testing import CliRunner

    from anomae.cli.tables import data_table_options, table_options

    @click.command()
    @table_options
    def with_model(**_: object) -> None: ...

    @click.command()
    @data_table_options
    def without(**_: object) -> None: ...

    scored = " ".join(CliRunner().invoke(with_model, ["--help"]).output.split())
    trained = " ".join(CliRunner().invoke(without, ["--help"]).output.split())
    assert scored.count("the model card's, else") == 4 and "a list other than" in scored
    assert "model card" not in trained and "[default: timestamp]" in trained
