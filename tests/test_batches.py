"""Reading a planned file in bounded batches: each series' rows together in
first-appearance order with their file row numbers, and a bad cell named by its row in the
file whichever batch meets it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from anomae.batches import read_batches
from anomae.dataset import plan_dataset
from anomae.errors import InputError
from anomae.io import TableSpec
from tests.test_stream_score import FEATURES

T0 = 1_700_000_000


@pytest.mark.parametrize("batch_rows", [1, 3, 7, 100])
def test_interleaved_series_come_out_whole_in_order_with_their_file_rows(
    tmp_path: Path, batch_rows: int
) -> None:
    n = 12
    ids = ["p2", "p1", "p2", "p3"] * (n // 4)
    df = pl.DataFrame({"timestamp": T0 + np.arange(n) * 60, "series": ids,
                       "a": np.arange(n, dtype=float), "b": 1.0, "c": 2.0})  # fmt: skip
    df.write_parquet(tmp_path / "m.parquet")
    ds = plan_dataset([tmp_path / "m.parquet"], TableSpec(), FEATURES)
    seen: dict[str, list[int]] = {}
    read = 0
    for chunks, rows in read_batches(ds.files[0], TableSpec(), FEATURES, False, batch_rows):
        read += rows
        first = [ids[r] for r in sorted(int(c.row_offset[0]) for c in chunks)]
        assert [c.name for c in chunks] == list(dict.fromkeys(first))  # first appearance
        for c in chunks:
            assert (np.diff(c.row_offset) > 0).all() and all(ids[r] == c.name for r in c.row_offset)
            np.testing.assert_array_equal(c.values[:, 0], c.row_offset)  # column a is the row
            np.testing.assert_array_equal(c.timestamps, (T0 + c.row_offset * 60) * 10**9)
            seen.setdefault(c.name, []).extend(c.row_offset.tolist())
    assert read == n
    assert {k: sorted(v) for k, v in seen.items()} == {
        s: [i for i in range(n) if ids[i] == s] for s in ("p1", "p2", "p3")
    }


def test_bad_value_in_a_later_batch_names_its_file_row(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    rows = [f"{T0 + i * 60},{i},1,2" for i in range(50)]
    rows[37] = f"{T0 + 37 * 60},oops,1,2"
    p.write_text("timestamp,a,b,c\n" + "\n".join(rows) + "\n")
    ds = plan_dataset([p], TableSpec(), FEATURES)
    with pytest.raises(InputError, match=r"column 'a', row 38 \(line 39\)"):
        for _ in read_batches(ds.files[0], TableSpec(), FEATURES, False, 10):
            pass
