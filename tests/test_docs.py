"""The reference docs stay true to the code: every pipeline key and every Grafana panel is
documented, and nothing documented is unknown."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
NESTED = {"arch", "noise", "sparsity"}  # TrainConfig fields that are sections of their own


def section_keys() -> dict[str, set[str]]:
    """The keys of every section the pipeline parser knows, from the dataclasses it builds."""
    from anomae.eval.section import BenchmarkSection
    from anomae.grid import TuneSection
    from anomae.likelihood import Likelihood
    from anomae.pipeline import SECTIONS
    from anomae.train.config import ArchConfig, NoiseConfig, SparsityConfig, TrainConfig

    own: dict[str, type] = {
        "model": ArchConfig, "noise": NoiseConfig, "sparsity": SparsityConfig,
        "train": TrainConfig, "likelihood": Likelihood, "benchmark": BenchmarkSection,
        "tune": TuneSection,
    }  # fmt: skip
    out = {}
    for name, cls in SECTIONS.items():
        keys = {f.name for f in dataclasses.fields(cls or own[name])}
        out[name] = keys - NESTED if name == "train" else keys
    return out


def documented_keys(text: str) -> dict[str, set[str]]:
    """``## [section]`` headings and the first-column `key` of the table rows under each."""
    out: dict[str, set[str]] = {}
    section = None
    for line in text.splitlines():
        if m := re.match(r"^## \[(\w+)\]\s*$", line):
            section = m.group(1)
            out[section] = set()
        elif section and (m := re.match(r"^\| `(\w+)` \|", line)):
            out[section].add(m.group(1))
    return out


def test_pipeline_doc_lists_every_key_and_no_other() -> None:
    doc = documented_keys((DOCS / "pipeline.md").read_text())
    code = section_keys()
    assert sorted(doc) == sorted(code), "sections documented vs parsed"
    for name in code:
        assert doc[name] == code[name], (
            f"[{name}]: undocumented {sorted(code[name] - doc[name])}, "
            f"documented but unknown {sorted(doc[name] - code[name])}"
        )


def test_documented_keys_are_found_by_the_parser(tmp_path: Path) -> None:
    """The doc check can fail: a key renamed in the doc is reported."""
    text = (DOCS / "pipeline.md").read_text().replace("| `cooldown` |", "| `cool_down` |")
    assert documented_keys(text)["score"] == section_keys()["score"] - {"cooldown"} | {"cool_down"}


def grafana_titles() -> set[str]:
    titles = set()
    for path in sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json")):
        for p in json.loads(path.read_text())["panels"]:
            titles |= {p["title"]} | {q["title"] for q in p.get("panels", [])}
    return titles


def test_every_grafana_panel_is_documented() -> None:
    text = (DOCS / "grafana.md").read_text()
    documented = set(re.findall(r"^\| \*\*(.+?)\*\* \|", text, flags=re.M))
    titles = grafana_titles()
    assert len(titles) > 10
    assert titles <= documented, f"panels not in docs/grafana.md: {sorted(titles - documented)}"
    assert documented <= titles, f"documented panels that do not exist: {documented - titles}"


def test_readme_links_the_docs() -> None:
    readme = (REPO / "README.md").read_text()
    for doc in ("docs/choosing.md", "docs/pipeline.md", "docs/grafana.md", "docs/benchmarks.md"):
        assert f"]({doc})" in readme, doc
        assert (REPO / doc).is_file()
