"""`anomae score` into a folder (:mod:`anomae.score_dir`) against one file: seconds and
peak RSS of ``-o out.parquet``, ``-o out/`` (``group=K``) and ``-o out/ --partition-by
date`` on one generated dataset (``bench/score_size.py``'s: day files, every series in
each, 8 features, the reference model), each in a child process, in one session;
``--dask N`` adds both folder layouts on a LocalCluster of ``N`` one-thread workers
(its start-up included; peak RSS is then the driver's alone). Ratios are what to read:
the machines are shared.

    python bench/score_folder.py [--rows 1000000] [--series 200] [--days 10] [--dask 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from score_size import child, generate

CHILD = """
import json, sys, time
from anomae.score import ScoreOptions, score_files
from anomae.score_dir import score_to_folder
model, data, out, how, workers, parts = sys.argv[1:7]
opts = ScoreOptions(threshold=1e9, progress=False)
t0 = time.perf_counter()
if how == "file":
    s = score_files(model, [data], out + "/s.parquet", out + "/e.parquet", opts=opts, threads=1)
elif workers == "0":
    s = score_to_folder(model, [data], out + "/o/", opts=opts, threads=1,
                        partitions=int(parts), partition_by=how)
else:
    from anomae.score_cluster import dask_client
    with dask_client("local:" + workers) as c:
        s = score_to_folder(model, [data], out + "/o/", opts=opts, threads=1,
                            partitions=int(parts), partition_by=how, client=c)
sec = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"rows": s.n_rows, "seconds": sec, "hwm_kib": int(hwm)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--dask", type=int, default=0, metavar="WORKERS")
    ap.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "anomae-size"))
    a = ap.parse_args()
    from score_bench import reference_model_in

    folder = Path(a.folder)
    model = reference_model_in(folder)
    data = generate(folder, a.rows, a.series, a.days)
    runs = [("file", 0), ("group", 0), ("date", 0)]
    runs += [("group", a.dask), ("date", a.dask)] if a.dask else []
    print(f"{a.rows:,} rows, {a.series} series, {a.days} day files, --partitions "
          f"{a.partitions}, onnxruntime 1 thread per process")
    print(f"{'output':>24} {'seconds':>8} {'rows/s':>10} {'vs file':>8} {'peak RSS MiB':>12}")
    base = 0.0
    for how, w in runs:
        with tempfile.TemporaryDirectory(dir=folder) as out:
            r = child(CHILD, str(model), str(data), out, how, str(w), str(a.partitions))
        base = base or r["seconds"]
        name = "file" if how == "file" else f"folder {how}" + (f" dask {w}" if w else "")
        print(f"{name:>24} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>10,.0f} "
              f"{base / r['seconds']:>8.2f} {r['hwm_kib'] / 1024:>12,.0f}")


if __name__ == "__main__":
    main()
