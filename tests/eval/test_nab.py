from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import anomae
from anomae.eval.nab import (
    NAB_PROFILES,
    nab_normalised,
    nab_probationary_length,
    nab_score,
    nab_window_rows,
)

NAB_DIR = Path(anomae.__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab"


def S(x: float) -> float:
    """NAB's scaled sigmoid, 2 sigmoid(-5x) - 1, which is tanh(-5x/2)."""
    return -1.0 if x > 3 else math.tanh(-2.5 * x)


def _det(n: int, rows: list[int]) -> np.ndarray:
    d = np.zeros(n, bool)
    d[rows] = True
    return d


W = [(40, 49)]  # one window, 10 rows wide, in a 100-row file scored from row 0


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([40], 1.0),  # the window's first row earns the whole tpWeight
        ([45], S(-0.5) / S(-1)),
        ([49], S(-0.1) / S(-1)),  # the last row: -(49 - 49 + 1) / 10
        ([45, 46, 49], S(-0.5) / S(-1)),  # only the first detection counts
        ([10], -0.11 - 1.0),  # before any window: the full fpWeight, plus the miss
        ([50], 0.11 * S(1 / 9) - 1.0),  # just after: (50 - 49) / (10 - 1)
        ([76], 0.11 * S(3.0) - 1.0),  # 27/9 = 3 is still on the curve
        ([90], -0.11 - 1.0),  # far after: the full fpWeight
        ([], -1.0),
        ([40, 90], 1.0 - 0.11),
    ],
)
def test_nab_by_hand(rows: list[int], expected: float) -> None:
    r = nab_score(_det(100, rows), W, probationary=0)
    assert r["score"] == pytest.approx(expected, abs=1e-12)
    assert (r["null"], r["perfect"], r["windows"]) == (-1.0, 1.0, 1)


@pytest.mark.parametrize("profile", sorted(NAB_PROFILES))
def test_nab_profiles_weigh_the_parts(profile: str) -> None:
    w = NAB_PROFILES[profile]
    r = nab_score(_det(100, [45, 99]), [(40, 49), (60, 69)], probationary=0, profile=profile)
    expected = w["tpWeight"] * S(-0.5) / S(-1) - w["fpWeight"] - w["fnWeight"]
    assert r["score"] == pytest.approx(expected, abs=1e-12)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert r["null"] == -2 * w["fnWeight"] and r["perfect"] == 2 * w["tpWeight"]


def test_nab_early_beats_late() -> None:
    scores = [nab_score(_det(100, [row]), W, probationary=0)["score"] for row in range(40, 50)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 10


def test_nab_probationary_rows_are_ignored() -> None:
    windows = [(5, 14), (40, 49)]
    base = nab_score(_det(100, [41]), windows, probationary=20)
    noisy = nab_score(_det(100, [0, 3, 7, 19, 41]), windows, probationary=20)
    assert noisy["score"] == base["score"] == pytest.approx(S(-0.9) / S(-1))
    # a window wholly inside the probation is neither missed nor in the null score
    assert base["null"] == -1.0 and base["fn"] == 0 and base["perfect"] == 2.0
    # a window straddling it is scored from the first scored row, by its full width
    r = nab_score(_det(100, [18, 20]), [(15, 24)], probationary=20)
    assert r["score"] == pytest.approx(S(-0.5) / S(-1))
    assert nab_probationary_length(4032) == 604 and nab_probationary_length(22695) == 750


def test_nab_input_checks() -> None:
    with pytest.raises(ValueError, match="unknown NAB profile"):
        nab_score(_det(10, []), [], profile="lenient")
    for bad in ([(5, 3)], [(0, 4), (4, 6)], [(6, 8), (0, 2)], [(8, 10)], [(-1, 2)]):
        with pytest.raises(ValueError, match="sorted, disjoint"):
            nab_score(_det(10, []), bad, probationary=0)
    with pytest.raises(ValueError, match="non-empty"):
        nab_score(np.array([], bool), [])
    r = nab_score(_det(10, [3]), [], probationary=0)  # no windows: only the FP
    assert (r["score"], r["null"], r["perfect"]) == (-0.11, 0.0, 0.0)
    assert math.isnan(nab_normalised([r]))


def _nab_by_rows(det: np.ndarray, windows: list[tuple[int, int]], prob: int) -> float:
    """The standard profile walked row by row, as NAB's Sweeper walks a file."""
    best: dict[int, float] = {}
    seen: set[int] = set()
    score, prev = 0.0, None
    for i in range(det.size):
        cur = next((k for k, (a, b) in enumerate(windows) if a <= i <= b), None)
        if i >= prob and cur is not None:
            seen.add(cur)
        if det[i] and i >= prob:
            if cur is not None:
                a, b = windows[cur]
                best[cur] = max(best.get(cur, -9.0), S(-(b - i + 1) / (b - a + 1)) / S(-1))
            elif prev is None:
                score -= 0.11
            else:
                a, b = windows[prev]
                score += 0.11 * S((i - b) / (b - a))
        if cur is not None and i == windows[cur][1]:
            prev = cur
    return score + sum(best.values()) - len(seen - best.keys())


@pytest.mark.parametrize("seed", range(8))
def test_nab_matches_a_row_by_row_walk(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    edges = np.sort(rng.choice(np.arange(0, n, 2), 8, replace=False))
    windows = [(int(a), int(b) + 1) for a, b in edges.reshape(-1, 2)]  # widths >= 2
    det = rng.random(n) < rng.choice([0.005, 0.02, 0.1])
    prob = int(rng.integers(0, 200))
    r = nab_score(det, windows, probationary=prob)
    assert r["score"] == pytest.approx(_nab_by_rows(det, windows, prob), abs=1e-9)


def test_nab_window_rows_maps_timestamps_to_rows() -> None:
    ts = np.arange("2024-01-01T00:00", "2024-01-01T01:00", 5, dtype="datetime64[m]")
    limits = [["2024-01-01 00:10:00.000000", "2024-01-01 00:20:00.000000"]]
    assert nab_window_rows(ts, limits) == [(2, 4)]
    assert nab_window_rows(ts, []) == []


def test_nab_normalised_perfect_is_100_and_none_is_0() -> None:
    files = [(300, [(100, 119), (200, 229)]), (500, [(400, 449)]), (200, [])]
    for profile in NAB_PROFILES:
        perfect = [nab_score(_det(n, [a for a, _ in w]), w, None, profile) for n, w in files]
        none = [nab_score(_det(n, []), w, None, profile) for n, w in files]
        assert nab_normalised(perfect) == pytest.approx(100.0, abs=1e-9)
        assert nab_normalised(none) == pytest.approx(0.0, abs=1e-9)
        half = [nab_score(_det(n, [b for _, b in w]), w, None, profile) for n, w in files]
        assert 0 < nab_normalised(half) < 100


def test_nab_on_the_real_windows() -> None:
    if not NAB_DIR.is_dir():
        pytest.skip("nab not found in shared/datasets/nab beside the repository")
    limits = json.loads((NAB_DIR / "labels" / "combined_windows.json").read_text())
    files = sorted(p for p in NAB_DIR.glob("real*/*.csv"))
    assert len(files) == 24
    for profile in NAB_PROFILES:
        perfect, none, early_fp = [], [], []
        for path in files:
            ts = pl.read_csv(path)["timestamp"].str.to_datetime().to_numpy()
            windows = nab_window_rows(ts, limits[f"{path.parent.name}/{path.name}"])
            assert all(ts.size > b >= a >= nab_probationary_length(ts.size) for a, b in windows)
            starts = [a for a, _ in windows]
            perfect.append(nab_score(_det(ts.size, starts), windows, profile=profile))
            none.append(nab_score(_det(ts.size, []), windows, profile=profile))
            early_fp.append(
                nab_score(_det(ts.size, [*starts, ts.size - 1]), windows, profile=profile)
            )
        assert nab_normalised(perfect) == pytest.approx(100.0, abs=1e-9)
        assert nab_normalised(none) == pytest.approx(0.0, abs=1e-9)
        assert nab_normalised(early_fp) < 100.0
    assert sum(r["windows"] for r in none) == 49  # of NAB's 116 windows over 58 files
