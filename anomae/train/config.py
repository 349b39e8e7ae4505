"""Typed training settings, torch-free: what the network looks like, how its training
windows are corrupted, the sparsity penalty, and the loop's own settings.

:func:`train_config` builds them from a pipeline's ``[model]``, ``[noise]``, ``[sparsity]``
and ``[train]`` sections; :func:`anomae.pipeline.parse_pipeline` calls it, so a bad key or
value is reported when the file is read, not after minutes of work, and without torch.
:mod:`anomae.train.model`, :mod:`anomae.train.noise` and :mod:`anomae.train.fit` (torch)
carry the settings out.

    >>> cfg = TrainConfig(arch=ArchConfig(hidden=(8, 2)), noise=NoiseConfig("masking", p=0.2))
    >>> cfg.arch.hidden, cfg.noise.kind, cfg.sparsity.kind, cfg.epochs
    ((8, 2), 'masking', 'none', 30)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from anomae.errors import PipelineError
from anomae.settings import from_table

if TYPE_CHECKING:
    from anomae.pipeline import Pipeline

Activation = Literal["relu", "tanh", "elu", "gelu"]
CodeActivation = Literal["linear", "sigmoid", "relu"]
NoiseKind = Literal["none", "gaussian", "salt_pepper", "masking"]
_KINDS = ("none", "gaussian", "salt_pepper", "masking")


# the widest code ``code = "features"`` gives: training cost grows with the code times the
# window's cells, and past a few hundred varying sensors a wider code is not the bottleneck
CODE_MAX = 256


@dataclass(frozen=True)
class ArchConfig:
    """Network shape. ``hidden`` are the encoder widths, the last one is the code size;
    the decoder mirrors them. For ``conv``, ``channels`` are the stride-2 convolution
    widths before the dense bottleneck ``hidden``. ``code = "features"`` sizes the code to
    the data when training starts (:meth:`sized`): one unit per feature not constant in
    the rows fitted on, so a plant of 48 sensors does not get the code that 8 sensors need;
    the card records the width used."""

    kind: Literal["dense", "conv"] = "dense"
    hidden: tuple[int, ...] = (256, 64)
    activation: Activation = "relu"
    code_activation: CodeActivation = "linear"
    channels: tuple[int, ...] = (32, 64)
    kernel: int = 5
    code: Literal["fixed", "features"] = "fixed"

    def __post_init__(self) -> None:
        if self.kind not in ("dense", "conv"):
            raise ValueError(f"arch kind must be 'dense' or 'conv', got {self.kind!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be positive integers, got {self.hidden}")
        if self.kind == "conv" and (not self.channels or self.kernel < 1):
            raise ValueError("a conv AE needs at least one channel width and kernel >= 1")
        if self.code not in ("fixed", "features"):
            raise ValueError(
                f"code must be 'fixed' (hidden as given) or 'features' (one code unit per "
                f"feature that varies in training), got {self.code!r}"
            )

    def sized(self, varying: int, length: int) -> ArchConfig:
        """The shape to train for ``length``-row windows of data with ``varying`` features
        not constant in the fit rows: ``hidden`` as given, or with ``code = "features"`` its
        last width replaced by ``varying`` (at least 2, at most :data:`CODE_MAX`, and never
        more than half a window's cells: a code as wide as its input copies it).

            >>> auto, fixed = ArchConfig(hidden=(8,), code="features"), ArchConfig(hidden=(8,))
            >>> auto.sized(48, 8).hidden, auto.sized(1, 8).hidden, fixed.sized(48, 8).hidden
            ((48,), (2,), (8,))
            >>> auto.sized(10, 1).hidden, auto.sized(1, 1).hidden
            ((5,), (1,))
        """
        if self.code != "features":
            return self
        width = min(max(int(varying), 2), CODE_MAX, max(1, length * int(varying) // 2))
        return replace(self, hidden=(*self.hidden[:-1], width))


@dataclass(frozen=True)
class NoiseConfig:
    """Which corruption to apply. ``sigma`` is the Gaussian std in scaled units, ``p`` the
    per-cell probability for ``salt_pepper`` and ``masking``."""

    kind: NoiseKind = "none"
    sigma: float = 0.1
    p: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"noise kind must be one of {_KINDS}, got {self.kind!r}")
        # `not x >= 0` also rejects NaN.
        if not self.sigma >= 0:
            raise ValueError(f"noise sigma must be >= 0, got {self.sigma}")
        if not 0 <= self.p < 1:
            raise ValueError(f"noise p must be in [0, 1), got {self.p}")


@dataclass(frozen=True)
class SparsityConfig:
    """Penalty on the code: ``kl`` pushes each unit's mean activation towards ``rho`` (needs a
    sigmoid code), ``l1`` shrinks activations; ``beta`` weighs either against the MSE."""

    kind: Literal["none", "kl", "l1"] = "none"
    rho: float = 0.05
    beta: float = 1e-3

    def __post_init__(self) -> None:
        if self.kind not in ("none", "kl", "l1"):
            raise ValueError(f"sparsity kind must be 'none', 'kl' or 'l1', got {self.kind!r}")
        if not 0 < self.rho < 1:
            raise ValueError(f"sparsity rho must be in (0, 1), got {self.rho}")
        if not self.beta >= 0:
            raise ValueError(f"sparsity beta must be >= 0, got {self.beta}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything :func:`anomae.train.fit.fit` needs besides the data. ``device`` is ``cpu``,
    ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available); ``threads`` is torch's intra-op
    threads while fitting (0: torch's own choice; 1 is often fastest on a small busy machine)."""

    arch: ArchConfig = field(default_factory=ArchConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    sparsity: SparsityConfig = field(default_factory=SparsityConfig)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int = 5
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if int(self.threads) < 0:
            raise ValueError(f"threads must be >= 0 (0: torch's default), got {self.threads}")
        for name in ("lr", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


def train_config(pipe: Pipeline) -> TrainConfig:
    """The :class:`TrainConfig` a pipeline's ``[model]``, ``[noise]``, ``[sparsity]`` and
    ``[train]`` sections describe; a :class:`~anomae.errors.PipelineError` naming the file
    and section when a key or value is wrong."""
    where = pipe.source
    arch = from_table(ArchConfig, pipe.model, f"{where} [model]")
    noise = from_table(NoiseConfig, pipe.noise, f"{where} [noise]")
    sparsity = from_table(SparsityConfig, pipe.sparsity, f"{where} [sparsity]")
    if sparsity.kind == "kl" and arch.code_activation != "sigmoid":
        raise PipelineError(
            f"{where}: sparsity 'kl' needs code activations in (0, 1); set [model] "
            f'code_activation = "sigmoid"'
        )
    nested = sorted({"arch", "noise", "sparsity"} & set(pipe.train))
    if nested:
        raise PipelineError(f"{where} [train]: {nested} have sections of their own")
    kw = {**pipe.train, "arch": arch, "noise": noise, "sparsity": sparsity}
    result: TrainConfig = from_table(TrainConfig, kw, f"{where} [train]")
    return result
