"""The model's self-check: a few reference windows recorded at export, re-scored at load.

At export, :func:`reference_record` keeps a handful of fully observed rows (a few windows),
the scores the exported graph gave them, and a digest of what the graph bakes in from the
card (feature order, window, scaler, centring). :func:`check_graph` runs at every
:meth:`anomae.detector.Detector.load`:

* a probe of ``length - 1`` rows must give no window, ``length`` rows one and
  ``length + stride`` rows two: the card's window and feature count match the graph;
* the probe's score must be finite: a model whose weights were damaged gives NaN;
* with a reference record (exports since it existed), the reference rows must score as
  recorded (``|got - want| <= 1e-6 + 1e-3 * |want|``, loose enough for a GPU's rounding) and
  the card's digest must match, so reordered feature names or an edited scaler are caught.
  A float32 graph's micro-batches, calls of a few windows with a missing value and of many
  windows read other copies of the weights than the reference call: the reference windows
  are scored in such calls too (the first in a batch of two rows, the other a copy or all
  missing; all followed by a missing row; followed by copies of their last row, for one
  more window and up to :data:`anomae.graph.SMALL_WINDOWS` windows).

An int8 model (:mod:`anomae.quantize`) scores a call of a single window in float32 and
longer calls in int8: its record adds ``single``, the score of the first reference window
scored alone, so a damaged float32 weight is caught as well as a damaged int8 one.

Cards written before the record existed load with the probe checks only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from anomae.errors import AnomaeError
from anomae.graph import SMALL_WINDOWS
from anomae.spec import ModelCard

RTOL = 1e-3
ATOL = 1e-6
MAX_WINDOW_ROWS = 100_000  # a card claiming more is damaged: the probe would allocate it
REFERENCE_WINDOWS = 4

Run = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


class ReferenceMismatch(AnomaeError, ValueError):
    """The graph and its model card disagree, or the graph scores wrongly."""


def card_digest(card: ModelCard) -> str:
    """sha256 of the card fields the graph was built from."""
    baked = {
        "features": list(card.features),
        "window": [card.window.length, card.window.stride],
        "center": list(card.scaler.center),
        "scale": list(card.scaler.scale),
        "center_features": card.architecture.get("center", False),
    }
    return hashlib.sha256(json.dumps(baked, sort_keys=True).encode()).hexdigest()


def reference_rows(rows: np.ndarray, card: ModelCard) -> np.ndarray:
    """The first few windows' rows of ``rows`` ``[time, F]``, missing cells filled with the
    scaler's centre so that every cell is observed."""
    spec = card.window
    n = min(rows.shape[0], spec.length + (REFERENCE_WINDOWS - 1) * spec.stride)
    out = np.array(rows[:n], dtype=np.float32)
    fill = np.broadcast_to(np.asarray(card.scaler.center, np.float32), out.shape)
    out[np.isnan(out)] = fill[np.isnan(out)]
    return out


def reference_record(run: Run, rows: np.ndarray, card: ModelCard) -> dict[str, Any]:
    """What to store under ``card.parity["reference"]``; ``run`` is the exported graph."""
    ref = reference_rows(rows, card)
    score = run(ref[None])[0][0]
    if score.size == 0 or not np.isfinite(score).all():
        raise ReferenceMismatch(f"the exported graph scores its reference windows {score}")
    return {
        "rows": ref.tolist(),
        "score": [float(v) for v in score],
        "card_sha256": card_digest(card),
    }


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    if actual.shape != expected.shape or not np.isfinite(actual).all():
        raise ReferenceMismatch(
            f"the graph scores its reference windows {actual.tolist()[:4]}, not "
            f"{expected.tolist()[:4]} as at export: its weights are damaged"
        )
    if np.any(np.abs(actual - expected) > ATOL + RTOL * np.abs(expected)):
        raise ReferenceMismatch(
            f"the graph scores its reference windows {actual.tolist()[:4]}, not "
            f"{expected.tolist()[:4]} as at export: its weights were altered or damaged"
        )


def _shape(run: Run, rows: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    score = run(rows)[0]
    return tuple(score.shape), score


def check_graph(run: Run, card: ModelCard) -> None:
    """Raise :class:`ReferenceMismatch` if the graph behind ``run`` does not match ``card``
    or gives non-finite or different scores on the reference rows."""
    spec, n_f = card.window, len(card.features)
    if spec.length > MAX_WINDOW_ROWS:
        raise ReferenceMismatch(
            f"the card's window is {spec.length:,} rows, over the {MAX_WINDOW_ROWS:,} anomae "
            f"supports; the card is damaged"
        )
    row = np.asarray(card.scaler.center, np.float32)[None, None, :]
    want = {spec.length - 1: 0, spec.length: 1, spec.length + spec.stride: 2}
    got: dict[int, tuple[int, ...]] = {}
    try:
        for n_rows in want:
            if n_rows > 0:
                got[n_rows], score = _shape(run, np.repeat(row, n_rows, axis=1))
    except Exception as exc:  # onnxruntime's own error types
        raise ReferenceMismatch(
            f"the graph does not take the card's {n_f} features and window of {spec.length} "
            f"rows ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
    for n_rows, shape in got.items():
        if shape != (1, want[n_rows]):
            raise ReferenceMismatch(
                f"the card says window {spec.length} rows, stride {spec.stride}, but the graph "
                f"gives {shape[-1] if shape else '?'} windows for {n_rows} rows (expected "
                f"{want[n_rows]})"
            )
    if not np.isfinite(score).all():
        raise ReferenceMismatch(
            "the graph's score of a fully observed window is not finite: its weights are damaged"
        )
    ref = card.parity.get("reference")
    if not ref:
        return  # exported before reference records existed
    if ref.get("card_sha256") != card_digest(card):
        raise ReferenceMismatch(
            "the card's features, window or scaler differ from those the graph was exported "
            "with (reordered or renamed features, or an edited card)"
        )
    rows = np.asarray(ref["rows"], np.float32)[None]
    _close(run(rows)[0][0], np.asarray(ref["score"], np.float32))
    if "single" in ref:  # int8: one copy of the weights in each precision
        first = rows[:, : card.window.length]
        _close(run(first)[0][0], np.asarray([ref["single"]], np.float32))
        return
    _other_calls(run, rows, np.asarray(ref["score"], np.float32), card)


def _other_calls(run: Run, rows: np.ndarray, score: np.ndarray, card: ModelCard) -> None:
    """A float32 graph's micro-batches (one window per batch row), calls of a few windows
    with a missing value and of many windows read other copies of the weights than the
    reference call (:mod:`anomae.graph_windows`): the reference windows must score as
    recorded in each (a window's float32 score does not depend on its call)."""
    spec = card.window
    first = rows[:, : spec.length]  # micro-batches of one window per row, with a NaN row
    for other in (first, np.full_like(first, np.nan)):
        _close(run(np.concatenate([first, other]))[0][0], score[:1])
    nan = np.full((1, 1, rows.shape[2]), np.nan, np.float32)
    many = spec.length + (SMALL_WINDOWS - 1) * spec.stride - rows.shape[1]
    for after in (nan, rows[:, -1:].repeat(spec.stride, axis=1), rows[:, -1:].repeat(many, axis=1)):
        _close(run(np.concatenate([rows, after], axis=1))[0][0][: score.size], score)
