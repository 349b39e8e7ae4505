"""The autoencoders (anomae.train.model): output and code shapes of DenseAE and ConvAE
over window lengths that stride-2 convolutions halve unevenly, the layers the export
walks, activations, and the refusal of an unknown activation."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from anomae.train.config import ArchConfig  # noqa: E402
from anomae.train.model import ConvAE, DenseAE, _activation, build_model  # noqa: E402


@pytest.mark.parametrize("length", [1, 7, 8, 64])
def test_dense_ae_shapes_and_layers(length: int) -> None:
    m = build_model(ArchConfig(hidden=(16, 5), code_activation="tanh"), length, 3)
    assert isinstance(m, DenseAE) and m.layout == "flat"
    recon, code = m(torch.randn(4, length, 3))
    assert tuple(recon.shape) == (4, length, 3) and tuple(code.shape) == (4, 5)
    assert code.abs().max() <= 1.0  # tanh on the code
    widths = [(x.in_features, x.out_features) for x in m.modules() if isinstance(x, nn.Linear)]
    d = length * 3
    assert widths == [(d, 16), (16, 5), (5, 16), (16, d)]  # the decoder mirrors the encoder
    assert isinstance(m.decoder[-1], nn.Identity)  # a linear output


@pytest.mark.parametrize(("length", "channels", "kernel"),
                         [(8, (4, 6), 5), (9, (4,), 3), (13, (4, 6, 8), 3), (64, (8, 16), 5),
                          (2, (4,), 1), (1, (4, 4), 3), (10, (4,), 4),
                          (11, (4, 4), 2)])  # fmt: skip
def test_conv_ae_restores_the_exact_length(length: int, channels: tuple[int, ...],
                                           kernel: int) -> None:  # fmt: skip
    cfg = ArchConfig(kind="conv", hidden=(12, 3), channels=channels, kernel=kernel)
    m = build_model(cfg, length, 2)
    assert isinstance(m, ConvAE) and m.layout == "channels"
    recon, code = m(torch.randn(5, length, 2))
    assert tuple(recon.shape) == (5, length, 2) and tuple(code.shape) == (5, 3)
    convs = [x for x in m.encoder if isinstance(x, nn.Conv1d)]
    assert [c.out_channels for c in convs] == list(channels)
    assert [c.stride for c in convs] == [(2,)] * len(channels)


def test_activations_by_name() -> None:
    assert isinstance(_activation("gelu"), nn.GELU)
    assert isinstance(_activation("linear"), nn.Identity)
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; choose from \['elu'"):
        _activation("swish")
