"""Public benchmarks and our own labelled files, loaded into one structure: :class:`Case`.

A case is one series split into normal training rows and labelled test rows, ready for any
detector or baseline. Loaders follow each benchmark's published protocol:

- SKAB (:func:`load_skab`): per file, the first 400 rows train and the rest test;
- NAB (:func:`load_nab`): the probationary period trains, the rest is scored;
- SMD-style matrices (:func:`load_matrix`) and our CSV/Parquet files (:func:`load_labelled`).

Missing or garbled files raise ``FileNotFoundError`` or ``ValueError`` naming the file.

    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for part, text in [("train", "1,2\\n2,4\\n3,6\\n"), ("test", "4 8\\n5 0\\n"),
    ...                    ("test_label", "0\\n1\\n")]:
    ...     (root / part).mkdir()
    ...     _ = (root / part / "m1.txt").write_text(text)
    >>> [case] = load_matrix(root)
    >>> case.train.shape, case.test.tolist(), case.test_label.tolist()
    ((3, 2), [[4.0, 8.0], [5.0, 0.0]], [0, 1])
    >>> find_data("no-such-benchmark") is None
    True
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from anomae.eval.nab import nab_window_rows
from anomae.io import TableSpec, read_series
from anomae.timestamps import _timestamps

__all__ = [
    "Case",
    "find_data",
    "load_labelled",
    "load_matrix",
    "load_nab",
    "load_skab",
    "nab_probation",
]

SKAB_GROUPS = ("valve1", "valve2", "other")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # SKAB and NAB both; naive, read as UTC
NAB_CATEGORIES = ("realKnownCause", "realAWSCloudwatch")
MATRIX_SUFFIXES = (".txt", ".csv", ".npy")
_NS = 1_000_000_000


@dataclass
class Case:
    """One series of a benchmark: training rows, test rows and the test labels.

    ``windows`` (NAB) are labelled anomaly windows as inclusive ``(start_row, end_row)``
    indices into the *full* series, ``train`` then ``test``; NAB scoring needs them there
    because the probationary period (``probation`` rows = ``len(train)``) counts in its
    timing. ``meta`` holds what a loader knows beyond that (source file, protocol, ...).
    """

    name: str
    features: tuple[str, ...]
    train: np.ndarray  # float32 [rows, F], normal or mostly normal
    test: np.ndarray  # float32 [rows, F]
    test_label: np.ndarray  # int8 [rows], 1 = anomaly
    test_timestamps: np.ndarray  # int64 ns since epoch
    train_timestamps: np.ndarray  # int64 ns since epoch
    windows: list[tuple[int, int]] = field(default_factory=list)
    probation: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def find_data(name: str, data: str | Path | None = None) -> Path | None:
    """Where benchmark ``name`` lives, or ``None`` when it is not on this machine.

    ``data`` (a ``--data`` option) may be the benchmark folder itself or a folder holding
    ``<name>/``; a ``data`` that does not exist is an error, since the caller asked for it.
    Without it, look in ``shared/datasets/<name>`` beside the repository checkout.
    """
    if data is not None:
        path = Path(data)
        if (path / name).is_dir():
            return path / name
        if path.exists():
            return path
        raise FileNotFoundError(f"{path}: no such data folder for benchmark {name!r}")
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / name
    return shared if shared.is_dir() else None


def load_skab(
    root: Path | str,
    protocol: Literal["per_file", "anomaly_free"] = "per_file",
    train_rows: int = 400,
) -> list[Case]:
    """SKAB's 34 labelled experiments (``valve1/``, ``valve2/``, ``other/``), in file order.

    ``per_file`` is the official leaderboard protocol: the first ``train_rows`` rows of each
    file train and the rest test. Beware: in ``other/2.csv`` 296 of the first 400 rows are
    labelled anomalous (``meta["train_label"]`` keeps them). ``anomaly_free`` trains every
    case on ``anomaly-free/anomaly-free.csv`` and tests on the whole labelled file. The
    ``changepoint`` column is kept as ``meta["test_changepoint"]``.
    """
    if protocol not in ("per_file", "anomaly_free"):
        raise ValueError(f"unknown SKAB protocol {protocol!r}; use 'per_file' or 'anomaly_free'")
    root = _existing_dir(root, "SKAB")
    files = [p for g in SKAB_GROUPS if (root / g).is_dir() for p in _sorted(root / g, ".csv")]
    if not files:
        raise FileNotFoundError(f"{root}: no SKAB files in {', '.join(SKAB_GROUPS)}/")
    free = None
    if protocol == "anomaly_free":
        free = _read_skab(root / "anomaly-free" / "anomaly-free.csv", labelled=False)
    cases = []
    for path in files:
        ts, x, features, cols = _read_skab(path, labelled=True)
        if free is not None and free[2] != features:
            raise ValueError(f"{path}: features {features} differ from anomaly-free.csv")
        name = f"skab/{path.parent.name}/{path.stem}"
        meta: dict[str, Any] = {"source": str(path), "protocol": protocol}
        if free is not None:
            ts_train, train, cut = free[0], free[1], 0
            meta["train_source"] = str(root / "anomaly-free" / "anomaly-free.csv")
        else:
            if x.shape[0] <= train_rows:
                raise ValueError(f"{path}: {x.shape[0]} rows, need more than {train_rows}")
            ts_train, train, cut = ts[:train_rows], x[:train_rows], train_rows
            meta["train_label"] = cols["anomaly"][:cut]
        meta["test_changepoint"] = cols["changepoint"][cut:]
        cases.append(
            Case(
                name, features, train, x[cut:], cols["anomaly"][cut:], ts[cut:], ts_train, meta=meta
            )
        )
    return cases


def nab_probation(n_rows: int) -> int:
    """NAB's probationary period: ``min(floor(0.15 * n_rows), 750)`` rows, never scored."""
    return min(math.floor(0.15 * n_rows), 750)


def load_nab(root: Path | str, categories: Sequence[str] = NAB_CATEGORIES) -> list[Case]:
    """NAB series of the given categories that are on disk, labelled from its windows.

    NAB is streaming: a detector may learn from the probationary period and is scored on the
    rest, so ``train`` is those rows and ``test`` the remainder. ``windows`` stay indexed on
    the full series, as NAB's scorer counts them. Rows keep file order even where timestamps
    repeat or step back (four files have daylight-saving artefacts); a row is in a window
    when its timestamp lies within the window's bounds, as NAB's labeller decides.
    """
    root = _existing_dir(root, "NAB")
    label_file = root / "labels" / "combined_windows.json"
    if not label_file.is_file():
        raise FileNotFoundError(f"{label_file}: NAB label file not found")
    try:
        labels = json.loads(label_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{label_file}: not valid JSON: {err}") from err
    present = [c for c in categories if (root / c).is_dir()]
    if not present:
        raise FileNotFoundError(f"{root}: none of the NAB categories {list(categories)} found")
    cases = []
    for category in present:
        for path in _sorted(root / category, ".csv", natural=False):
            key = f"{category}/{path.name}"
            if key not in labels:
                raise ValueError(f"{path}: no entry {key!r} in {label_file}")
            cases.append(_nab_case(path, key, labels[key], label_file))
    return cases


def load_matrix(root: Path | str) -> list[Case]:
    """SMD-style folders ``train/``, ``test/``, ``test_label/`` of ``<machine>.txt|.csv|.npy``.

    Text files hold comma- or whitespace-separated numbers, one row per line. These formats
    carry no time, so timestamps are row numbers as seconds, the test following the train.
    """
    root = _existing_dir(root, "matrix")
    machines = [p.stem for p in _sorted(root / "test", *MATRIX_SUFFIXES)]
    if not machines:
        raise FileNotFoundError(f"{root / 'test'}: no test files ({', '.join(MATRIX_SUFFIXES)})")
    cases = []
    for m in machines:
        train, test, label = (
            _matrix(_one(root / part, m)) for part in ("train", "test", "test_label")
        )
        label_path = _one(root / "test_label", m)
        if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
            raise ValueError(
                f"{root}/*/{m}: train {train.shape} and test {test.shape} differ in columns"
            )
        if label.size != test.shape[0] or (label.ndim == 2 and label.shape[1] != 1):
            raise ValueError(f"{label_path}: {label.shape} labels for {test.shape[0]} test rows")
        n = train.shape[0]
        cases.append(
            Case(
                name=f"{root.name}/{m}",
                features=tuple(f"f{j}" for j in range(train.shape[1])),
                train=train.astype(np.float32),
                test=test.astype(np.float32),
                test_label=_binary(label.reshape(-1), label_path),
                test_timestamps=np.arange(n, n + test.shape[0], dtype=np.int64) * _NS,
                train_timestamps=np.arange(n, dtype=np.int64) * _NS,
                meta={"source": str(root), "timestamps": "row number as seconds"},
            )
        )
    return cases


def load_labelled(
    path_train: str | Path | Sequence[str | Path],
    path_test: str | Path | Sequence[str | Path],
    spec: TableSpec = TableSpec(),
) -> list[Case]:
    """Our own labelled CSV/Parquet (read by :func:`anomae.io.read_series`): a case per series.

    Test series are paired with the training series of the same name; when each side holds a
    single series they pair whatever their names (files named ``pump_train``/``pump_test``).
    Every test row needs a 0/1 label.
    """
    train_series, features = read_series(path_train, spec)
    test_series, _ = read_series(path_test, spec, features=features)
    by_name = {s.name: s for s in train_series}
    cases = []
    for s in test_series:
        t = train_series[0] if len(train_series) == len(test_series) == 1 else by_name.get(s.name)
        if t is None:
            raise ValueError(f"{s.source}: series {s.name!r} has no training rows in {path_train}")
        if s.labels is None:
            raise ValueError(f"{s.source}: no label column {spec.label!r}; test rows need labels")
        unknown = int((s.labels < 0).sum())
        if unknown:
            raise ValueError(f"{s.source}: series {s.name!r} has {unknown} rows without a label")
        meta: dict[str, Any] = {"source": s.source, "train_source": t.source}
        if t.labels is not None:
            meta["train_label"] = t.labels
        cases.append(
            Case(
                s.name,
                features,
                t.values,
                s.values,
                s.labels.astype(np.int8),
                s.timestamps,
                t.timestamps,
                meta=meta,
            )
        )
    return cases


def _existing_dir(root: Path | str, what: str) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: {what} data folder not found")
    return path


def _sorted(folder: Path, *suffixes: str, natural: bool = True) -> list[Path]:
    # Natural order puts valve1/2 before valve1/10 and machine-1-2 before machine-1-10; NAB's
    # hex ids (ec2_cpu_utilization_5f5533) read as numbers that way, so NAB sorts by name.
    def key(p: Path) -> list[Any]:
        parts = re.split(r"(\d+)", p.stem) if natural else [p.name]
        return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in parts]

    return sorted((p for p in folder.glob("*") if p.suffix in suffixes and p.is_file()), key=key)


def _read_csv(path: Path, separator: str = ",") -> pl.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        # Whole-file type inference: a stray text cell then shows up as a String column.
        frame = pl.read_csv(path, separator=separator, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read as CSV: {err}") from err
    if frame.height == 0:
        raise ValueError(f"{path}: no data rows")
    return frame


def _need(frame: pl.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; the file has {frame.columns}")


def _times(frame: pl.DataFrame, column: str, fmt: str, path: Path) -> np.ndarray:
    """Int64 ns since epoch, parsed as :mod:`anomae.io` parses them (naive times are UTC)."""
    col = frame[column]
    if col.dtype != pl.String:
        raise ValueError(f"{path}: column {column!r} is {col.dtype}, expected text like {fmt}")
    return _timestamps(col, str(path), True)  # the one parser (anomae.timestamps)


def _floats(frame: pl.DataFrame, columns: Sequence[str], path: Path) -> np.ndarray:
    for c in columns:
        if not frame[c].dtype.is_numeric():
            bad = frame[c].cast(pl.Float64, strict=False).is_null() & frame[c].is_not_null()
            row = int(bad.arg_true()[0]) if bad.any() else 0
            raise ValueError(
                f"{path}: column {c!r}, row {row + 1}: {frame[c][row]!r} is not a number"
            )
    out = frame.select(pl.col(c).cast(pl.Float32) for c in columns).to_numpy()
    return np.ascontiguousarray(out, dtype=np.float32)


def _binary(values: np.ndarray, path: Path, column: str = "label") -> np.ndarray:
    ok = (values == 0) | (values == 1)
    if not ok.all():
        row = int(np.argmin(ok))
        raise ValueError(
            f"{path}: {column} row {row + 1} is {values[row].item()!r}, expected 0 or 1"
        )
    return values.astype(np.int8)


def _read_skab(
    path: Path, labelled: bool
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], dict[str, np.ndarray]]:
    """Timestamps, features, feature names and label columns of one SKAB file."""
    frame = _read_csv(path, separator=";")
    label_cols = ("anomaly", "changepoint") if labelled else ()
    _need(frame, ["datetime", *label_cols], path)
    features = tuple(c for c in frame.columns if c not in ("datetime", "anomaly", "changepoint"))
    if not features:
        raise ValueError(f"{path}: no feature columns besides datetime/anomaly/changepoint")
    labels = {c: _binary(_floats(frame, [c], path)[:, 0], path, c) for c in label_cols}
    return (
        _times(frame, "datetime", TIME_FORMAT, path),
        _floats(frame, features, path),
        features,
        labels,
    )


def _nab_case(path: Path, key: str, bounds: Any, label_file: Path) -> Case:
    frame = _read_csv(path)
    _need(frame, ["timestamp", "value"], path)
    ts = _times(frame, "timestamp", TIME_FORMAT, path)
    x = _floats(frame, ["value"], path)
    label = np.zeros(len(ts), dtype=np.int8)
    windows = []
    try:
        parsed = [(np.datetime64(a, "ns"), np.datetime64(b, "ns")) for a, b in bounds]
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label_file}: bad windows for {key!r}: {err}") from err
    rows = nab_window_rows(ts.astype("datetime64[ns]"), parsed)
    for (a, b), (lo, hi) in zip(parsed, rows, strict=True):
        if hi < lo:
            raise ValueError(f"{label_file}: window {a}..{b} of {key!r} holds no row of {path}")
        windows.append((lo, hi))
        label[lo : hi + 1] = 1
    p = nab_probation(len(ts))
    return Case(
        name=f"nab/{path.parent.name}/{path.stem}",
        features=("value",),
        train=x[:p],
        test=x[p:],
        test_label=label[p:],
        test_timestamps=ts[p:],
        train_timestamps=ts[:p],
        windows=windows,
        probation=p,
        meta={"source": str(path), "category": path.parent.name, "n_rows": len(ts)},
    )


def _one(folder: Path, stem: str) -> Path:
    for suffix in MATRIX_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    raise FileNotFoundError(f"{folder / stem}.txt: file not found (also tried .csv, .npy)")


def _matrix(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            # allow_pickle stays off: a benchmark file must never run code.
            out = np.load(path, allow_pickle=False)
        else:
            with path.open() as fh:
                head = fh.readline()
            out = np.loadtxt(path, delimiter="," if "," in head else None, ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read as a numeric matrix: {err}") from err
    if out.size == 0 or not np.issubdtype(out.dtype, np.number):
        raise ValueError(f"{path}: no numeric rows")
    return out
