"""Property-based fuzzing of every parser of user input (issue 10): pipelines (TOML),
model cards (JSON), CSV and Parquet inputs, reading lines.

Whatever the input, a parser returns its result or raises the project's own named error
(PipelineError, ModelCardError, InputError) whose message names the file; never a
traceback of another type. The CLI turns one bad example of each kind into exit status 1,
one ``error:`` line, and leaves an existing output byte-identical.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from conftest import run_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from anomae.io import InputError, TableSpec, read_series
from anomae.modelfile import card_from_text
from anomae.spec import ModelCard, ModelCardError, Scaler, Threshold, WindowSpec

FUZZ = settings(  # ANOMAE_FUZZ_EXAMPLES=2000 for a longer hunt
    max_examples=int(os.environ.get("ANOMAE_FUZZ_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# -- values ---------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-(10**30), 10**30),
    st.floats(),  # NaN and ±inf included
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=20),
    st.datetimes(),
    st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _one_line(message: str) -> None:
    assert message and "Traceback" not in message


# -- pipelines ------------------------------------------------------------------------------


def _section_keys() -> dict[str, list[str]]:
    """The keys each section knows, read from the classes the parser builds."""
    from anomae.eval.benchmark import BenchmarkSection
    from anomae.grid import TuneSection
    from anomae.likelihood import Likelihood
    from anomae.pipeline import SECTIONS
    from anomae.train.config import ArchConfig, NoiseConfig, SparsityConfig, TrainConfig

    own: dict[str, Any] = {
        "model": ArchConfig, "noise": NoiseConfig, "sparsity": SparsityConfig,
        "train": TrainConfig, "likelihood": Likelihood, "benchmark": BenchmarkSection,
        "tune": TuneSection,
    }  # fmt: skip
    return {
        name: [f.name for f in dataclasses.fields(cls or own[name])]
        for name, cls in SECTIONS.items()
    }


KNOWN_VALUES = st.sampled_from(
    ["events", "quantile", "pot", "dense", "conv", "gaussian", "masking", "kl", "l1", "none",
     "relu", "sigmoid", "tail", "spread", "heldout", "equal", "keep", "ignore", "demo", "x.csv"]
)  # fmt: skip


@st.composite
def pipeline_docs(draw: st.DrawFn) -> dict[str, Any]:
    keys = _section_keys()
    doc: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(sorted(keys)), max_size=5, unique=True)):
        table: dict[str, Any] = {}
        for key in draw(st.lists(st.sampled_from(keys[name]), max_size=5, unique=True)):
            table[key] = draw(toml_values | KNOWN_VALUES | st.integers(-3, 70))
        if draw(st.integers(0, 9)) == 0:
            table[draw(st.text(max_size=6))] = draw(toml_values)
        doc[name] = table if draw(st.integers(0, 19)) else draw(toml_values)
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.text(max_size=6))] = draw(toml_values)
    return doc


@FUZZ
@given(pipeline_docs())
def test_parse_pipeline_returns_a_pipeline_or_a_pipeline_error(doc: dict[str, Any]) -> None:
    from anomae.errors import PipelineError
    from anomae.pipeline import parse_pipeline

    try:
        parse_pipeline(doc, "fuzz.toml")
    except PipelineError as exc:
        _one_line(str(exc))


VALID_TOML = b"""recipe = "base.toml"
[data]
train = ["train.csv"]
features = ["a", "b"]
[window]
length = 8
[calibrate]
method = "quantile"
q = 0.99
[score]
min_windows = 2
"""


SPECIAL_BYTES = st.sampled_from(
    [b"\xff", b"\x00", b"[", b"]", b"=", b'"', b"\n", b"inf", b"nan", b"9" * 20]
)


@st.composite
def mutated_bytes(draw: st.DrawFn, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = draw(st.binary(min_size=1, max_size=8) | SPECIAL_BYTES)
        if op == "insert":
            data[at:at] = chunk
        elif op == "delete":
            del data[at : at + len(chunk)]
        else:
            data[at : at + len(chunk)] = chunk
    return bytes(data)


@FUZZ
@given(st.binary(max_size=200) | mutated_bytes(VALID_TOML))
def test_load_pipeline_on_any_bytes_raises_only_pipeline_errors(raw: bytes) -> None:
    pytest.importorskip("torch")
    from anomae.errors import PipelineError
    from anomae.pipeline import load_pipeline

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "base.toml").write_text("[window]\nlength = 16\n[score]\ncooldown = 1\n")
        path = Path(folder) / "fuzz.toml"
        path.write_bytes(raw)
        try:
            load_pipeline(path)
        except PipelineError as exc:
            _one_line(str(exc))


@FUZZ
@given(toml_values | st.text(max_size=300) | st.sampled_from(["", ".", "/", "a\x00b", "x" * 300]))
def test_any_recipe_value_is_a_pipeline_error_naming_the_file(recipe: Any) -> None:
    pytest.importorskip("torch")
    from anomae.errors import PipelineError
    from anomae.pipeline import parse_pipeline, with_recipe

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        try:
            parse_pipeline(with_recipe({"recipe": recipe, "data": {"train": "x.csv"}}, path))
        except PipelineError as exc:
            assert str(path) in str(exc) or "recipe" in str(exc)


# -- model cards ----------------------------------------------------------------------------

VALID_CARD = ModelCard(
    features=("a", "b"),
    window=WindowSpec(8, 1),
    scaler=Scaler((0.0, 1.0), (1.0, 2.0), (1.0, 0.5)),
    threshold=Threshold(
        2.0,
        "events",
        params={"q": 0.99},
        n_calibration=100,
        expected_far=0.01,
        expected_far_ci=(0.0, 0.02),
        per_feature={"a": 1.0},
        false_events_per_day=0.5,
        post_rule={"min_windows": 3},
        expected_false_events_per_day=0.4,
        expected_false_events_per_day_ci=(0.1, 0.9),
        per_series={"m1": 3.0},
        per_series_fallback={"m2": "too few windows"},
    ),  # fmt: skip
    architecture={"kind": "dense"},
    versions={"anomae": "0"},
).to_dict()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


CARD_PATHS = _paths(VALID_CARD)
nasty = st.one_of(
    json_values,
    st.sampled_from([math.nan, math.inf, -math.inf, 10**400, -(10**30), 1e308, 0, -1, "", [], {}]),
)


@st.composite
def mutated_cards(draw: st.DrawFn) -> str:
    card = json.loads(json.dumps(VALID_CARD))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(CARD_PATHS))
        parent: Any = card
        try:
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(nasty)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the parent
    text = json.dumps(card)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


deep = st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n)
huge_int = st.integers(4000, 20_000).map(lambda n: '{"format_version": 1, "x": ' + "9" * n + "}")


@FUZZ
@given(mutated_cards() | deep | huge_int | st.text(max_size=50))
def test_card_text_gives_a_card_or_a_model_card_error_naming_the_file(text: str) -> None:
    try:
        card = card_from_text(text, "fuzz.onnx")
    except ModelCardError as exc:
        _one_line(str(exc))
        assert str(exc).startswith("fuzz.onnx: ")
        return
    # what loads can be written back (anomae calibrate rewrites cards)
    assert ModelCard.from_json(card.to_json()) == card


# -- CSV and Parquet ------------------------------------------------------------------------

HEADERS = st.sampled_from(["timestamp", "series", "label", "a", "b", "", "anomaly", "a b", "é"])
CELLS = st.one_of(
    st.sampled_from(
        [
            "2026-01-01",
            "2026-01-01T00:00:00Z",
            "2026-01-01 00:00:01+02:00",
            "1700000000",
            "1.7e9",
            "-1",
            "2026-13-45",
            "",
            "nan",
            "inf",
            "-inf",
            "NA",
            "x",
            "0",
            "1",
            "1e400",
            "99999999999999999999999",
            '"1,5"',
            "true",
            "m1",
            "m2",
            "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
        ]
    ),  # fmt: skip
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(repr),
    st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=6),
)


@st.composite
def csv_texts(draw: st.DrawFn) -> bytes:
    header = draw(st.lists(HEADERS | st.text(max_size=4), min_size=1, max_size=5))
    if draw(st.booleans()):
        header[0] = "timestamp"
    rows = draw(
        st.lists(
            st.lists(CELLS, min_size=max(0, len(header) - 1), max_size=len(header) + 1), max_size=8
        )  # fmt: skip
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(",".join(r) for r in [header, *rows])
    bom = "\ufeff" if draw(st.integers(0, 4)) == 0 else ""
    return (bom + text).encode("utf-8", "surrogatepass")


def _read_or_input_error(path: Path, features: tuple[str, ...] | None) -> None:
    try:
        read_series(path, TableSpec(), features)
    except InputError as exc:
        _one_line(str(exc))
        assert str(path) in str(exc), f"the message does not name the file: {exc}"


@FUZZ
@given(csv_texts(), st.sampled_from([None, ("a",), ("a", "b")]))
def test_read_series_on_any_csv_raises_only_input_errors_naming_the_file(
    raw: bytes, features: tuple[str, ...] | None
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.csv"
        path.write_bytes(raw)
        _read_or_input_error(path, features)


COLUMN_TYPES: dict[str, Any] = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(),
    "str": st.text(max_size=5),
    "bool": st.booleans(),
    "datetime": st.datetimes(),
    "date": st.dates(),
    "list": st.lists(st.integers(0, 9), max_size=2),
    "null": st.none(),
    "binary": st.binary(max_size=4),
}


@st.composite
def parquet_frames(draw: st.DrawFn) -> pl.DataFrame:
    n = draw(st.integers(0, 6))
    names = draw(st.lists(HEADERS | st.text(max_size=3), min_size=1, max_size=5, unique=True))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(COLUMN_TYPES)))
        cells = draw(st.lists(COLUMN_TYPES[kind] | st.none(), min_size=n, max_size=n))
        columns[name] = pl.Series(name, cells, dtype=pl.Null if kind == "null" else None)
    frame = pl.DataFrame(columns)
    if "series" in frame.columns and frame["series"].dtype == pl.String and draw(st.booleans()):
        frame = frame.with_columns(pl.col("series").cast(pl.Categorical))
    return frame


@FUZZ
@given(parquet_frames(), st.sampled_from([None, ("a",)]))
@example(pl.DataFrame({"timestamp": [dt.date(2263, 1, 1)], "a": [1.0]}), None)  # found by fuzzing
@example(pl.DataFrame({"timestamp": [dt.datetime(1600, 1, 1)], "a": [1.0]}), ("a",))
def test_read_series_on_any_parquet_raises_only_input_errors_naming_the_file(
    frame: pl.DataFrame, features: tuple[str, ...] | None
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.parquet"
        frame.write_parquet(path)
        _read_or_input_error(path, features)


@FUZZ
@given(mutated_bytes(b"PAR1" + bytes(range(60)) + b"PAR1") | st.binary(max_size=100))
def test_read_series_on_damaged_parquet_bytes_is_an_input_error(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.parquet"
        path.write_bytes(raw)
        _read_or_input_error(path, None)


# -- readings: the parser is fuzzed in tests/monitor/test_monitor_readings.py; line splitter here --


NO_BLANKS = bytes.maketrans(b" \t\r\x0b\x0c", b"_____")  # a blank line is skipped by design


@FUZZ
@given(st.lists(st.binary(max_size=120), max_size=12), st.integers(8, 64))
def test_line_splitter_on_any_bytes_passes_or_cuts_every_line(
    chunks: list[bytes], max_bytes: int
) -> None:
    """Every line comes out once, in order: whole, or (over max_bytes) cut to a prefix still
    over max_bytes, which the parser counts too_large; nothing is dropped silently."""
    from anomae.monitor.sources.files import LineSplitter

    chunks = [c.translate(NO_BLANKS) for c in chunks]
    splitter = LineSplitter(max_bytes)
    out: list[bytes] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    out += splitter.end()
    lines = [ln for ln in b"".join(chunks).split(b"\n") if ln]
    assert len(out) == len(lines)
    for got, line in zip(out, lines, strict=True):
        if len(line) <= max_bytes:
            assert got == line
        else:
            assert len(got) > max_bytes and line.startswith(got)


# -- the CLI: one bad example of each kind --------------------------------------------------


def _onnx_with_card(path: Path, card_text: str) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"anomae.card": card_text})
    onnx.save(model, str(path))


def _csv(path: Path) -> Path:
    ts = np.arange(40) * 60
    pl.DataFrame({"timestamp": ts, "a": np.sin(ts), "b": np.cos(ts)}).write_csv(path)
    return path


def _bad_csv(tmp: Path) -> Path:
    path = tmp / "bad.csv"
    path.write_bytes(b"\xef\xbb\xbftimestamp,a,a\n2026-01-01,1,2\n2026-13-45,x\n")
    return path


def _bad_parquet(tmp: Path) -> Path:
    path = tmp / "bad.parquet"
    pl.DataFrame({"timestamp": [b"\x00", b"\x01"], "a": [[1], [2]]}).write_parquet(path)
    return path


def _bad_card_model(tmp: Path) -> Path:
    card = json.loads(json.dumps(VALID_CARD))
    card["window"]["length"] = math.inf
    path = tmp / "bad.onnx"
    _onnx_with_card(path, json.dumps(card))
    return path


def _bad_pipeline(tmp: Path) -> Path:
    path = tmp / "bad.toml"
    path.write_text('recipe = "' + "x" * 300 + '"\n[data]\ntrain = "x.csv"\n')
    return path


def _cases(tmp: Path) -> dict[str, tuple[list[str], Path]]:
    out = tmp / "out"
    out.mkdir()
    model = out / "model.onnx"
    return {
        "csv": (["train", str(_bad_csv(tmp)), "-o", str(model)], model),
        "parquet": (["train", str(_bad_parquet(tmp)), "-o", str(model)], model),
        "card": (
            [
                "score",
                str(_bad_card_model(tmp)),
                str(_csv(tmp / "ok.csv")),
                "-o",
                str(out / "scores.csv"),
                "--force",
            ],
            out / "scores.csv",
        ),  # fmt: skip
        "pipeline": (["run", str(_bad_pipeline(tmp)), "--out", str(out)], out / "report.json"),
    }


@pytest.mark.parametrize("kind", ["csv", "parquet", "card", "pipeline"])
def test_cli_bad_input_is_one_line_exit_1_and_keeps_existing_output(
    kind: str, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    args, output = _cases(tmp_path)[kind]
    before = b"an earlier run's output\x00\xff"
    output.write_bytes(before)
    r = run_cli(args)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and r.stderr.strip().splitlines()[-1] == errors[0], r.stderr
    assert output.read_bytes() == before
    assert sorted(p.name for p in output.parent.iterdir()) == [output.name]
