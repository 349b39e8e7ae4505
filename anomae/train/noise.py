"""Denoising corruption: what the autoencoder sees instead of the clean window while training.

A denoising AE learns to map a corrupted window back to the clean one, which stops an
over-complete network from copying its input. Corruption is applied to training batches
only; validation, calibration and scoring always see clean windows. All kinds work on
scaled windows ``[N, length, features]`` and return a new tensor (the input is never
modified in place).

- ``gaussian``: ``x + eps``, ``eps ~ N(0, sigma^2)``;
- ``salt_pepper``: each cell is replaced with probability ``p``, by its feature's minimum or
  maximum (each with probability 1/2);
- ``masking``: ``x * m``, ``m ~ Bernoulli(1 - p)``, i.e. a cell is set to 0 (the scaled mean)
  with probability ``p``.

    >>> import torch
    >>> x = torch.ones(2, 4, 3)
    >>> g = torch.Generator().manual_seed(0)
    >>> y = corrupt(x, NoiseConfig("masking", p=0.5), x.amin((0, 1)), x.amax((0, 1)), g)
    >>> sorted(set(y.flatten().tolist())), x.sum().item()
    ([0.0, 1.0], 24.0)
"""

from __future__ import annotations

import torch

from anomae.train.config import NoiseConfig


def corrupt(
    x: torch.Tensor,
    cfg: NoiseConfig,
    feature_min: torch.Tensor,
    feature_max: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A corrupted copy of ``x`` (``[N, length, features]``).

    ``feature_min``/``feature_max`` (``[features]``) are the per-feature extremes of the scaled
    training data, used only by ``salt_pepper``. ``generator`` must live on ``x.device``;
    with the same generator state the corruption is the same.
    """
    if cfg.kind == "none":
        return x.clone()
    if cfg.kind == "gaussian":
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return x + cfg.sigma * eps
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if cfg.kind == "masking":
        # One uniform draw compared with p is Bernoulli(1 - p) and takes the generator.
        return x * (u >= cfg.p)
    if cfg.kind == "salt_pepper":
        # An independent coin per cell, so a replaced cell is min or max with prob 1/2 each.
        coin = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        lo = feature_min.to(device=x.device, dtype=x.dtype).expand_as(x)
        hi = feature_max.to(device=x.device, dtype=x.dtype).expand_as(x)
        return torch.where(u < cfg.p, torch.where(coin < 0.5, hi, lo), x)
    raise ValueError(f"unknown noise kind {cfg.kind!r}")
