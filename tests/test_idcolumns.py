"""Identifier-like numeric columns refused as automatic features (anomae/idcolumns.py)."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.idcolumns import identifier_columns, looks_like_id, refuse_identifier_columns
from anomae.io import InputError, SeriesData


def _series(name: str, rows: list[list[float]]) -> SeriesData:
    v = np.array(rows, np.float32)
    n = v.shape[0]
    return SeriesData(name, "a.csv", np.arange(n), v, None, np.arange(n))


@pytest.mark.parametrize(
    ("name", "is_id"),
    [("id", True), ("machine_id", True), ("id-2", True), ("machineId", True), ("hostID", True),
     ("host.id", True), ("fluid", False), ("idle", False), ("temp", False), ("valid", False)],
)  # fmt: skip
def test_looks_like_id(name: str, is_id: bool) -> None:
    assert looks_like_id(name) is is_id


def test_flags_constant_integers_and_named_ids_only() -> None:
    a = _series("m1", [[7, 1.5, 3, 10], [7, 2.5, 4, 10], [7, 0.5, 5, 11]])
    b = _series("m2", [[8, 1.0, 6, 12], [8, np.nan, 7, 12], [8, 2.0, 8, 12]])
    found = identifier_columns([a, b], ["machine", "temp", "count", "unit_id"])
    assert found == [
        ("machine", "integer and constant within every series"),
        ("unit_id", "integer and named like an identifier"),
    ]


def test_all_missing_column_is_not_flagged() -> None:
    s = _series("m1", [[np.nan], [np.nan]])
    assert identifier_columns([s], ["id"]) == []


def test_refusal_names_columns_and_the_fix() -> None:
    s = _series("m1", [[7, 1.5], [7, 2.5]])
    with pytest.raises(InputError) as err:
        refuse_identifier_columns([s], ["machine", "temp"], "train.csv")
    msg = str(err.value)
    assert msg.startswith("train.csv: column(s) 'machine'")
    assert "--features temp" in msg
    refuse_identifier_columns([_series("m1", [[1.5], [2.5]])], ["temp"], "train.csv")  # no id


def test_a_label_column_taken_for_a_feature_is_named_as_one() -> None:
    # TSB-AD's files call their labels "Label": all 0 in training, so a constant integer
    s = _series("m1", [[0, 1.5], [0, 2.5]])
    with pytest.raises(InputError, match=r"--features temp.*name it: --label-column Label$"):
        refuse_identifier_columns([s], ["Label", "temp"], "train.csv")
    with pytest.raises(InputError) as err:
        refuse_identifier_columns([s], ["machine", "temp"], "train.csv")
    assert "--label-column" not in str(err.value)
