"""Pipeline files: every mistake is an error naming the file, section and key."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from anomae.pipeline import PipelineError, load_pipeline, parse_pipeline, train_config  # noqa: E402

BASE = '[data]\ntrain = "t.parquet"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[dta]\n", "unknown section(s) ['dta']"),
        (BASE + "[window]\nlenght = 3\n", "[window]: unknown key(s) ['lenght']"),
        (BASE + '[window]\nlength = "32"\n', "key 'length' must be int, got str"),
        (BASE + "[window]\nlength = 0\n", "window length must be >= 1"),
        (BASE + "[model]\nhidden = 64\n", "key 'hidden' must be a list"),
        (BASE + '[model]\nkind = "lstm"\n', "arch kind must be 'dense' or 'conv'"),
        (BASE + '[noise]\nkind = "pink"\n', "[noise]"),
        (BASE + '[sparsity]\nkind = "kl"\n', 'code_activation = "sigmoid"'),
        (BASE + "[train]\nepochs = 0\n", "epochs must be >= 1"),
        (BASE + "[train]\nepochs = true\n", "key 'epochs' must be int"),
        (BASE + '[train]\narch = "dense"\n', "have sections of their own"),
        ("[window]\nlength = 8\n", "'train' (file or list of files) is required"),
        (BASE + "[calibrate]\nq = 2\n", "q must be in (0, 1)"),
        (BASE + "[calibrate]\nholdout = 1.0\n", "holdout must be in [0, 1)"),
    ],
)
def test_bad_pipelines(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PipelineError) as err:
        load_pipeline(path)
    assert message in str(err.value)
    assert "bad.toml" in str(err.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="does not exist"):
        load_pipeline(tmp_path / "nope.toml")
    bad = tmp_path / "x.toml"
    bad.write_text("[data\n")
    with pytest.raises(PipelineError, match="not valid TOML"):
        load_pipeline(bad)


def test_sections_reach_the_train_config() -> None:
    pipe = parse_pipeline(
        {
            "data": {"train": "t.parquet"},
            "model": {"kind": "conv", "hidden": [16, 4], "code_activation": "sigmoid"},
            "noise": {"kind": "salt_pepper", "p": 0.2},
            "sparsity": {"kind": "kl", "rho": 0.1, "beta": 0.01},
            "train": {"epochs": 7, "lr": 0.01, "device": "cpu"},
        }
    )
    cfg = train_config(pipe)
    assert cfg.arch.kind == "conv" and cfg.arch.hidden == (16, 4)
    assert cfg.noise.kind == "salt_pepper" and cfg.noise.p == 0.2
    assert cfg.sparsity.kind == "kl" and cfg.sparsity.rho == 0.1
    assert cfg.epochs == 7 and cfg.lr == 0.01
    assert pipe.data.train == ("t.parquet",)


def test_shipped_pipelines_parse() -> None:
    paths = sorted(Path(__file__).resolve().parents[1].glob("pipelines/*.toml"))
    assert {p.stem for p in paths} >= {"demo", "skab", "skab_anomaly_free", "nab"}
    for path in paths:
        pipe = load_pipeline(path)
        assert pipe.data.train or pipe.benchmark is not None, path
