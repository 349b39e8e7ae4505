"""The tuning grid (anomae/grid.py): --grid items, the default grid, its candidates and the
pipeline [tune] section."""

from __future__ import annotations

import pytest

from anomae.errors import PipelineError
from anomae.grid import TuneSection, candidate_pipeline, candidates, parse_grid
from anomae.pipeline import parse_pipeline


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["window=16,32"], {"window": [16, 32]}),
        (["hidden=8;64,16"], {"hidden": [[8], [64, 16]]}),
        (["noise=none,0.2", "center=off,ON"], {"noise": [0.0, 0.2], "center": [False, True]}),
    ],
)
def test_parse_grid(items: list[str], expected: dict) -> None:
    assert parse_grid(items) == expected


@pytest.mark.parametrize(
    ("item", "message"),
    [("depth=3", "AXIS=VALUES"), ("window=eight", "cannot read"), ("center=maybe", "e.g.")],
)
def test_parse_grid_names_the_bad_item(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_grid([item])
    assert item in str(err.value)


def test_default_grid_and_candidates() -> None:
    section = TuneSection()
    g = section.grid(8)
    assert g == {
        "window": [8, 32],
        "hidden": [[4], [64, 16]],
        "noise": [0.0, 0.2],
        "center": [False, True],
    }
    cands = candidates(section, 8)
    assert len(cands) == 16 and len(set(cands)) == 16


def test_a_candidate_keeps_its_own_code_size() -> None:
    # the grid's hidden is the candidate's, even under a recipe that sizes the code itself
    model = {"hidden": [8], "code": "features"}
    pipe = parse_pipeline({"data": {"train": "x.csv"}, "model": model})
    cand = candidates(TuneSection(), 8)[0]
    assert candidate_pipeline(pipe, cand).model == {"hidden": list(cand.hidden), "code": "fixed"}


def test_tune_section_in_a_pipeline() -> None:
    doc = {"data": {"train": "x.csv"}, "tune": {"window": [4, 8], "hidden": [[2], [8, 2]]}}
    pipe = parse_pipeline(doc, "p.toml")
    assert pipe.tune.window == (4, 8) and pipe.tune.hidden == ((2,), (8, 2))
    assert parse_pipeline({"data": {"train": "x.csv"}}).tune is None
    with pytest.raises(PipelineError, match=r"p.toml \[tune\]: unknown key\(s\) \['depth'\]"):
        parse_pipeline({**doc, "tune": {"depth": 3}}, "p.toml")
    with pytest.raises(PipelineError, match=r"\[tune\]: window lengths must be >= 2"):
        parse_pipeline({**doc, "tune": {"window": [1]}}, "p.toml")
    with pytest.raises(PipelineError, match=r"\[tune\]: unit must be 'global' or 'local'"):
        parse_pipeline({**doc, "tune": {"unit": "huge"}}, "p.toml")
