"""The autoencoders, top to bottom: a stacked dense AE and a 1-D convolutional AE.

Both map a scaled window ``[N, length, features]`` to its reconstruction of the same shape
and also return the code (bottleneck activations) so sparsity penalties can see it. Every
layer is a plain ``nn.Sequential`` member of ``encoder``/``decoder`` so the ONNX export can
walk them layer by layer (see :mod:`anomae.train.export`).

Widths may be smaller than the input (under-complete) or larger (over-complete; pair it
with denoising or sparsity so the network cannot learn the identity).

    >>> import torch
    >>> m = build_model(ArchConfig(kind="dense", hidden=(16, 4)), length=8, n_features=3)
    >>> recon, code = m(torch.zeros(2, 8, 3))
    >>> tuple(recon.shape), tuple(code.shape)
    ((2, 8, 3), (2, 4))
"""

from __future__ import annotations

import torch
from torch import nn

from anomae.train.config import ArchConfig


def _activation(name: str) -> nn.Module:
    table: dict[str, type[nn.Module]] = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "elu": nn.ELU,
        "gelu": nn.GELU,
        "sigmoid": nn.Sigmoid,
        "linear": nn.Identity,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(table)}")
    return table[name]()


def _mlp(widths: list[int], act: str, last_act: str) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        layers.append(_activation(act if i < len(widths) - 2 else last_act))
    return layers


class DenseAE(nn.Module):
    """Stacked fully connected AE over the flattened window (``length * features`` inputs)."""

    layout = "flat"

    def __init__(self, length: int, n_features: int, cfg: ArchConfig) -> None:
        super().__init__()
        self.length, self.n_features = length, n_features
        d = length * n_features
        widths = [d, *cfg.hidden]
        self.encoder = nn.Sequential(*_mlp(widths, cfg.activation, cfg.code_activation))
        self.decoder = nn.Sequential(*_mlp(widths[::-1], cfg.activation, "linear"))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x.reshape(x.shape[0], -1))
        return self.decoder(code).reshape(x.shape), code


class ConvAE(nn.Module):
    """1-D convolutional AE: features are channels, stride-2 convolutions shorten the window,
    a dense bottleneck holds the code, transposed convolutions restore the exact length."""

    layout = "channels"

    def __init__(self, length: int, n_features: int, cfg: ArchConfig) -> None:
        super().__init__()
        self.length, self.n_features = length, n_features
        k = cfg.kernel
        pad = k // 2
        lengths = [length]
        enc: list[nn.Module] = []
        chans = [n_features, *cfg.channels]
        for i in range(len(cfg.channels)):
            enc += [
                nn.Conv1d(chans[i], chans[i + 1], k, stride=2, padding=pad),
                _activation(cfg.activation),
            ]
            lengths.append((lengths[-1] + 2 * pad - k) // 2 + 1)
        if lengths[-1] < 1:
            raise ValueError(
                f"window length {length} is too short for {len(cfg.channels)} stride-2 "
                f"convolutions; use fewer channels or a longer window"
            )
        flat = chans[-1] * lengths[-1]
        enc.append(nn.Flatten(1))
        enc += _mlp([flat, *cfg.hidden], cfg.activation, cfg.code_activation)
        dec: list[nn.Module] = _mlp([*cfg.hidden[::-1], flat], cfg.activation, cfg.activation)
        dec.append(nn.Unflatten(1, (chans[-1], lengths[-1])))
        for i in range(len(cfg.channels), 0, -1):
            l_in, l_want = lengths[i], lengths[i - 1]
            # output_padding picks the one length among those that stride 2 can reach.
            out_pad = l_want - ((l_in - 1) * 2 - 2 * pad + k)
            if not 0 <= out_pad < 2:
                raise ValueError(f"cannot restore length {l_want} from {l_in} with kernel {k}")
            dec.append(
                nn.ConvTranspose1d(
                    chans[i], chans[i - 1], k, stride=2, padding=pad, output_padding=out_pad
                )
            )
            if i > 1:
                dec.append(_activation(cfg.activation))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x.transpose(1, 2))
        return self.decoder(code).transpose(1, 2), code


def build_model(cfg: ArchConfig, length: int, n_features: int) -> DenseAE | ConvAE:
    """The AE ``cfg`` describes, for windows of ``length`` rows and ``n_features`` features."""
    if cfg.kind == "dense":
        return DenseAE(length, n_features, cfg)
    return ConvAE(length, n_features, cfg)
