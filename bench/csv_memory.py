"""Peak memory of reading a CSV dataset in batches (:func:`anomae.batches.read_batches`, as
``anomae score`` reads it) with a slow consumer, for CSV files of growing size: the peak
should not grow with the file. Each size runs in a child process (``VmHWM``); the file is
made from ``bench/score_size.py``'s generated Parquet day files under ``--folder``.

    python bench/csv_memory.py [--rows 2000000 4000000 8000000] [--sleep 0.3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from anomae.batches import read_batches
from anomae.dataset import plan_dataset
from anomae.io import TableSpec
path, pause = sys.argv[1], float(sys.argv[2])
feats = [f"s{i}" for i in range(8)]
ds = plan_dataset([path], TableSpec(), feats)
n = 0
t0 = time.perf_counter()
for chunks, rows in read_batches(ds.files[0], TableSpec(), feats, False, 262_144):
    n += rows
    time.sleep(pause * rows / 262_144)  # a scorer takes its time over each batch
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"rows": n, "seconds": time.perf_counter() - t0, "hwm_kib": int(hwm)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[2_000_000, 4_000_000, 8_000_000])
    ap.add_argument("--sleep", type=float, default=0.3, help="seconds per 262k rows read")
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "anomae-size"))
    a = ap.parse_args()
    import polars as pl

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from score_size import generate

    src = generate(Path(a.folder), max(a.rows), 1000, 30)
    print(f"{'rows':>12} {'CSV MiB':>8} {'seconds':>8} {'peak RSS MiB':>12}")
    for n in a.rows:
        csv = Path(a.folder) / f"csv-{n}.csv"
        if not csv.exists():
            pl.scan_parquet(str(src / "*" / "*.parquet")).head(n).sink_csv(csv)
        r = subprocess.run([sys.executable, "-c", CHILD, str(csv), str(a.sleep)],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode:
            raise SystemExit(r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{out['rows']:>12,} {csv.stat().st_size / 2**20:>8,.0f} {out['seconds']:>8.1f} "
              f"{out['hwm_kib'] / 1024:>12,.0f}")


if __name__ == "__main__":
    main()
