"""TSB-AD's layout (Liu & Paparrizos, NeurIPS 2024: TSB-AD-U and TSB-AD-M) as cases.

One CSV per series, named ``[index]_[dataset]_id_[id]_[domain]_tr_[train rows]_1st_[first
anomaly row].csv``: every column but ``Label`` is a feature, ``Label`` is 0/1, and there is
no time column. TSB-AD's own runner drops rows with a missing value, trains semi-supervised
detectors on the first ``tr`` rows and scores the whole series. :func:`load_tsb` keeps its
training rows and scores what follows them: a case's train is rows ``[0, tr)``, its test
rows ``[tr, n)`` with their labels, so figures are over the test rows only (TSB-AD's
tables include the training rows, where few anomalies lie). Timestamps are row numbers as
seconds, as :func:`~anomae.eval.datasets.load_matrix` gives them.

    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "001_Demo_id_1_Sensor_tr_3_1st_4.csv").write_text(
    ...     "a,b,Label\\n1,2,0\\n2,3,0\\n3,4,0\\n4,5,0\\n9,0,1\\n")
    >>> [case] = load_tsb(root)
    >>> case.name, case.features, case.train.shape, case.test_label.tolist()
    ('tsb/001_Demo_id_1_Sensor', ('a', 'b'), (3, 2), [0, 1])
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from anomae.eval.datasets import Case, _binary, _existing_dir, _read_csv, _sorted

_NS = 1_000_000_000
_NAME = re.compile(r"_tr_(\d+)_1st_(\d+)$")


def load_tsb(root: Path | str) -> list[Case]:
    """Every ``*_tr_<n>_1st_<m>.csv`` in ``root`` (module docstring), in natural order."""
    root = _existing_dir(root, "TSB-AD")
    files = [p for p in _sorted(root, ".csv") if _NAME.search(p.stem)]
    if not files:
        raise FileNotFoundError(
            f"{root}: no TSB-AD files (<index>_<dataset>_id_<id>_<domain>_tr_<train rows>_1st_"
            "<first anomaly>.csv)"
        )
    return [_case(p) for p in files]


def _case(path: Path) -> Case:
    m = _NAME.search(path.stem)
    assert m is not None
    train_rows = int(m.group(1))
    frame = _read_csv(path)
    if "Label" not in frame.columns or frame.width < 2:
        raise ValueError(
            f"{path}: needs feature columns and a 'Label' column; it has {frame.columns}"
        )
    frame = frame.drop_nulls()  # as TSB-AD's runner: rows with a missing value go
    features = tuple(c for c in frame.columns if c != "Label")
    bad = [c for c in features if not frame[c].dtype.is_numeric()]
    if bad:
        raise ValueError(f"{path}: feature column(s) {bad} are not numbers")
    values = frame.select(features).to_numpy().astype(np.float32)
    label = _binary(frame["Label"].to_numpy(), path, "Label")
    n = values.shape[0]
    if not 0 < train_rows < n:
        raise ValueError(
            f"{path}: the name says {train_rows} training rows but the file has {n} rows "
            "(after dropping rows with a missing value): nothing to train on or to test"
        )
    stamps = np.arange(n, dtype=np.int64) * _NS
    return Case(
        name=f"tsb/{path.stem[: m.start()]}",
        features=features,
        train=values[:train_rows],
        test=values[train_rows:],
        test_label=label[train_rows:],
        test_timestamps=stamps[train_rows:],
        train_timestamps=stamps[:train_rows],
        meta={"source": str(path), "timestamps": "row number as seconds",
              "train_label": label[:train_rows]},  # fmt: skip
    )
