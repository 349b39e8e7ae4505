"""The monitor's vectorised anomaly likelihood equals the batch form, window for window."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomae.likelihood import Likelihood, likelihood_scores
from anomae.monitor.likelihood import LikelihoodBank, occurrence


def replay(bank: LikelihoodBank, raw: list[np.ndarray], seed: int, max_batch: int) -> list:
    """Interleave the series at random (each in order), feed random-sized micro-batches;
    returns each series' normalised scores in its own order."""
    rng = np.random.default_rng(seed)
    slots = np.concatenate([np.full(r.size, i) for i, r in enumerate(raw)])
    rng.shuffle(slots)  # the order of slots, not of one series' scores
    pos = np.zeros(len(raw), int)
    scores = np.empty(slots.size)
    for j, s in enumerate(slots.tolist()):
        scores[j] = raw[s][pos[s]]
        pos[s] += 1
    got = np.empty(slots.size)
    i = 0
    while i < slots.size:
        n = int(rng.integers(1, max_batch + 1))
        got[i : i + n] = bank.step(slots[i : i + n], scores[i : i + n])
        i += n
    return [got[slots == s] for s in range(len(raw))]


@settings(max_examples=60, deadline=None)
@given(
    short=st.integers(1, 6),
    long=st.integers(1, 60),
    warmup=st.integers(2, 40),
    refit=st.integers(1, 15),
    min_spread=st.sampled_from([0.0, 0.05, 0.1]),
    n_series=st.integers(1, 5),
    max_batch=st.sampled_from([1, 3, 17, 200]),
    seed=st.integers(0, 2**16),
)
def test_bank_equals_batch_likelihood_in_any_micro_batches(
    short: int,
    long: int,
    warmup: int,
    refit: int,
    min_spread: float,
    n_series: int,
    max_batch: int,
    seed: int,
) -> None:
    spec = Likelihood(short=short, long=long, warmup=warmup, refit=refit, min_spread=min_spread)
    rng = np.random.default_rng(seed)
    raw = []
    for _ in range(n_series):
        x = rng.gamma(3.0, 0.2, int(rng.integers(0, 250)))
        x[rng.random(x.size) < 0.05] = np.nan  # missing scores: skipped by both
        x[rng.random(x.size) < 0.02] += 20.0  # outliers, so some windows alarm
        raw.append(x)
    got = replay(LikelihoodBank(spec), raw, seed, max_batch)
    for g, x in zip(got, raw, strict=True):
        want = likelihood_scores(x, spec)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want))
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)


def test_default_settings_on_long_series_equal_batch() -> None:
    # long > refit and not a multiple of it: blocks are cut at two residues
    spec = Likelihood(long=8640 // 16, warmup=100, refit=100)
    rng = np.random.default_rng(1)
    raw = [rng.gamma(4.0, 0.25, 3000) * (1 + 0.5 * np.sin(np.arange(3000) / 300)) for _ in "ab"]
    raw[1][2000:2010] += 30.0
    got = replay(LikelihoodBank(spec), raw, 2, 1024)
    for g, x in zip(got, raw, strict=True):
        want = likelihood_scores(x, spec)
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12)
    assert (got[1][2000:2010] > 1).any()  # the burst alarms


def test_forget_starts_a_slot_afresh() -> None:
    spec = Likelihood(short=2, long=30, warmup=5, refit=3)
    raw = np.random.default_rng(3).gamma(3.0, 0.2, 60)
    bank = LikelihoodBank(spec)
    bank.step(np.zeros(40, int), raw[:40] * 5.0)  # another series used slot 0
    bank.forget(0)
    got = bank.step(np.zeros(60, int), raw)
    np.testing.assert_allclose(got, likelihood_scores(raw, spec), rtol=1e-9)


def test_slots_beyond_the_initial_capacity_grow_the_state() -> None:
    spec = Likelihood(short=1, long=10, warmup=2, refit=1)
    bank = LikelihoodBank(spec)
    slots = np.repeat([5, 500, 5000], 20)
    raw = np.random.default_rng(4).gamma(3.0, 0.2, 60)
    got = bank.step(slots, raw)
    for k in range(3):
        part = raw[20 * k : 20 * (k + 1)]
        np.testing.assert_allclose(got[20 * k : 20 * (k + 1)], likelihood_scores(part, spec))


def test_occurrence_counts_earlier_windows_of_the_same_slot() -> None:
    assert occurrence(np.array([2, 2, 0, 2, 0, 7])).tolist() == [0, 1, 0, 2, 1, 0]
    assert occurrence(np.array([], np.int64)).tolist() == []


def test_season_is_refused_with_what_to_change() -> None:
    with pytest.raises(ValueError, match="season_s .--likelihood-season-s. to 0"):
        LikelihoodBank(Likelihood(season_s=86400))
