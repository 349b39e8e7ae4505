"""Tests for :mod:`anomae.inject`: anomalies injected into copies of normal rows."""

from __future__ import annotations

import numpy as np
import pytest

from anomae.inject import MARGIN, injected_copies, rows_needed
from anomae.synth import ANOMALY_KINDS


@pytest.mark.parametrize("unit", ["global", "local"])
def test_injected_copies_label_exactly_the_changed_rows(unit: str) -> None:
    rng = np.random.default_rng(3)
    train = rng.standard_normal((2000, 4)).cumsum(axis=0)
    block = rng.standard_normal((500, 4)).cumsum(axis=0).astype(np.float32)
    block[10, 2] = np.nan  # a missing reading outside any anomaly stays missing
    short = block[: rows_needed(32) - 1]
    copies = injected_copies([block, short], train, lead=32, seed=5, unit=unit)
    assert [c.kind for c in copies] == list(ANOMALY_KINDS)  # the short block is skipped
    for c in copies:
        rows = np.flatnonzero(c.label)
        assert rows.size and rows[0] >= max(32, MARGIN) and rows[-1] < 500 - MARGIN
        assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))  # one segment
        changed = np.flatnonzero((~np.isclose(c.rows, block, equal_nan=True)).any(axis=1))
        assert set(changed) <= set(rows), c.kind  # nothing changes outside the label
        assert changed.size > 0 and rows[-1] in changed, c.kind  # the label ends with it
        assert np.isnan(c.rows[10, 2])
    again = injected_copies([block, short], train, lead=32, seed=5, unit=unit)
    assert all(
        np.array_equal(a.rows, b.rows, equal_nan=True) for a, b in zip(copies, again, strict=True)
    )
