"""Training loop: fit an AE to scaled windows with optional denoising and sparsity.

Windows may hold NaN (missing readings): they enter the network as 0 (the scaled mean) and
are left out of the loss. A random ``val_fraction`` of the windows is held out; training
stops early when its reconstruction error stops improving, and the best weights are kept.

    >>> import numpy as np
    >>> from anomae.train.config import ArchConfig, TrainConfig
    >>> w = np.random.default_rng(0).normal(size=(64, 8, 2)).astype(np.float32)
    >>> cfg = TrainConfig(arch=ArchConfig(hidden=(8, 2)), epochs=3, batch_size=16, progress=False)
    >>> res = fit(w, cfg)
    >>> len(res.history), res.n_train, res.n_val, res.device
    (3, 58, 6, 'cpu')
"""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from anomae.errors import AnomaeError
from anomae.train.config import ArchConfig as ArchConfig  # the settings' home before config.py
from anomae.train.config import NoiseConfig as NoiseConfig
from anomae.train.config import SparsityConfig as SparsityConfig
from anomae.train.config import TrainConfig
from anomae.train.model import build_model
from anomae.train.noise import corrupt

_MIN_DELTA = 1e-4  # relative val-loss improvement that resets patience
_EVAL_BATCH = 4096  # no autograd state in eval, so bigger chunks are cheap


def kl_sparsity(code: torch.Tensor, rho: float, beta: float) -> torch.Tensor:
    """``beta * sum_j KL(rho || rho_hat_j)`` with ``rho_hat_j`` the batch mean of ``code[:, j]``.

    ``KL(a||b) = a log(a/b) + (1-a) log((1-a)/(1-b))``; ``rho_hat`` is clamped to
    ``[1e-6, 1-1e-6]``. Activations must lie in (0, 1), so :func:`fit` requires
    ``ArchConfig.code_activation = 'sigmoid'`` for this penalty.
    """
    rho_hat = code.mean(dim=0).clamp(1e-6, 1 - 1e-6)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return beta * kl.sum()


def l1_sparsity(code: torch.Tensor, beta: float) -> torch.Tensor:
    """``beta`` times the batch mean of ``sum_j |code_j|``."""
    return beta * code.abs().sum(dim=1).mean()


@dataclass
class FitResult:
    """The trained model (best validation weights, eval mode, on CPU) and how it got there.

    ``history`` has one row per epoch: ``epoch``, ``train_loss`` (masked MSE on the noisy
    training batches), ``penalty`` (mean sparsity penalty; the objective is their sum),
    ``val_loss`` (masked MSE on clean held-out windows) and ``seconds``.
    """

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    device: str
    n_train: int
    n_val: int


class DeviceError(AnomaeError, ValueError):
    """The training device is unknown or not available here."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} requested but CUDA is not available "
                "(no GPU or a CPU-only torch); use device='cpu' or 'auto'"
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} requested but only {torch.cuda.device_count()} CUDA "
                "device(s) are visible"
            )
        return dev
    raise DeviceError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {name!r}")


def _masked_sse(
    recon: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of squared errors over observed cells, and how many cells were observed."""
    err = (recon - x0).square()
    if mask is None:
        return err.sum(), torch.tensor(float(err.numel()), device=err.device)
    return (err * mask).sum(), mask.sum().to(err.dtype)


class _Progress:
    """One rewritten line on a terminal, one short line per epoch in logs; nothing if off."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.enabled, self.epochs = enabled, epochs
        self.tty = enabled and sys.stderr.isatty()
        self.start = time.perf_counter()

    def update(self, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        i = int(row["epoch"])
        text = (
            f"epoch {i}/{self.epochs} train {row['train_loss']:.4g} "
            f"val {row['val_loss']:.4g} {time.perf_counter() - self.start:.1f}s"
        )
        if self.tty:
            done = round(20 * i / self.epochs)
            sys.stderr.write(f"\r[{'#' * done}{'.' * (20 - done)}] {text}\x1b[K")
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n < 2:
        raise ValueError(
            f"need at least 2 windows to hold one out for validation, got {n}; more data is needed"
        )
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _to_device(a: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t


def fit(
    windows: np.ndarray,
    cfg: TrainConfig,
    *,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``build_model(cfg.arch, length, features)`` on scaled ``windows``
    (``[N, length, features]``, NaN = missing) and return the best-validation model.

    The same ``cfg.seed`` gives identical weights on CPU; on CUDA, cuDNN convolutions may
    still differ in the last bits between runs. ``cfg.threads`` holds while fitting only:
    torch's thread count is restored after.
    """
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit(windows, cfg, on_epoch)
    finally:
        torch.set_num_threads(before)


def _fit(
    windows: np.ndarray,
    cfg: TrainConfig,
    on_epoch: Callable[[dict[str, float]], None] | None,
) -> FitResult:
    if cfg.sparsity.kind == "kl" and cfg.arch.code_activation != "sigmoid":
        raise ValueError(
            "sparsity 'kl' needs code_activation = 'sigmoid' (activations must lie in (0, 1)); "
            f"got code_activation = {cfg.arch.code_activation!r}"
        )
    windows = np.asarray(windows)
    if windows.ndim != 3:
        raise ValueError(f"windows must be [N, length, features], got shape {windows.shape}")
    n, length, n_features = windows.shape
    device = resolve_device(cfg.device)
    train_idx, val_idx = _split(n, cfg.val_fraction, cfg.seed)

    # Fancy indexing copies, so read-only window views are fine and `windows` stays untouched.
    train_np, val_np = (windows[i].astype(np.float32, copy=False) for i in (train_idx, val_idx))
    has_missing = bool(np.isnan(train_np).any() or np.isnan(val_np).any())
    feature_min = feature_max = torch.zeros(n_features)
    if cfg.noise.kind == "salt_pepper":
        with warnings.catch_warnings():  # an all-missing feature gives NaN, mapped to 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            fmin = np.nan_to_num(np.nanmin(train_np, axis=(0, 1)), nan=0.0)
            fmax = np.nan_to_num(np.nanmax(train_np, axis=(0, 1)), nan=0.0)
        feature_min = torch.from_numpy(fmin).to(device)
        feature_max = torch.from_numpy(fmax).to(device)

    # The whole set lives on the device once; batches are gathered there, not per step copied.
    x_train = _to_device(np.nan_to_num(train_np, nan=0.0), device)
    x_val = _to_device(np.nan_to_num(val_np, nan=0.0), device)
    m_train = _to_device(~np.isnan(train_np), device) if has_missing else None
    m_val = _to_device(~np.isnan(val_np), device) if has_missing else None

    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model = build_model(cfg.arch, length, n_features).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    history: list[dict[str, float]] = []
    best_val, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    stale = 0
    bar = _Progress(cfg.progress, cfg.epochs)
    n_train = len(train_idx)
    try:
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            model.train()
            # Sums stay on the device so there is no host sync per batch.
            rec_sum = torch.zeros((), device=device)
            pen_sum = torch.zeros((), device=device)
            order = torch.randperm(n_train, generator=gen, device=device)
            for start in range(0, n_train, cfg.batch_size):
                idx = order[start : start + cfg.batch_size]
                x0 = x_train[idx]
                mask = m_train[idx] if m_train is not None else None
                x_in = x0
                if cfg.noise.kind != "none":
                    x_in = corrupt(x0, cfg.noise, feature_min, feature_max, gen)
                    if mask is not None:  # missing cells must stay at 0 whatever the noise
                        x_in = torch.where(mask, x_in, 0.0)
                recon, code = model(x_in)
                if mask is None:
                    rec = nn.functional.mse_loss(recon, x0)
                else:
                    sse, count = _masked_sse(recon, x0, mask)
                    rec = sse / count.clamp(min=1)
                if cfg.sparsity.kind == "kl":
                    pen = kl_sparsity(code, cfg.sparsity.rho, cfg.sparsity.beta)
                elif cfg.sparsity.kind == "l1":
                    pen = l1_sparsity(code, cfg.sparsity.beta)
                else:
                    pen = torch.zeros((), device=device)
                opt.zero_grad(set_to_none=True)
                (rec + pen).backward()
                opt.step()
                rec_sum += rec.detach() * len(idx)
                pen_sum += pen.detach() * len(idx)

            val_loss = _evaluate(model, x_val, m_val)
            row = {
                "epoch": float(epoch),
                "train_loss": rec_sum.item() / n_train,
                "val_loss": val_loss,
                "penalty": pen_sum.item() / n_train,
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            bar.update(row)
            if on_epoch is not None:
                on_epoch(row)
            if val_loss < best_val * (1 - _MIN_DELTA) or best_epoch == 0:
                best_val, best_epoch, stale = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
    finally:
        bar.close()

    model.load_state_dict(best_state)
    model.eval().cpu()
    return FitResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        device=str(device),
        n_train=n_train,
        n_val=len(val_idx),
    )


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> float:
    """Masked MSE over all observed cells of ``x``: no noise, no penalty, eval mode."""
    model.eval()
    sse = torch.zeros((), device=x.device)
    count = torch.zeros((), device=x.device)
    for start in range(0, x.shape[0], _EVAL_BATCH):
        xb = x[start : start + _EVAL_BATCH]
        mb = mask[start : start + _EVAL_BATCH] if mask is not None else None
        recon, _ = model(xb)
        s, c = _masked_sse(recon, xb, mb)
        sse += s
        count += c
    return (sse / count.clamp(min=1)).item()
