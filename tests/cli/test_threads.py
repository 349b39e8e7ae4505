"""``--threads`` of train/tune/run reaches torch while fitting; ``[train] threads`` too."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from anomae.cli import main
from anomae.errors import PipelineError
from anomae.pipeline import parse_pipeline
from anomae.train.config import train_config

pytestmark = pytest.mark.slow


def test_train_threads_reach_the_fit_and_the_card(
    small_demo: dict[str, Path], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    from anomae.modelfile import read_card

    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    model = tmp_path / "m.onnx"
    args = ["train", str(small_demo["train"]), "-o", str(model), "--threads", str(want)]
    args += ["--epochs", "1", "--method", "quantile", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert read_card(model).training["config"]["threads"] == want
    assert torch.get_num_threads() == before  # restored after the fit


def test_pipeline_train_threads() -> None:
    pipe = parse_pipeline({"data": {"train": "x.parquet"}, "train": {"threads": 1}}, "p.toml")
    assert train_config(pipe).threads == 1
    assert train_config(parse_pipeline({"data": {"train": "x.parquet"}})).threads == 0
    with pytest.raises(PipelineError, match=r"p.toml \[train\]: threads must be >= 0"):
        parse_pipeline({"data": {"train": "x.parquet"}, "train": {"threads": -1}}, "p.toml")
