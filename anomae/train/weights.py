"""Per-feature error weights: every sensor's error in units of its own normal error.

A window's score is the mean squared reconstruction error over its cells, so a sensor the
network reconstructs badly even on normal data (a noisy one, or one whose behaviour the
windows cannot predict) dominates every score, and a sensor it reconstructs almost
perfectly hardly counts however far it strays. Dividing each feature's squared error by
its mean on held-out normal windows puts every sensor on the scale of its own normal error
before they are averaged: a sensor that is ten times its usual error counts the same
whichever sensor it is.

Features constant in the training data carry no information about their normal variation:
a change later is as likely an unseen operating mode (a command that was never sent in
training) as a fault, and one such column flipping can outweigh everything else. They get
weight 0 by default (their input is held at the training value; see
:class:`anomae.spec.Scaler`), and training prints their names.

The weights live in the graph (``Scaler.error_weight``), so batch, stream and every
exported copy agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from anomae.spec import ModelCard

# A feature's held-out error is floored at this fraction of the median over features: a
# sensor reconstructed (almost) perfectly on held-out data would otherwise get a weight
# that turns its smallest later wobble into an alarm.
FLOOR = 0.1
# "spread" weights: each feature's error over its held-out SPREAD_Q quantile, floored at
# the median over features (SPREAD_FLOOR): only a sensor whose normal error is large is
# rescaled. A quiet sensor magnified by its tiny normal error made SKAB's post-fault
# temperatures alarm under the per-feature maximum (docs/benchmarks.md).
SPREAD_Q = 0.99
SPREAD_FLOOR = 1.0


def constant_features(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean mask of the features that take a single value (ignoring NaN) across ``blocks``."""
    rows = np.concatenate(list(blocks)).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN feature: NaN, constant
        lo, hi = np.nanmin(rows, axis=0), np.nanmax(rows, axis=0)
    return ~(hi > lo)  # all-NaN (nan > nan is False) counts as constant too


def heldout_error(
    model: nn.Module, card: ModelCard, blocks: Sequence[np.ndarray], q: float | None = None
) -> np.ndarray:
    """Per-feature error ``[F]`` of ``card``'s scoring on the windows of ``blocks``: the
    mean, or the ``q`` quantile."""
    from anomae.train.export import TorchScorer

    scorer = TorchScorer(model, card)
    errors = [np.zeros((0, len(card.features)))]
    for block in blocks:
        if card.window.count(block.shape[0]) == 0:
            continue
        rows = torch.from_numpy(np.ascontiguousarray(block[None], np.float32))
        errors.append(scorer(rows)[1][0].numpy().astype(np.float64))  # [n, F]
    fe = np.concatenate(errors)
    if fe.shape[0] == 0:
        return np.zeros(fe.shape[1])
    return np.nanmean(fe, axis=0) if q is None else np.nanquantile(fe, q, axis=0)


def error_weights(
    model: nn.Module,
    card: ModelCard,
    blocks: Sequence[np.ndarray],
    *,
    errors: str = "heldout",
    ignore: np.ndarray | None = None,
) -> tuple[float, ...]:
    """Weights for ``card.scaler.error_weight`` (``errors`` as ``[weights] errors``): 0
    where ``ignore``; "heldout": the inverse of each feature's mean held-out error (floored
    at :data:`FLOOR` times their median), scaled so the weights of the scored features
    average 1; "spread": the same with the held-out :data:`SPREAD_Q` quantile for the mean
    and :data:`SPREAD_FLOOR` times the median as the floor; "equal": 1.

        >>> import numpy as np
        >>> w = _weights(np.array([0.5, 0.05, 0.0, 2.0]), np.array([0, 0, 1, 0], bool), True)
        >>> [round(v, 3) for v in w]
        [0.267, 2.667, 0.0, 0.067]
    """
    n_f = len(card.features)
    ignore = np.zeros(n_f, bool) if ignore is None else np.asarray(ignore, bool)
    if ignore.all():
        raise ValueError("every feature is constant in the training data: nothing to learn")
    if errors == "equal":
        return _weights(np.ones(n_f), ignore, False)
    spread = errors == "spread"
    err = heldout_error(model, card, blocks, SPREAD_Q if spread else None)
    return _weights(err, ignore, True, SPREAD_FLOOR if spread else FLOOR)


def _weights(
    err: np.ndarray, ignore: np.ndarray, equalise: bool, floor_at: float = FLOOR
) -> tuple[float, ...]:
    if not equalise:
        return tuple(np.where(ignore, 0.0, 1.0).tolist())
    scored = err[~ignore]
    floor = max(floor_at * float(np.median(scored)), 1e-12)
    w = np.where(ignore, 0.0, 1.0 / np.maximum(err, floor))
    w *= (~ignore).sum() / w.sum()
    return tuple(float(v) for v in w)


def with_weights(card: ModelCard, weights: tuple[float, ...]) -> ModelCard:
    """``card`` with its scaler's error weights set (all 1 is stored as none)."""
    stored = () if all(v == 1.0 for v in weights) else weights
    return replace(card, scaler=replace(card.scaler, error_weight=stored))
