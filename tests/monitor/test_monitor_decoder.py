"""The monitor's typed reading decoder (anomae/monitor/decoder.py)."""

from __future__ import annotations

import msgspec
import pytest

from anomae.monitor.decoder import typed_decoder


def test_decodes_features_in_model_order() -> None:
    decode, row = typed_decoder(("temp", "rpm", "flow rate"))
    r = decode(b'{"ts": "2026-01-01T00:00:00Z", "seq": 3, '
               b'"values": {"rpm": 900, "flow rate": 1.5, "temp": null, "other": 1}}')  # fmt: skip
    assert (r.series, r.ts, r.seq) == (None, "2026-01-01T00:00:00Z", 3)
    assert row(r.values) == (None, 900.0, 1.5)


def test_single_feature_row_is_a_tuple() -> None:
    decode, row = typed_decoder(("x",))
    r = decode(b'{"ts": 1, "values": {"x": 2}}')
    assert row(r.values) == (2.0,)


@pytest.mark.parametrize(
    "line",
    [b'{"values": {"x": 1}}',  # no ts
     b'{"ts": 1, "values": {"x": "high"}}',  # a string value
     b'{"ts": 1, "values": {"x": 1}, "seq": 1.5}',
     b'{"ts": 1, "values": {"x": 1e999}}',  # out of float range
     b'not json'],
)  # fmt: skip
def test_refuses_what_the_general_path_must_judge(line: bytes) -> None:
    decode, _ = typed_decoder(("x",))
    with pytest.raises(msgspec.DecodeError):
        decode(line)

