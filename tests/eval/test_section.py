"""The [benchmark] section (anomae/eval/section.py)."""

from __future__ import annotations

import pytest

from anomae.eval.section import BenchmarkSection


def test_defaults() -> None:
    b = BenchmarkSection()
    assert (b.dataset, b.protocol, b.limit) == ("skab", "per_file", 0)
    assert "pca" in b.baselines


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"dataset": "kdd"}, "dataset must be skab, nab, matrix, tsb or labelled, got 'kdd'"),
     ({"baselines": ("pca", "lstm")}, r"unknown baselines \['lstm'\]")],
)  # fmt: skip
def test_refuses_unknown_values(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BenchmarkSection(**kw)  # type: ignore[arg-type]


def test_pipeline_parses_it_without_the_harness() -> None:
    """anomae.pipeline reads [benchmark] without importing anomae.eval.benchmark, which
    imports the pipeline back (the import cycle this module breaks)."""
    import subprocess
    import sys

    pytest.importorskip("torch")  # parse_pipeline validates [model] with train/
    code = (
        "import sys\n"
        "from anomae.pipeline import parse_pipeline\n"
        "p = parse_pipeline({'benchmark': {'dataset': 'nab', 'limit': 2}})\n"
        "assert type(p.benchmark).__module__ == 'anomae.eval.section', type(p.benchmark)\n"
        "assert p.benchmark.limit == 2\n"
        "assert 'anomae.eval.benchmark' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
