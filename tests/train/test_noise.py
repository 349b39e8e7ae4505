from __future__ import annotations

import pytest
import torch

from anomae.train.config import NoiseConfig
from anomae.train.noise import corrupt

SHAPE = (400, 32, 8)  # ~100k cells: proportions land within ~0.005 of their expectation


@pytest.fixture()
def x() -> torch.Tensor:
    return torch.rand(SHAPE, generator=torch.Generator().manual_seed(123)) * 2 - 1


def _extremes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.amin(dim=(0, 1)), x.amax(dim=(0, 1))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.5])
def test_gaussian_adds_zero_mean_noise_of_std_sigma(x: torch.Tensor, sigma: float) -> None:
    y = corrupt(x, NoiseConfig("gaussian", sigma=sigma), *_extremes(x), _gen())
    d = y - x
    assert abs(d.mean().item()) < 0.01 * sigma + 1e-3
    assert d.std().item() == pytest.approx(sigma, rel=0.02)


def test_gaussian_sigma_zero_is_identity(x: torch.Tensor) -> None:
    y = corrupt(x, NoiseConfig("gaussian", sigma=0.0), *_extremes(x), _gen())
    assert torch.equal(y, x)


@pytest.mark.parametrize("p", [0.05, 0.2, 0.5])
def test_salt_pepper_replaces_fraction_p_half_by_min_half_by_max(x: torch.Tensor, p: float) -> None:
    lo, hi = _extremes(x)
    # Extremes far from the data make replaced cells unambiguous.
    lo, hi = lo - 10, hi + 10
    y = corrupt(x, NoiseConfig("salt_pepper", p=p), lo, hi, _gen())
    at_min = y == lo.expand_as(y)
    at_max = y == hi.expand_as(y)
    replaced = at_min | at_max
    frac = replaced.float().mean().item()
    assert frac == pytest.approx(p, abs=0.006)
    share_max = at_max.sum().item() / replaced.sum().item()
    assert share_max == pytest.approx(0.5, abs=0.02)
    assert torch.equal(y[~replaced], x[~replaced])


def test_salt_pepper_uses_each_features_own_extremes(x: torch.Tensor) -> None:
    lo = torch.arange(SHAPE[2], dtype=torch.float32) - 100
    hi = torch.arange(SHAPE[2], dtype=torch.float32) + 100
    y = corrupt(x, NoiseConfig("salt_pepper", p=0.3), lo, hi, _gen())
    for f in range(SHAPE[2]):
        col = y[:, :, f]
        changed = col[col.abs() > 1]
        assert set(changed.unique().tolist()) == {f - 100.0, f + 100.0}


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
def test_masking_zeroes_fraction_p_and_keeps_the_rest(x: torch.Tensor, p: float) -> None:
    y = corrupt(x, NoiseConfig("masking", p=p), *_extremes(x), _gen())
    zeroed = (y == 0) & (x != 0)
    assert zeroed.float().mean().item() == pytest.approx(p, abs=0.006)
    assert torch.equal(y[~zeroed], x[~zeroed])


@pytest.mark.parametrize(
    "cfg",
    [
        NoiseConfig("none"),
        NoiseConfig("gaussian"),
        NoiseConfig("salt_pepper", p=0.3),
        NoiseConfig("masking", p=0.3),
    ],
)
def test_input_is_not_modified(x: torch.Tensor, cfg: NoiseConfig) -> None:
    before = x.clone()
    y = corrupt(x, cfg, *_extremes(x), _gen())
    assert torch.equal(x, before)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("kind", ["gaussian", "salt_pepper", "masking"])
def test_same_generator_seed_gives_same_corruption(x: torch.Tensor, kind: str) -> None:
    cfg = NoiseConfig(kind, p=0.3)  # type: ignore[arg-type]
    a = corrupt(x, cfg, *_extremes(x), _gen(7))
    b = corrupt(x, cfg, *_extremes(x), _gen(7))
    c = corrupt(x, cfg, *_extremes(x), _gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "gaussian", "sigma": -0.1}, "sigma"),
        ({"kind": "gaussian", "sigma": float("nan")}, "sigma"),
        ({"kind": "masking", "p": -0.01}, "p"),
        ({"kind": "masking", "p": 1.0}, "p"),
        ({"kind": "salt_pepper", "p": 1.5}, "p"),
        ({"kind": "blur"}, "kind"),
    ],
)
def test_invalid_params_raise_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        NoiseConfig(**kwargs)


def test_p_zero_is_allowed_and_changes_nothing(x: torch.Tensor) -> None:
    for kind in ("salt_pepper", "masking"):
        y = corrupt(x, NoiseConfig(kind, p=0.0), *_extremes(x), _gen())  # type: ignore[arg-type]
        assert torch.equal(y, x)
