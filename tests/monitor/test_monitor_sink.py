"""The JSON-lines event sink (anomae/monitor/sink.py)."""

from __future__ import annotations

from pathlib import Path

from anomae.monitor.sink import JsonlSink, repair_tail


def test_sink_repairs_a_partial_last_record(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    sink = JsonlSink(path)
    assert sink.repaired == len(b'{"c": ')
    sink.write(['{"d": 4}\n'])
    sink.close()
    assert path.read_text().splitlines() == ['{"a": 1}', '{"b": 2}', '{"d": 4}']
    path.write_bytes(b"no newline at all")
    assert repair_tail(path) == 17 and path.read_bytes() == b""
    assert repair_tail(tmp_path / "absent.jsonl") == 0
