"""Held-out rows (anomae/holdout.py): spread blocks over each series' span, or its tail."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.holdout import holdout_blocks, split_holdout
from anomae.io import SeriesData
from anomae.pipeline import parse_pipeline


def _ramp(n: int) -> SeriesData:
    values = np.arange(n, dtype=np.float32)[:, None]
    return SeriesData("m", "x", np.arange(n, dtype=np.int64), values, None, np.arange(n))


@pytest.mark.parametrize(
    ("n", "holdout", "held_starts"),
    [
        (100, 0.2, [40, 90]),  # two blocks of ten, spread over the span
        (100, 0.4, [20, 40, 70, 90]),
        (100, 0.1, [90]),
        (1000, 0.3, [300, 600, 900]),
    ],
)
def test_spread_holdout_samples_the_whole_span(
    n: int, holdout: float, held_starts: list[int]
) -> None:
    fit, cal = split_holdout([_ramp(n)], holdout)
    assert [int(b[0, 0]) for b in cal] == held_starts
    rows = sorted(int(v) for b in fit + cal for v in b[:, 0])
    assert rows == list(range(n))  # every row once, blocks never joined
    assert sum(len(b) for b in cal) == pytest.approx(n * holdout, abs=n / 10)
    assert all(np.all(np.diff(b[:, 0]) == 1) for b in fit + cal)


def test_tail_holdout_and_short_series_fall_back_to_the_tail() -> None:
    fit, cal = split_holdout([_ramp(100)], 0.2, spread=False)
    assert [int(b[0, 0]) for b in cal] == [80] and len(fit) == 1
    # 10 blocks of a 32-row window need 320 rows: 100 rows keep the tail split
    fit, cal = split_holdout([_ramp(100)], 0.2, spread=True, min_rows=32)
    assert [int(b[0, 0]) for b in cal] == [80]
    fit, cal = split_holdout([_ramp(100)], 0.0)
    assert cal == [] and len(fit) == 1


def test_a_pipeline_holds_out_as_its_calibrate_and_window_sections_say() -> None:
    doc = {"data": {"train": "x.csv"}, "window": {"length": 32}, "calibrate": {"holdout": 0.2}}
    fit, cal, names = holdout_blocks(parse_pipeline(doc), [_ramp(400), _ramp(100)])
    # 400 rows hold ten 32-row blocks: spread; 100 rows do not: the tail
    assert [int(b[0, 0]) for b in cal] == [160, 360, 80] and names == ["m", "m", "m"]
    doc["calibrate"]["holdout_from"] = "tail"
    fit, cal, names = holdout_blocks(parse_pipeline(doc), [_ramp(400)], min_rows=8)
    assert [int(b[0, 0]) for b in cal] == [320] and len(fit) == 1
