"""Delimited text files (anomae/textfile.py): separator and header sniffed, read alike by
every reader (whole files, the dataset's batches, scoring)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.batches import read_batches
from anomae.dataset import expand_inputs, plan_dataset
from anomae.errors import InputError
from anomae.io import TableSpec, read_series
from anomae.textfile import FOLDER_SUFFIXES, Dialect, columns_of, kind, sniff

ROWS = TableSpec(timestamp="")


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("a.csv", "timestamp,x\n1,2\n", Dialect(",", True)),
        ("a.csv", "timestamp;x;y\n1;2;3\n2;3;4\n", Dialect(";", True)),  # a European CSV
        ("a.tsv", "t\tx\n1\t2\n", Dialect("\t", True)),
        ("ucr.txt", "0.5\n-1e-3\n 7\n", Dialect(",", False, 1)),
        ("smd.txt", "0.1,0.2,5\n0.3,0.4,5\n", Dialect(",", False, 3)),
        ("a.dat", "1.5 2 3\n4 5 6\n", Dialect(" ", False, 3)),
        ("a.txt", "x|y\n1|2\n3|4\n", Dialect("|", True)),
        ("tabs.txt", "1.5\t2\n3\t4\n", Dialect("\t", False, 2)),
        ("empty.txt", "", Dialect()),
        ("pandas.csv", "0,1,2\n5.5,6,7\n", Dialect(",", True)),  # unnamed columns, numbered
        ("ones.txt", "1 2 3\n5.5 6 7\n", Dialect(" ", True)),
        ("one.txt", "1\n2\n", Dialect(",", False, 1)),  # one number: a value
    ],
)
def test_sniff(tmp_path: Path, name: str, text: str, want: Dialect) -> None:
    p = tmp_path / name
    p.write_text(text)
    assert sniff(p) == want


def test_sniff_reads_gzip_and_names_columns_without_a_header(tmp_path: Path) -> None:
    p = tmp_path / "m.txt.gz"
    p.write_bytes(gzip.compress(b"1.5,2\n2.5,3\n"))
    d = sniff(p)
    assert d == Dialect(",", False, 2) and d.names == ("column_1", "column_2")
    assert columns_of(p) == ["column_1", "column_2"]
    assert d.options() == {"separator": ",", "has_header": False,
                           "new_columns": ("column_1", "column_2")}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1  2\n3  4\n", "runs of spaces; .*sed -E"),
        (" 1 2\n 3 4\n", "runs of spaces"),
        (" ".join(["1"] * 200) + "\n", "one line of 200\\+ values"),
    ],
)
def test_unreadable_layouts_are_refused_saying_how(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "x.txt"
    p.write_text(text)
    with pytest.raises(InputError, match=message):
        sniff(p)


def test_kinds_and_folders(tmp_path: Path) -> None:
    assert kind(Path("a.TXT.gz")) == kind(Path("b.tsv")) == "csv"
    assert kind(Path("c.pq")) == "parquet"
    with pytest.raises(InputError, match=r"unsupported file type '\.xlsx'.*\.txt"):
        kind(Path("d.xlsx"))
    # a folder's README.txt is not data; .txt files are read when named
    (tmp_path / "README.txt").write_text("about this data\n")
    (tmp_path / "a.csv").write_text("timestamp,x\n1,2\n")
    (tmp_path / "b.tsv").write_text("timestamp\tx\n1\t2\n")
    assert [p.name for p in expand_inputs([tmp_path])] == ["a.csv", "b.tsv"]
    assert ".txt" not in FOLDER_SUFFIXES
    assert expand_inputs([tmp_path / "README.txt"]) == [tmp_path / "README.txt"]


def _values(n: int, f: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, f)).round(4).astype(np.float32)


def test_a_headerless_text_file_reads_as_its_csv_with_a_header(tmp_path: Path) -> None:
    """The same rows as a plain CSV with column_1.. headers, read whole and in batches."""
    x = _values(50, 3)
    names = ["column_1", "column_2", "column_3"]
    txt, csv = tmp_path / "smd.txt", tmp_path / "smd.csv"
    txt.write_text("".join(" ".join(str(v) for v in row) + "\n" for row in x))
    pl.DataFrame(x, schema=names).write_csv(csv)
    (a,), feats = read_series([txt], ROWS)
    (b,), _ = read_series([csv], ROWS)
    assert feats == tuple(names)
    assert np.array_equal(a.values, b.values) and np.array_equal(a.values, x)
    assert np.array_equal(a.timestamps, b.timestamps)
    ds = plan_dataset([txt], ROWS, names)
    got = [s.values for batch, _ in read_batches(ds.files[0], ROWS, names, False, 7)
           for s in batch]  # fmt: skip
    assert np.array_equal(np.concatenate(got), x)


def test_a_bad_value_is_named_by_row_and_line(tmp_path: Path) -> None:
    """A text file with a header: row n is line n + 1; without one, line n is row n (the
    message names the row alone)."""
    body = "1.0,2.0\n3.0,oops\n"
    bare, headed = tmp_path / "bare.txt", tmp_path / "headed.txt"
    bare.write_text(body)
    headed.write_text("a,b\n" + body)
    with pytest.raises(InputError, match=r"column 'column_2', row 2: value \"oops\" is not"):
        read_series([bare], ROWS)
    with pytest.raises(InputError, match=r"column 'b', row 2 \(line 3\): value \"oops\" is not"):
        read_series([headed], ROWS)


def test_a_semicolon_csv_reads_by_its_header(tmp_path: Path) -> None:
    p = tmp_path / "plant.csv"
    p.write_text("timestamp;flow;temp\n2026-01-01T00:00:00Z;1.5;20\n2026-01-01T00:01:00Z;2.5;21\n")
    (s,), feats = read_series([p], TableSpec())
    assert feats == ("flow", "temp") and s.values.tolist() == [[1.5, 20.0], [2.5, 21.0]]
