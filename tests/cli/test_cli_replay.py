"""``anomae replay`` (anomae/cli/replay.py), in subprocesses; the library is tested in
``tests/test_replay.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from test_replay import CSV


def test_cli_writes_a_file_and_reports(tmp_path: Path) -> None:
    src, out = tmp_path / "two.csv", tmp_path / "out" / "readings.jsonl"
    src.write_text(CSV.replace("00:01:00Z,b", "00:02:00Z,b"))
    r = run_cli(["replay", str(src), "--series-column", "machine", "--features", "rpm",
                 "-o", str(out)])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "replay: 4 readings of 2 series" in r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["values"] == {"rpm": 900.0}
    assert list(out.parent.iterdir()) == [out]  # no temporary left


@pytest.mark.parametrize(
    ("text", "message"),
    [(CSV.replace("2026-01-01T00:01:00Z,b", "2025-12-31T23:59:00Z,b"),  # b back in time
      "series 'b': timestamp 2025-12-31T23:59:00 at row 4 (line 5)"),
     (CSV.replace("1000.5", "fast"), "column 'rpm', row 3 (line 4)"),
     (CSV.replace("2026-01-01T00:01:30Z", "01/01/2026"), "column 'timestamp', row 3 (line 4)")],
)  # fmt: skip
def test_bad_input_names_file_column_row_and_keeps_the_output(
    tmp_path: Path, text: str, message: str
) -> None:
    src, out = tmp_path / "bad.csv", tmp_path / "readings.jsonl"
    src.write_text(text)
    out.write_text("previous\n")
    r = run_cli(["replay", str(src), "--series-column", "machine", "-o", str(out)])
    assert r.returncode != 0
    assert f"{src}: {message}" in r.stderr, r.stderr
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "readings.jsonl"]
