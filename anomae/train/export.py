"""Export a trained AE to one self-describing ONNX file, refusing it unless scores match.

The card also records a few reference windows and their scores (:mod:`anomae.reference`),
which every load re-scores, so a model damaged after export is refused.

The network is walked layer by layer (``encoder`` then ``decoder``) into
:class:`anomae.graph.Layer` records; :func:`anomae.graph.build_graph` wraps them with the
scaler, windowing and scoring. :class:`TorchScorer` computes the very same outputs in torch
eager; every export compares the two on held-out rows (and variants of them that take each
run-time path through the graph) and raises :class:`ExportParityError` instead of writing a
model whose outputs differ: scores by more than ``1e-6 + 1e-4 * |score|``, a feature's error
by more than ``1e-6 + 1e-4 * (|error| + window score)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from anomae.errors import AnomaeError
from anomae.graph import Layer, build_graph, center_mask
from anomae.modelfile import write_model
from anomae.spec import ModelCard

RTOL = 1e-4
ATOL = 1e-6


class ExportParityError(AnomaeError, RuntimeError):
    """onnxruntime's scores differ from PyTorch's beyond the stated tolerance."""


def torch_layers(model: nn.Module) -> list[Layer]:
    """The network's layers as ONNX ops with their weights."""
    out: list[Layer] = []
    for part in (model.encoder, model.decoder):
        for mod in part.children():  # type: ignore[union-attr]
            out.extend(_convert(mod))
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _convert(mod: nn.Module) -> list[Layer]:
    simple = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.Sigmoid: "Sigmoid", nn.GELU: "Gelu"}
    for cls, op in simple.items():
        if isinstance(mod, cls):
            return [Layer(op)]
    if isinstance(mod, nn.Identity):
        return []
    if isinstance(mod, nn.ELU):
        return [Layer("Elu", attrs={"alpha": float(mod.alpha)})]
    if isinstance(mod, nn.Linear):
        bias = _np(mod.bias) if mod.bias is not None else np.zeros(mod.out_features, np.float32)
        return [Layer("Gemm", [_np(mod.weight), bias], {"transB": 1})]
    if isinstance(mod, nn.Flatten):
        return [Layer("Flatten", attrs={"axis": int(mod.start_dim)})]
    if isinstance(mod, nn.Unflatten):
        return [Layer("Reshape", attrs={"shape": [-1, *mod.unflattened_size]})]
    if isinstance(mod, (nn.Conv1d, nn.ConvTranspose1d)):
        attrs = {
            "kernel_shape": list(mod.kernel_size),
            "strides": list(mod.stride),
            "pads": [int(mod.padding[0])] * 2,  # type: ignore[index]
            "dilations": list(mod.dilation),
            "group": int(mod.groups),
        }
        weights = [_np(mod.weight)]
        if mod.bias is not None:
            weights.append(_np(mod.bias))
        if isinstance(mod, nn.ConvTranspose1d):
            attrs["output_padding"] = list(mod.output_padding)
            return [Layer("ConvTranspose", weights, attrs)]
        return [Layer("Conv", weights, attrs)]
    raise TypeError(f"cannot export layer {type(mod).__name__} to ONNX")


@dataclass
class TorchScorer:
    """The ONNX graph's computation in torch eager: the parity reference (and the bench's)."""

    model: nn.Module
    card: ModelCard

    def __post_init__(self) -> None:
        self.center = torch.tensor(self.card.scaler.center, dtype=torch.float32)
        self.scale = torch.tensor(self.card.scaler.scale, dtype=torch.float32)
        n_f = len(self.card.features)
        self.weight = torch.tensor(self.card.scaler.error_weight or [1.0] * n_f)
        self.gate = (self.weight > 0).to(torch.float32)
        mask = center_mask(self.card.features, self.card.architecture.get("center", False))
        self.mask = None if mask is None else torch.from_numpy(mask)
        self.model.eval()

    @torch.no_grad()
    def __call__(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        spec = self.card.window
        scaled = (rows - self.center) / self.scale
        missing = torch.isnan(scaled)
        filled = torch.where(missing, torch.zeros((), dtype=scaled.dtype), scaled)
        observed = (~missing).to(scaled.dtype) * self.gate
        filled = filled * self.gate
        # unfold gives [B, n, F, L]; the graph's windows are [B, n, L, F]
        win = filled.unfold(1, spec.length, spec.stride).transpose(2, 3)
        obs = observed.unfold(1, spec.length, spec.stride).transpose(2, 3)
        if self.mask is not None:
            mean = win.sum(2, keepdim=True) / obs.sum(2, keepdim=True).clamp(min=1.0)
            win = (win - self.mask * mean) * obs
        b, n = win.shape[:2]
        recon, _ = self.model(win.reshape(b * n, spec.length, -1))
        sq = (recon.reshape(win.shape) - win) ** 2 * obs
        f_sum, f_cnt = sq.sum(2) * self.weight, obs.sum(2)
        f_err, count = f_sum / f_cnt.clamp(min=1.0), f_cnt.sum(2)
        if self.card.architecture.get("aggregate", "mean") == "max":
            nan = torch.full((), float("nan"))
            score = torch.where(count == 0, nan, f_err.amax(2))
        else:
            score = f_sum.sum(2) / count
        coverage = count / (spec.length * self.gate.sum())
        return score, f_err, coverage


def parity_inputs(rows: np.ndarray, card: ModelCard) -> dict[str, np.ndarray]:
    """Variants of ``rows`` that take each of the graph's run-time paths (see
    :mod:`anomae.graph`): one window per batch row; a call of one window; few windows; many
    windows with NaN; many windows without."""
    from anomae.graph import SMALL_WINDOWS

    spec = card.window
    rows = np.asarray(rows, dtype=np.float32)
    long = rows
    while spec.count(long.shape[1]) < SMALL_WINDOWS + 1:
        long = np.concatenate([long, rows], axis=1)
    holes = long.copy()
    rng = np.random.default_rng(0)
    holes[rng.random(holes.shape) < 0.01] = np.nan
    holes[:, spec.length : 3 * spec.length, :] = np.nan  # an outage: NaN scores
    short = holes[:, : spec.length + spec.stride * (SMALL_WINDOWS // 2)]
    starts = np.arange(0, long.shape[1] - spec.length + 1, spec.length)[:64]
    single = np.stack([holes[0, s : s + spec.length] for s in starts])  # [B, length, F]
    return {
        "given": rows.copy(),  # writable: torch refuses read-only views
        "many windows, no NaN": np.nan_to_num(long, nan=0.0),
        "many windows, NaN": holes,
        "few windows": short,
        "one window per row": single,
        "one-window call": single[:1],
    }


def check_parity(
    onnx_model: onnx.ModelProto, scorer: TorchScorer, rows: np.ndarray
) -> dict[str, Any]:
    """Compare onnxruntime and torch on variants of ``rows`` ``[batch, time, F]`` that cover
    every path through the graph; raise :class:`ExportParityError` if they differ."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    worst, n_windows = 0.0, 0
    cases = parity_inputs(rows, scorer.card)
    for case, x in cases.items():
        got = sess.run(["score", "feature_error", "coverage"], {"rows": x})
        want = [t.numpy() for t in scorer(torch.from_numpy(x))]
        # A feature's error is a small part of its window's: judge it on the window's scale
        # (score), or float32 rounding of near-perfect reconstructions reads as a mismatch.
        scale = np.nan_to_num(want[0])
        scales = {"score": 0.0, "feature_error": scale[..., None], "coverage": 0.0}
        for name, g, w in zip(("score", "feature_error", "coverage"), got, want, strict=True):
            where = f"{name} ({case})"
            if g.shape != w.shape:
                raise ExportParityError(f"{where}: onnx shape {g.shape} != torch {w.shape}")
            if not np.array_equal(np.isnan(g), np.isnan(w)):
                raise ExportParityError(f"{where}: onnx and torch disagree on NaN windows")
            ok = ~np.isnan(w)
            ref = (np.abs(w) + scales[name])[ok] if name == "feature_error" else np.abs(w[ok])
            err = np.abs(g[ok] - w[ok])
            bad = err > ATOL + RTOL * ref
            if bad.any():
                raise ExportParityError(
                    f"{where}: {int(bad.sum())} of {bad.size} values differ beyond "
                    f"|onnx - torch| <= {ATOL} + {RTOL}*|torch| (worst {float(err.max()):.3g}); "
                    f"the model was not written"
                )
            if name == "score":
                rel = err / np.maximum(ref, ATOL)
                worst = max(worst, float(rel.max(initial=0.0)))
        n_windows += int(got[0].size)
    return {
        "rtol": RTOL,
        "atol": ATOL,
        "max_rel_diff": worst,
        "n_windows": n_windows,
        "cases": list(cases),
    }


def export_model(
    model: nn.Module, card: ModelCard, path: str | Path, parity_rows: np.ndarray
) -> ModelCard:
    """Build the ONNX model, check parity on ``parity_rows`` and write it atomically.

    Returns the card as written (with its ``parity`` record)."""
    model = model.cpu().eval()
    layers = torch_layers(model)
    onnx_model = build_graph(
        layers,
        str(model.layout),
        card.features,
        card.window,
        card.scaler,
        center=card.architecture.get("center", False),
        aggregate=card.architecture.get("aggregate", "mean"),
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    parity = check_parity(onnx_model, TorchScorer(model, card), parity_rows)
    from dataclasses import replace

    center = card.architecture.get("center", False)
    if not isinstance(center, bool):  # names, as the JSON metadata will hold them
        card = replace(card, architecture={**card.architecture, "center": list(center)})
    card = replace(card, parity={**parity, "reference": _reference(onnx_model, card, parity_rows)})
    write_model(onnx_model, card, path)
    return card


def _reference(onnx_model: onnx.ModelProto, card: ModelCard, rows: np.ndarray) -> dict[str, Any]:
    """The reference windows and their scores, re-checked at every load (anomae.reference)."""
    import onnxruntime as ort

    from anomae.reference import ReferenceMismatch, reference_record

    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(sess.run(["score", "feature_error", "coverage"], {"rows": x}))  # type: ignore[return-value]

    try:
        return reference_record(run, np.asarray(rows, np.float32)[0], card)
    except ReferenceMismatch as exc:
        raise ExportParityError(f"{exc}; the model was not written") from exc
