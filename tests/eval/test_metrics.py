from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from anomae.eval.metrics import (
    auc_pr,
    auc_roc,
    event_f1,
    false_events,
    point_adjust,
    point_adjusted_f1,
    point_metrics,
    pooled,
    vus,
    vus_pr,
    vus_roc,
)

NAN = float("nan")


def same(a: float, b: float, tol: float = 1e-12) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


# --- input checks ----------------------------------------------------------------------------

PAIRED: list[Callable[[Any, Any], Any]] = [
    auc_roc,
    auc_pr,
    vus_roc,
    vus_pr,
    point_metrics,
    point_adjusted_f1,
    event_f1,
]


@pytest.mark.parametrize("fn", PAIRED)
def test_empty_and_mismatched_inputs_raise(fn: Callable[[Any, Any], Any]) -> None:
    with pytest.raises(ValueError, match="empty"):
        fn(np.array([]), np.array([], int))
    with pytest.raises(ValueError, match="has 3 rows, label has 2 rows"):
        fn(np.array([0.1, 0.2, 0.3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="only 0 and 1"):
        fn(np.array([0, 1, 0]), np.array([0, 2, 1]))


@pytest.mark.parametrize("fn", PAIRED)
@pytest.mark.parametrize("label", [[0, 0, 0, 0], [1, 1, 1, 1]])
def test_single_class_labels_do_not_raise(fn: Callable[[Any, Any], Any], label: list[int]) -> None:
    fn(np.array([0, 1, 1, 0]), np.array(label))


# --- AUC and VUS by hand ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "label", "roc", "pr"),
    [
        ([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1], 1.0, 1.0),
        ([0.4, 0.3, 0.2, 0.1], [0, 0, 1, 1], 0.0, (1 / 3 + 2 / 4) / 2),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5, 0.5),  # one tie: one point on both curves
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75, (1 + 2 / 3) / 2),
        ([0.9, 0.8, 0.8, 0.1], [1, 0, 1, 0], 0.875, (1 + 2 / 3) / 2),  # tied pair enters together
        ([NAN, 0.2, 0.1, 0.3], [1, 0, 0, 1], 0.5, (1 + 2 / 4) / 2),  # NaN ranks lowest
        ([0.3, 0.1], [0, 0], NAN, NAN),
        ([0.3, 0.1], [1, 1], NAN, 1.0),
    ],
)
def test_auc_by_hand(score: list[float], label: list[int], roc: float, pr: float) -> None:
    s, y = np.array(score), np.array(label)
    assert same(auc_roc(s, y), roc) and same(auc_pr(s, y), pr)


def test_vus_of_a_constant_score_by_hand() -> None:
    # Every threshold flags every row, so TPR = 1 and AP is one step at precision
    # (P + B) / n, where B is the margin mass: rows 3 and 6 get sqrt(1 - 1/2) at w = 2 and
    # nothing at w = 0, 1. FPR = (n - P - B) / (n - P - B/2) and ROC = 1 - FPR / 2.
    label = np.array([0, 0, 0, 0, 1, 1, 0, 0, 0, 0])
    b = 2 * math.sqrt(0.5)
    roc = (0.5 + 0.5 + (1 - (8 - b) / (8 - b / 2) / 2)) / 3
    pr = (0.2 + 0.2 + (2 + b) / 10) / 3
    got = vus(np.full(10, 0.3), label, sliding_window=2)
    assert got == pytest.approx((roc, pr), abs=1e-12)


@pytest.mark.parametrize("window", [0, 1, 2, 10, 100])
def test_vus_of_a_perfect_score_is_one(window: int) -> None:
    label = np.zeros(300, int)
    label[[5, 6, 7, 120, 250, 251]] = 1
    assert vus(label * 2.0 + 1, label, window) == pytest.approx((1.0, 1.0), abs=1e-12)


@pytest.mark.parametrize("label", [np.zeros(20, int), np.ones(20, int)])
def test_vus_is_nan_for_a_single_class(label: np.ndarray) -> None:
    assert all(math.isnan(v) for v in vus(np.linspace(0, 1, 20), label, 4))


def test_vus_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="sliding_window"):
        vus(np.zeros(4), np.array([0, 1, 0, 0]), -1)


def test_vus_is_fast() -> None:
    import time

    rng = np.random.default_rng(1)
    label = (rng.random(100_000) < 0.05).astype(int)  # 4,700 segments: the costly kind
    t = time.perf_counter()
    vus(rng.random(label.size), label, 100)
    assert time.perf_counter() - t < 2.0


# --- the TSB-AD reference --------------------------------------------------------------------


def _labels(n: int, segments: list[tuple[int, int]]) -> np.ndarray:
    y = np.zeros(n, int)
    for a, b in segments:
        y[a : b + 1] = 1
    return y


def _reference_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(7)
    multi = _labels(1500, [(100, 101), (300, 420), (430, 431), (900, 900), (1200, 1260)])
    edges = _labels(400, [(0, 9), (200, 230), (390, 399)])  # segments at both ends
    dense = (rng.random(300) < 0.15).astype(int)  # many short, touching margins
    noisy = multi + rng.normal(0, 0.8, multi.size)
    return [
        ("random", rng.random(600), _labels(600, [(50, 52), (200, 290), (500, 501)]), 100),
        ("noisy", noisy, multi, 37),
        ("perfect", multi * 1.0, multi, 20),
        ("constant", np.full(1500, 0.5), multi, 20),
        ("ties", np.round(noisy, 0), multi, 9),
        ("edges", rng.random(400) + edges, edges, 16),
        ("dense", rng.random(300) + 0.5 * dense, dense, 11),
        ("short", np.array([0.1, 0.9, 0.3, 0.2, 0.4]), np.array([0, 1, 0, 0, 1]), 4),
        ("window0", rng.random(300) + _labels(300, [(50, 80)]), _labels(300, [(50, 80)]), 0),
        ("window1", rng.random(300), _labels(300, [(50, 80), (82, 83)]), 1),
    ]


@pytest.mark.parametrize(("case", "score", "label", "window"), _reference_cases())
def test_matches_tsb_ad(case: str, score: np.ndarray, label: np.ndarray, window: int) -> None:
    pytest.importorskip("TSB_AD")
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from TSB_AD.evaluation.basic_metrics import generate_curve  # the get_metrics VUS path

    ref = generate_curve(label, score, window, "opt", 250)
    assert vus_roc(score, label, window) == pytest.approx(ref[6], abs=1e-9)
    assert vus_pr(score, label, window) == pytest.approx(ref[7], abs=1e-9)
    assert auc_roc(score, label) == pytest.approx(
        sklearn_metrics.roc_auc_score(label, score), abs=1e-9
    )
    assert auc_pr(score, label) == pytest.approx(
        sklearn_metrics.average_precision_score(label, score), abs=1e-9
    )


def test_nan_scores_match_tsb_ad_given_the_lowest_score() -> None:
    pytest.importorskip("TSB_AD")
    from TSB_AD.evaluation.basic_metrics import generate_curve

    rng = np.random.default_rng(3)
    label = _labels(500, [(100, 140), (300, 302)])
    score = rng.random(500) + label
    score[rng.choice(500, 60, replace=False)] = np.nan
    ref = generate_curve(label, np.nan_to_num(score, nan=-1.0), 30, "opt", 250)
    assert vus(score, label, 30) == pytest.approx((ref[6], ref[7]), abs=1e-9)


def test_point_adjust_matches_tsb_ad() -> None:
    pytest.importorskip("TSB_AD")
    from TSB_AD.evaluation.basic_metrics import basic_metricor

    rng = np.random.default_rng(4)
    # TSB-AD's loop never adjusts row 0, so no segment starts there
    label = _labels(400, [(10, 40), (100, 101), (200, 290), (395, 399)])
    for p in (0.01, 0.05, 0.3):
        pred = rng.random(400) < p
        ref = basic_metricor().metric_PointF1PA(label, np.zeros(400), preds=pred)
        assert point_adjusted_f1(pred, label) == pytest.approx(ref, abs=1e-12)


# --- thresholded metrics by hand -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "label", "expected"),
    [
        # tp=2 fp=1 fn=1 tn=2
        ([1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 1, 0], (2 / 3, 2 / 3, 2 / 3, 1 / 3, 1 / 3)),
        ([0, 0, 0, 0], [0, 1, 1, 0], (NAN, 0.0, 0.0, 0.0, 1.0)),  # nothing predicted
        ([1, 0, 0, 0], [0, 0, 0, 0], (0.0, NAN, 0.0, 0.25, NAN)),  # no anomalies
        ([0, 0, 0, 0], [0, 0, 0, 0], (NAN, NAN, NAN, 0.0, NAN)),
        ([1, 1, 0, 0], [1, 1, 1, 1], (1.0, 0.5, 2 / 3, NAN, 0.5)),  # all anomalous
    ],
)
def test_point_metrics_by_hand(
    pred: list[int], label: list[int], expected: tuple[float, ...]
) -> None:
    m = point_metrics(np.array(pred, bool), np.array(label))
    got = (m["precision"], m["recall"], m["f1"], m["far"], m["mar"])
    assert all(same(g, e) for g, e in zip(got, expected, strict=True)), got
    assert m["tp"] + m["fp"] + m["fn"] + m["tn"] == len(pred)


def test_pooled_sums_counts_then_recomputes() -> None:
    a = point_metrics(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))  # tp1 fp1 tn2
    b = point_metrics(np.array([0, 0, 0, 1]), np.array([1, 1, 0, 1]))  # tp1 fn2 tn1
    m = pooled([a, b])
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 2, 3)
    assert m["f1"] == pytest.approx(2 / (2 + 3 / 2))  # SKAB: TP / (TP + (FP + FN) / 2)
    assert m["far"] == pytest.approx(1 / 4) and m["mar"] == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="at least one"):
        pooled([])


@pytest.mark.parametrize(
    ("pred", "label", "adjusted", "f1"),
    [
        ("0010000100", "0111000110", "0111000110", 1.0),
        ("1000000000", "1110000000", "1110000000", 1.0),  # a segment at row 0 counts too
        ("0000100000", "0111000110", "0000100000", 0.0),  # a miss stays a miss
        ("0000000000", "0000000000", "0000000000", NAN),
        ("1100000001", "0000011000", "1100000001", 0.0),
    ],
)
def test_point_adjust_by_hand(pred: str, label: str, adjusted: str, f1: float) -> None:
    p, y = (np.array([int(c) for c in s]) for s in (pred, label))
    assert "".join(str(int(v)) for v in point_adjust(p, y)) == adjusted
    assert same(point_adjusted_f1(p, y), f1)


@pytest.mark.parametrize(
    ("pred", "label", "precision", "recall", "f1"),
    [
        # precision is point-wise (1 of 4 flagged rows is anomalous), recall event-wise
        ("0110000011", "0011100000", 1 / 4, 1.0, 2 / 5),
        ("0010000100", "0111000110", 1.0, 1.0, 1.0),
        ("1010101010", "0111111100", 3 / 5, 1.0, 0.75),  # 5 alarms, 3 inside the one event
        ("0001000000", "0001000110", 1.0, 1 / 2, 2 / 3),  # one of two events found
        ("1100010001", "0001110001", 2 / 4, 1.0, 2 / 3),  # both found, half the rows false
        # flagging everything: recall 1, precision the anomalous share 0.3: 2a / (1 + a)
        ("1111111111", "0011100000", 3 / 10, 1.0, 6 / 13),
        ("1111111111", "0110000110", 4 / 10, 1.0, 8 / 14),
        ("0000000000", "0110000110", NAN, 0.0, 0.0),
        ("0100000000", "0000000000", 0.0, NAN, 0.0),
        ("0000000000", "0000000000", NAN, NAN, NAN),
    ],
)
def test_event_f1_by_hand(
    pred: str, label: str, precision: float, recall: float, f1: float
) -> None:
    p, y = (np.array([int(c) for c in s]) for s in (pred, label))
    m = event_f1(p, y)
    assert same(m["precision"], precision) and same(m["recall"], recall) and same(m["f1"], f1)


def test_flagging_everything_does_not_win_event_f1() -> None:
    label = np.zeros(1000, np.int8)
    label[100:110] = label[500:540] = 1
    assert event_f1(np.ones(1000), label)["f1"] < 0.1  # 2 * 0.05 / 1.05


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], 0),
        ([(0, 1)], 1),  # ends just before the labelled segment
        ([(0, 2)], 0),  # touches it
        ([(5, 7)], 1),
        ([(5, 8)], 0),
        ([(0, 1), (5, 6), (8, 9)], 2),
        ([(0, 9)], 0),  # flag everything: one event, and it overlaps
        ([(9, 9)], 0),
        ([(5, 5), (6, 6), (7, 7)], 3),  # back-to-back events count one by one
    ],
)
def test_false_events_by_hand(events: list[tuple[int, int]], expected: int) -> None:
    label = np.array([int(c) for c in "0011100011"])
    starts = np.array([a for a, _ in events], np.int64)
    ends = np.array([b for _, b in events], np.int64)
    assert false_events(starts, ends, label) == expected


@pytest.mark.parametrize(
    ("starts", "ends", "message"),
    [([0], [10], "within 0..9"), ([3], [2], "start <= end"), ([0, 1], [2], "one length")],
)
def test_false_events_rejects_bad_ranges(starts: list[int], ends: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        false_events(np.array(starts), np.array(ends), np.zeros(10))
