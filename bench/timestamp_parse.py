"""What the one timestamp rule costs the monitor's reading parser: readings/s through
:class:`anomae.monitor.readings.ReadingParser` for epoch-second numbers (the typed fast
path), epoch milliseconds with ``unit="ms"``, and RFC 3339 strings (the general path,
parsed by :func:`anomae.timestamps.parse_timestamp`); and the batch column parser on the
same values, per value.

    PYTHONPATH=. python bench/timestamp_parse.py [--n 200000]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

import polars as pl

from anomae.monitor.readings import ReadingParser
from anomae.monitor.sources.base import RawBatch
from anomae.timestamps import _timestamps

T0 = 1_767_571_260


def _payloads(n: int, kind: str) -> list[bytes]:
    out = []
    for i in range(n):
        t = T0 + i
        ts: object = {
            "epoch s": t,
            "epoch ms": t * 1000 + 123,
            "RFC 3339": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }[kind]
        out.append(json.dumps({"series": "m1", "ts": ts, "values": {"a": 1.0, "b": 2.0}}).encode())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    print(f"{'input':<10} {'stream readings/s':>18} {'batch values/s':>15}")
    for kind, unit in (("epoch s", None), ("epoch ms", "ms"), ("RFC 3339", None)):
        payloads = _payloads(n, kind)
        parser = ReadingParser(("a", "b"), unit=unit)
        best = 0.0
        for _ in range(3):
            t = time.perf_counter()
            out = parser.parse([RawBatch(payloads, None, 0.0)])
            best = max(best, n / (time.perf_counter() - t))
        assert len(out) == n, parser.invalid
        col = pl.Series("ts", [json.loads(p)["ts"] for p in payloads])
        if col.dtype != pl.String:
            col = col.cast(pl.Int64)
        t = time.perf_counter()
        _timestamps(col, "bench", False, unit)
        batch = n / (time.perf_counter() - t)
        print(f"{kind:<10} {best:>18,.0f} {batch:>15,.0f}")


if __name__ == "__main__":
    main()
