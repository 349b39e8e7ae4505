from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from anomae.train.config import ArchConfig, NoiseConfig, SparsityConfig, TrainConfig
from anomae.train.fit import FitResult, fit, kl_sparsity, l1_sparsity

LENGTH, FEATURES = 16, 3
TINY_DENSE = ArchConfig(kind="dense", hidden=(32, 4))
TINY_CONV = ArchConfig(kind="conv", hidden=(4,), channels=(8,), kernel=3)


def sine_windows(n: int = 384, seed: int = 0) -> np.ndarray:
    """Windows of three correlated sines (shared phase, fixed gains/offsets) plus a little
    noise: low-dimensional, so a 4-unit code reconstructs them well."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH, dtype=np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    base = np.sin(2 * np.pi * t / 8 + phase)  # [n, length]
    gains = np.array([1.0, -0.7, 0.5], dtype=np.float32)
    offsets = np.array([0.0, 0.3, -0.2], dtype=np.float32)
    w = base[:, :, None] * gains + offsets + 0.05 * rng.normal(size=(n, LENGTH, FEATURES))
    return w.astype(np.float32)


def quick(**kw) -> TrainConfig:
    base = {"arch": TINY_DENSE, "epochs": 3, "batch_size": 32, "lr": 1e-2, "progress": False}
    return TrainConfig(**{**base, **kw})


def _kl_by_hand(code: np.ndarray, rho: float, beta: float) -> float:
    rho_hat = np.clip(code.mean(axis=0), 1e-6, 1 - 1e-6)
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    return float(beta * kl.sum())


@pytest.mark.parametrize(
    ("code", "rho", "beta"),
    [
        ([[0.1, 0.9], [0.3, 0.5]], 0.05, 1e-3),
        ([[0.1, 0.9], [0.3, 0.5]], 0.5, 1.0),
        ([[0.01, 0.02, 0.5]], 0.2, 3.0),
        ([[0.0, 1.0], [0.0, 1.0]], 0.05, 1.0),  # clamped: finite despite log(0)
        ([[0.2, 0.8], [0.3, 0.7]], 0.25, 2.0),
    ],
)
def test_kl_sparsity_matches_hand_formula(code: list, rho: float, beta: float) -> None:
    c = np.array(code, dtype=np.float64)
    got = kl_sparsity(torch.tensor(c), rho, beta).item()
    assert math.isfinite(got)
    assert got == pytest.approx(_kl_by_hand(c, rho, beta), rel=1e-9)


def test_kl_sparsity_is_zero_when_mean_activation_equals_rho() -> None:
    code = torch.tensor([[0.1, 0.3], [0.3, 0.1]], dtype=torch.float64)  # both means 0.2
    assert kl_sparsity(code, 0.2, 5.0).item() == pytest.approx(0.0, abs=1e-12)


def test_kl_sparsity_known_value() -> None:
    # rho=0.5, rho_hat=0.25: 0.5 log 2 + 0.5 log(2/3)
    code = torch.tensor([[0.25]], dtype=torch.float64)
    want = 2.0 * (0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert kl_sparsity(code, 0.5, 2.0).item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    ("code", "beta", "want"),
    [
        ([[1.0, -2.0], [0.5, 0.5]], 1.0, (3.0 + 1.0) / 2),
        ([[1.0, -2.0], [0.5, 0.5]], 0.1, 0.2),
        ([[0.0, 0.0, 0.0]], 3.0, 0.0),
        ([[-4.0]], 0.5, 2.0),
    ],
)
def test_l1_sparsity_matches_hand_value(code: list, beta: float, want: float) -> None:
    assert l1_sparsity(torch.tensor(code), beta).item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("arch", [TINY_DENSE, TINY_CONV], ids=["dense", "conv"])
def test_training_reduces_the_loss(arch: ArchConfig) -> None:
    res = fit(sine_windows(), quick(arch=arch, epochs=15, patience=15))
    first = res.history[0]["val_loss"]
    assert res.best_val_loss < 0.5 * first
    assert res.history[-1]["val_loss"] < 0.5 * first
    assert isinstance(res, FitResult) and not res.model.training
    assert all(p.device.type == "cpu" for p in res.model.parameters())
    assert set(res.history[0]) == {"epoch", "train_loss", "val_loss", "penalty", "seconds"}


def test_best_weights_are_restored() -> None:
    w = sine_windows()
    res = fit(w, quick(epochs=6, val_fraction=0.25))
    x_val_loss = res.best_val_loss
    assert x_val_loss == min(h["val_loss"] for h in res.history)
    assert res.history[res.best_epoch - 1]["val_loss"] == x_val_loss


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"noise": NoiseConfig("gaussian", sigma=0.2)},
        {"noise": NoiseConfig("salt_pepper", p=0.2), "arch": TINY_CONV},
        {
            "noise": NoiseConfig("masking", p=0.2),
            "sparsity": SparsityConfig("kl", rho=0.1, beta=0.1),
            "arch": ArchConfig(hidden=(32, 4), code_activation="sigmoid"),
        },
    ],
    ids=["plain", "gaussian", "salt_pepper-conv", "masking-kl"],
)
def test_same_seed_gives_identical_weights(extra: dict) -> None:
    w = sine_windows(128)
    a = fit(w, quick(**extra)).model.state_dict()
    b = fit(w, quick(**extra)).model.state_dict()
    c = fit(w, quick(seed=1, **extra)).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fit_does_not_modify_the_windows() -> None:
    w = sine_windows(64)
    w[0, 0, 0] = np.nan
    before = w.copy()
    fit(w, quick(epochs=1, noise=NoiseConfig("masking", p=0.5)))
    np.testing.assert_array_equal(w, before)


@pytest.mark.parametrize("noise", ["none", "gaussian", "salt_pepper", "masking"])
def test_missing_readings_do_not_make_the_loss_nan(noise: str) -> None:
    w = sine_windows(256)
    rng = np.random.default_rng(1)
    w[rng.random(w.shape) < 0.1] = np.nan
    w[:5] = np.nan  # whole windows missing
    w[:, :, 2] = np.nan  # a whole feature missing
    res = fit(w, quick(epochs=3, noise=NoiseConfig(noise, p=0.2)))  # type: ignore[arg-type]
    for row in res.history:
        assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
    assert all(torch.isfinite(p).all() for p in res.model.parameters())


def test_sparsity_penalty_is_reported_in_training_only() -> None:
    sp = SparsityConfig("l1", beta=0.01)
    res = fit(sine_windows(128), quick(sparsity=sp))
    assert all(row["penalty"] > 0 for row in res.history)
    plain = fit(sine_windows(128), quick())
    assert all(row["penalty"] == 0 for row in plain.history)


@pytest.mark.parametrize("code_activation", ["linear", "relu"])
def test_kl_without_sigmoid_code_raises(code_activation: str) -> None:
    cfg = quick(
        arch=ArchConfig(hidden=(8, 2), code_activation=code_activation),  # type: ignore[arg-type]
        sparsity=SparsityConfig("kl"),
    )
    with pytest.raises(ValueError, match="sparsity 'kl' needs code_activation = 'sigmoid'"):
        fit(sine_windows(32), cfg)


@pytest.mark.parametrize(
    ("n", "val_fraction", "n_val"),
    [(100, 0.1, 10), (100, 0.25, 25), (2, 0.1, 1), (5, 0.0, 1), (10, 0.95, 9), (33, 0.1, 3)],
)
def test_val_split_sizes(n: int, val_fraction: float, n_val: int) -> None:
    res = fit(sine_windows(n), quick(epochs=1, val_fraction=val_fraction))
    assert (res.n_train, res.n_val) == (n - n_val, n_val)


@pytest.mark.parametrize("n", [0, 1])
def test_too_few_windows_raise(n: int) -> None:
    with pytest.raises(ValueError, match="more data is needed"):
        fit(sine_windows(2)[:n], quick())


@pytest.mark.parametrize("patience", [1, 2, 5])
def test_early_stopping_when_val_stops_improving(patience: int) -> None:
    res = fit(sine_windows(64), quick(lr=0.0, epochs=50, patience=patience))
    assert len(res.history) == patience + 1
    assert res.best_epoch == 1


def test_on_epoch_receives_each_history_row() -> None:
    rows: list[dict[str, float]] = []
    res = fit(sine_windows(64), quick(), on_epoch=rows.append)
    assert rows == res.history
    assert [r["epoch"] for r in rows] == [1.0, 2.0, 3.0]


def test_progress_prints_one_line_per_epoch_when_not_a_tty(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fit(sine_windows(64), quick(progress=True))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch 3/3")


@pytest.mark.parametrize("name", ["cuda", "cuda:1"])
def test_cuda_without_cuda_is_a_clear_error(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        fit(sine_windows(8), quick(device=name))


def test_auto_device_and_bad_device_name() -> None:
    res = fit(sine_windows(16), quick(device="auto", epochs=1))
    assert res.device == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        fit(sine_windows(16), quick(device="tpu"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": -1.0},
        {"val_fraction": 1.0},
        {"patience": 0},
        {"weight_decay": -0.1},
    ],
)
def test_invalid_train_config_raises(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TrainConfig(**kwargs)


def test_threads_hold_while_fitting_and_are_restored() -> None:
    before = torch.get_num_threads()
    target = 2 if before == 1 else 1
    seen: list[int] = []
    fit(
        sine_windows(64),
        quick(threads=target),
        on_epoch=lambda _: seen.append(torch.get_num_threads()),
    )
    assert seen == [target] * 3
    assert torch.get_num_threads() == before
    seen.clear()
    fit(sine_windows(64), quick(), on_epoch=lambda _: seen.append(torch.get_num_threads()))
    assert seen == [before] * 3  # 0: torch's own choice, untouched


def test_bad_threads_and_devices_are_user_errors() -> None:
    from anomae.errors import AnomaeError
    from anomae.train.fit import DeviceError, resolve_device

    with pytest.raises(ValueError, match=r"threads must be >= 0"):
        quick(threads=-1)
    with pytest.raises(DeviceError, match=r"'cpu', 'cuda', 'cuda:N' or 'auto', got 'tpu'") as err:
        resolve_device("tpu")
    assert isinstance(err.value, AnomaeError) and isinstance(err.value, ValueError)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")
