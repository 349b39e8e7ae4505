"""Benchmark loaders: every format on small fixtures, then the real SKAB and NAB when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import anomae
from anomae.eval.datasets import (
    Case,
    find_data,
    load_labelled,
    load_matrix,
    load_nab,
    load_skab,
    nab_probation,
)
from anomae.io import InputError, TableSpec

SKAB_FEATURES = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
T0 = int(np.datetime64("2020-03-09T10:14:33", "ns").astype(np.int64))
S = 1_000_000_000


def _ns(text: str) -> int:
    return int(np.datetime64(text, "ns").astype(np.int64))


# --- SKAB fixtures ----------------------------------------------------------------------


def _skab_file(path: Path, rows: int, anomaly: range, offset: float, labelled: bool = True) -> None:
    """``rows`` rows, 1 s apart from T0; feature j of row i is ``offset + i + j / 10``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ["datetime", *SKAB_FEATURES] + (["anomaly", "changepoint"] if labelled else [])
    lines = [";".join(header)]
    for i in range(rows):
        stamp = str(np.datetime64(T0 // S + i, "s")).replace("T", " ")
        cells = [stamp, *(f"{offset + i + j / 10:g}" for j in range(8))]
        if labelled:
            a = float(i in anomaly)
            cp = float(i in (anomaly.start, anomaly.stop - 1))
            cells += [f"{a:.1f}", f"{cp:.1f}"]
        lines.append(";".join(cells))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def skab(tmp_path: Path) -> Path:
    # Folder order valve1, valve2, other; numeric order inside (2 before 10).
    for group, numbers in {"other": [1], "valve1": [10, 0, 2], "valve2": [0]}.items():
        for n in numbers:
            _skab_file(tmp_path / group / f"{n}.csv", 12, range(7, 10), offset=100 * n)
    _skab_file(tmp_path / "anomaly-free" / "anomaly-free.csv", 9, range(0), -1.0, labelled=False)
    return tmp_path


def test_skab_per_file_splits_each_file(skab: Path) -> None:
    cases = load_skab(skab, train_rows=5)
    assert [c.name for c in cases] == [
        "skab/valve1/0",
        "skab/valve1/2",
        "skab/valve1/10",
        "skab/valve2/0",
        "skab/other/1",
    ]
    c = cases[2]
    assert c.features == SKAB_FEATURES
    assert c.train.dtype == c.test.dtype == np.float32
    assert c.test_label.dtype == np.int8
    assert c.train_timestamps.dtype == c.test_timestamps.dtype == np.int64
    assert c.train.shape == (5, 8) and c.test.shape == (7, 8)
    assert c.train[0].tolist() == pytest.approx([1000 + j / 10 for j in range(8)])
    assert c.test[0, 0] == 1005.0
    assert c.test_label.tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert c.meta["test_changepoint"].tolist() == [0, 0, 1, 0, 1, 0, 0]
    assert c.meta["train_label"].tolist() == [0] * 5
    assert c.train_timestamps[0] == T0 and c.test_timestamps[0] == T0 + 5 * S
    assert c.windows == [] and c.probation == 0


def test_skab_anomaly_free_trains_on_the_free_file(skab: Path) -> None:
    cases = load_skab(skab, protocol="anomaly_free")
    assert len(cases) == 5
    for c in cases:
        assert c.train.shape == (9, 8) and c.train[0, 0] == -1.0
        assert c.test.shape == (12, 8) and c.test_label.sum() == 3
        assert c.meta["test_changepoint"].sum() == 2


def _garble(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (
            lambda r: _garble(r / "valve1/2.csv", ";1.0;", ";oops;"),
            ValueError,
            r"valve1/2\.csv: column 'anomaly', row 8: 'oops' is not a number",
        ),
        (
            lambda r: _garble(r / "valve1/2.csv", "anomaly", "anomalia"),
            ValueError,
            r"valve1/2\.csv: missing column\(s\) \['anomaly'\]",
        ),
        (
            lambda r: _garble(r / "valve1/2.csv", "0.0;0.0", "2.0;0.0"),
            ValueError,
            r"valve1/2\.csv: anomaly row 1 is 2\.0, expected 0 or 1",
        ),
        (
            lambda r: _garble(r / "valve2/0.csv", "2020-03-09 10:14:35", "9/3/20"),
            ValueError,
            r"valve2/0\.csv: column 'datetime', row 3 \(line 4\): cannot parse \"9/3/20\"",
        ),
        (
            lambda r: (r / "other/1.csv").write_text("datetime,a\n2020-01-01 00:00:00,1\n"),
            ValueError,
            r"other/1\.csv: missing column",
        ),
        (
            lambda r: (r / "other/1.csv").write_bytes(b""),
            ValueError,
            r"other/1\.csv: cannot read as CSV",
        ),
    ],
)
def test_skab_garbled_files_name_the_file(skab: Path, damage, error, match) -> None:  # type: ignore[no-untyped-def]
    damage(skab)
    with pytest.raises(error, match=match):
        load_skab(skab, train_rows=5)


def test_skab_missing_things(tmp_path: Path, skab: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_skab(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no SKAB files"):
        load_skab(skab / "anomaly-free")
    with pytest.raises(ValueError, match="12 rows, need more than 12"):
        load_skab(skab, train_rows=12)
    with pytest.raises(ValueError, match="unknown SKAB protocol"):
        load_skab(skab, protocol="mixed")  # type: ignore[arg-type]
    (skab / "anomaly-free" / "anomaly-free.csv").unlink()
    with pytest.raises(FileNotFoundError, match="anomaly-free.csv"):
        load_skab(skab, protocol="anomaly_free")


# --- NAB fixtures -----------------------------------------------------------------------


def _nab_file(path: Path, stamps: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{t},{i * 1.5}" for i, t in enumerate(stamps)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")


def _five_min(n: int, start: str = "2014-03-09T00:00:00") -> list[str]:
    t0 = np.datetime64(start, "s")
    return [str(t0 + np.timedelta64(300 * i, "s")).replace("T", " ") for i in range(n)]


@pytest.fixture
def nab(tmp_path: Path) -> Path:
    stamps = _five_min(40)
    # A daylight-saving artefact as in the real files: a stamp repeats, rows keep file order.
    stamps[30] = stamps[31]
    _nab_file(tmp_path / "realKnownCause" / "b_series.csv", stamps)
    _nab_file(tmp_path / "realKnownCause" / "a_series.csv", _five_min(10))
    _nab_file(tmp_path / "realAWSCloudwatch" / "quiet.csv", _five_min(20))
    windows = {
        "realKnownCause/b_series.csv": [
            [stamps[10] + ".000000", stamps[14] + ".000000"],
            [stamps[29] + ".000000", stamps[31] + ".000000"],
        ],
        "realKnownCause/a_series.csv": [[_five_min(10)[9], _five_min(10)[9]]],
        "realAWSCloudwatch/quiet.csv": [],
        "realTweets/not_copied.csv": [],
    }
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return tmp_path


def test_nab_probation_trains_and_windows_index_the_full_series(nab: Path) -> None:
    cases = load_nab(nab)
    assert [c.name for c in cases] == [
        "nab/realKnownCause/a_series",
        "nab/realKnownCause/b_series",
        "nab/realAWSCloudwatch/quiet",
    ]
    b = cases[1]
    assert b.features == ("value",)
    assert b.probation == 6 and b.train.shape == (6, 1) and b.test.shape == (34, 1)
    assert b.windows == [(10, 14), (29, 31)]
    full = np.zeros(40, dtype=np.int8)
    full[10:15] = full[29:32] = 1
    assert b.test_label.tolist() == full[6:].tolist()
    assert b.test[0, 0] == 9.0  # row 6 holds 6 * 1.5: file order kept despite the repeat
    assert b.test_timestamps[30 - 6] == b.test_timestamps[31 - 6]
    assert b.train_timestamps[0] == _ns("2014-03-09T00:00:00")
    a = cases[0]
    assert a.probation == 1 and a.windows == [(9, 9)] and a.test_label.tolist() == [0] * 8 + [1]
    quiet = cases[2]
    assert quiet.windows == [] and quiet.test_label.sum() == 0 and quiet.probation == 3


def test_nab_only_requested_categories_on_disk(nab: Path) -> None:
    cases = load_nab(nab, categories=["realAWSCloudwatch", "realTweets"])
    assert [c.name for c in cases] == ["nab/realAWSCloudwatch/quiet"]
    with pytest.raises(FileNotFoundError, match="realTweets"):
        load_nab(nab, categories=["realTweets"])


@pytest.mark.parametrize(
    ("n_rows", "probation"),
    [
        (0, 0),
        (6, 0),
        (7, 1),
        (40, 6),
        (1243, 186),
        (1882, 282),
        (4032, 604),
        (4730, 709),
        (4999, 749),
        (5000, 750),
        (5001, 750),
        (22695, 750),
    ],
)
def test_nab_probation_lengths(n_rows: int, probation: int) -> None:
    assert nab_probation(n_rows) == probation


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (
            lambda r: (r / "labels/combined_windows.json").unlink(),
            FileNotFoundError,
            "combined_windows.json",
        ),
        (
            lambda r: (r / "labels/combined_windows.json").write_text("{'a': "),
            ValueError,
            "combined_windows.json",
        ),
        (
            lambda r: _nab_file(r / "realKnownCause/unlisted.csv", _five_min(5)),
            ValueError,
            r"unlisted\.csv: no entry",
        ),
        (
            lambda r: _garble(r / "realKnownCause/a_series.csv", ",3.0", ",n/a?"),
            ValueError,
            r"a_series\.csv: column 'value', row 3",
        ),
        (
            lambda r: _garble(r / "realKnownCause/a_series.csv", "value", "val"),
            ValueError,
            r"a_series\.csv: missing column",
        ),
        (
            lambda r: _garble(r / "realKnownCause/a_series.csv", "00:45:00", "00:45:00 PM"),
            ValueError,
            r"a_series\.csv: column 'timestamp', row 10 \(line 11\): cannot parse",
        ),
        (
            lambda r: _garble(
                r / "labels/combined_windows.json",
                '["2014-03-09 00:45:00", "2014-03-09 00:45:00"]',
                '["2014-03-09 00:46:00", "2014-03-09 00:47:00"]',
            ),
            ValueError,
            "holds no row",
        ),
    ],
)
def test_nab_damaged_files_name_the_file(nab: Path, damage, error, match) -> None:  # type: ignore[no-untyped-def]
    damage(nab)
    with pytest.raises(error, match=match):
        load_nab(nab)


# --- SMD-style matrices -----------------------------------------------------------------


def test_matrix_text_and_npy(tmp_path: Path) -> None:
    for part in ("train", "test", "test_label"):
        (tmp_path / part).mkdir()
    # Whitespace in one machine, commas in another, .npy in a third; natural machine order.
    (tmp_path / "train/machine-1-10.txt").write_text("1 2 3\n4 5 6\n")
    (tmp_path / "test/machine-1-10.txt").write_text("7\t8 9\n")
    (tmp_path / "test_label/machine-1-10.txt").write_text("1\n")
    (tmp_path / "train/machine-1-2.txt").write_text("1,2\n3,4\n5,6\n")
    (tmp_path / "test/machine-1-2.txt").write_text("0.5,1e3\n-1,2\n")
    (tmp_path / "test_label/machine-1-2.txt").write_text("0\n1\n")
    np.save(tmp_path / "train/m3.npy", np.arange(8.0).reshape(4, 2))
    np.save(tmp_path / "test/m3.npy", np.ones((3, 2)))
    np.save(tmp_path / "test_label/m3.npy", np.array([0, 0, 1]))
    cases = load_matrix(tmp_path)
    assert [c.name for c in cases] == [
        f"{tmp_path.name}/m3",
        f"{tmp_path.name}/machine-1-2",
        f"{tmp_path.name}/machine-1-10",
    ]
    m2 = cases[1]
    assert m2.features == ("f0", "f1")
    assert m2.test.tolist() == [[0.5, 1000.0], [-1.0, 2.0]] and m2.test.dtype == np.float32
    assert m2.test_label.tolist() == [0, 1] and m2.test_label.dtype == np.int8
    # No time in these formats: row numbers as seconds, the test continuing the train.
    assert m2.train_timestamps.tolist() == [0, S, 2 * S]
    assert m2.test_timestamps.tolist() == [3 * S, 4 * S]
    assert cases[2].test.tolist() == [[7.0, 8.0, 9.0]]
    assert cases[0].train.shape == (4, 2) and cases[0].test_label.tolist() == [0, 0, 1]


@pytest.mark.parametrize(
    ("files", "error", "match"),
    [
        ({"train/m.txt": "1 2\n", "test/m.txt": "1 2\n"}, FileNotFoundError, "test_label/m"),
        (
            {"train/m.txt": "1 2\n", "test/m.txt": "1 2\n", "test_label/m.txt": "1\n0\n"},
            ValueError,
            "test_label/m.txt",
        ),
        (
            {"train/m.txt": "1 2\n", "test/m.txt": "1 2 3\n", "test_label/m.txt": "1\n"},
            ValueError,
            "differ in columns",
        ),
        (
            {"train/m.txt": "1 x\n", "test/m.txt": "1 2\n", "test_label/m.txt": "1\n"},
            ValueError,
            "train/m.txt",
        ),
        (
            {"train/m.txt": "1 2\n", "test/m.txt": "1 2\n", "test_label/m.txt": "2\n"},
            ValueError,
            "0 or 1",
        ),
        ({"train/m.txt": "1 2\n"}, FileNotFoundError, "no test files"),
    ],
)
def test_matrix_errors(tmp_path: Path, files: dict[str, str], error: type, match: str) -> None:
    for part in ("train", "test", "test_label"):
        (tmp_path / part).mkdir()
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(error, match=match):
        load_matrix(tmp_path)


# --- our own labelled files -------------------------------------------------------------


def _table(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,series,temp,flow,label\n" + "\n".join(rows) + "\n")
    return path


def test_labelled_pairs_series_by_name(tmp_path: Path) -> None:
    train = _table(
        tmp_path / "train.csv",
        [
            "2026-01-01T00:00:00Z,a,1,10,0",
            "2026-01-01T00:00:00Z,b,2,20,0",
            "2026-01-01T00:01:00Z,a,3,30,1",
        ],
    )
    test = _table(
        tmp_path / "test.csv",
        ["2026-01-02T00:00:00Z,b,5,,1", "2026-01-02T00:00:00Z,a,4,40,0"],
    )
    b, a = load_labelled(train, test)
    assert (a.name, b.name) == ("a", "b") and a.features == ("temp", "flow")
    assert a.train.tolist() == [[1.0, 10.0], [3.0, 30.0]] and a.meta["train_label"].tolist() == [
        0,
        1,
    ]
    assert a.test.tolist() == [[4.0, 40.0]] and a.test_label.tolist() == [0]
    assert np.isnan(b.test[0, 1]) and b.test_label.tolist() == [1]
    assert b.test_timestamps.tolist() == [_ns("2026-01-02T00:00:00")]


def test_labelled_single_series_pair_whatever_their_names(tmp_path: Path) -> None:
    train = _table(tmp_path / "pump_train.csv", ["2026-01-01T00:00:00Z,x,1,10,0"])
    test = _table(tmp_path / "pump_test.csv", ["2026-01-02T00:00:00Z,x,2,20,1"])
    [case] = load_labelled(train, test, TableSpec(series=None))
    assert case.name == "pump_test" and case.train.tolist() == [[1.0, 10.0]]


@pytest.mark.parametrize(
    ("test_rows", "spec", "match"),
    [
        (["2026-01-02T00:00:00Z,c,1,1,0"], TableSpec(), "series 'c' has no training rows"),
        (["2026-01-02T00:00:00Z,a,1,1,"], TableSpec(), "1 rows without a label"),
        (
            ["2026-01-02T00:00:00Z,a,1,1,0"],
            TableSpec(label="flag", exclude=("label",)),
            "no label column 'flag'",
        ),
    ],
)
def test_labelled_errors(tmp_path: Path, test_rows: list[str], spec: TableSpec, match: str) -> None:
    train = _table(
        tmp_path / "train.csv",
        ["2026-01-01T00:00:00Z,a,1,10,0", "2026-01-01T00:00:00Z,b,2,20,0"],
    )
    test = _table(tmp_path / "test.csv", test_rows)
    with pytest.raises(ValueError, match=match):
        load_labelled(train, test, spec)


def test_labelled_bad_input_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.csv"):
        load_labelled(tmp_path / "missing.csv", tmp_path / "test.csv")


# --- find_data --------------------------------------------------------------------------


def test_find_data(tmp_path: Path) -> None:
    (tmp_path / "skab").mkdir()
    assert find_data("skab", tmp_path) == tmp_path / "skab"  # a folder of benchmarks
    assert find_data("skab", tmp_path / "skab") == tmp_path / "skab"  # the benchmark itself
    assert find_data("nab", str(tmp_path)) == tmp_path  # taken as given: the caller chose it
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_data("skab", tmp_path / "nowhere")
    assert find_data("no-such-benchmark-anywhere") is None
    shared = Path(anomae.__file__).resolve().parents[1].parent / "shared" / "datasets" / "skab"
    assert find_data("skab") == (shared if shared.is_dir() else None)


# --- the real benchmarks, where this machine has them -----------------------------------


def _real(name: str) -> Path:
    root = find_data(name)
    if root is None:
        pytest.skip(f"{name} not found in shared/datasets/{name} beside the repository")
    return root


def test_real_skab_per_file() -> None:
    cases = load_skab(_real("skab"))
    assert len(cases) == 34
    groups = [c.name.split("/")[1] for c in cases]
    assert [groups.count(g) for g in ("valve1", "valve2", "other")] == [16, 4, 14]
    assert cases[0].name == "skab/valve1/0" and cases[15].name == "skab/valve1/15"
    assert cases[-1].name == "skab/other/14"
    assert all(c.features == SKAB_FEATURES for c in cases)
    assert all(c.train.shape == (400, 8) for c in cases)
    rows = sum(len(c.test) for c in cases)
    anomalous = sum(int(c.test_label.sum()) for c in cases)
    # The README's baseline: 53.7 % of test rows anomalous, so "flag all" scores F1 ≈ 0.70.
    assert (anomalous, rows) == (12_771, 23_801)
    assert anomalous / rows == pytest.approx(0.537, abs=5e-4)
    assert sum(len(c.train) + len(c.test) for c in cases) == 37_401
    other2 = next(c for c in cases if c.name == "skab/other/2")
    assert int(other2.meta["train_label"].sum()) == 296
    assert not any(np.isnan(c.test).any() for c in cases)


def test_real_skab_anomaly_free() -> None:
    cases = load_skab(_real("skab"), protocol="anomaly_free")
    assert len(cases) == 34
    assert all(c.train.shape == (9_405, 8) for c in cases)
    assert sum(len(c.test) for c in cases) == 37_401
    assert sum(int(c.test_label.sum()) for c in cases) == 13_067
    assert sum(int(c.meta["test_changepoint"].sum()) for c in cases) == 129


def test_real_nab() -> None:
    root = _real("nab")
    cases = load_nab(root)
    by_name = {c.name.split("/", 1)[1]: c for c in cases}
    assert len(cases) == 24
    assert sum(c.name.startswith("nab/realKnownCause/") for c in cases) == 7
    aws = [c.name for c in cases if "/realAWSCloudwatch/" in c.name]
    assert aws == sorted(aws)  # by name, as NAB lists them: 24ae8d before 5f5533
    assert sum(len(c.windows) for c in cases) == 49
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    probations = {
        "realKnownCause/nyc_taxi": 750,
        "realKnownCause/rogue_agent_key_hold": 282,
        "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn": 186,
        "realAWSCloudwatch/ec2_cpu_utilization_24ae8d": 604,
        "realAWSCloudwatch/ec2_disk_write_bytes_1ef3de": 709,
    }
    for key, probation in probations.items():
        assert by_name[key].probation == len(by_name[key].train) == probation
    assert len(by_name["realKnownCause/nyc_taxi"].windows) == 5
    quiet = by_name["realAWSCloudwatch/ec2_cpu_utilization_c6585a"]
    assert quiet.windows == [] and quiet.test_label.sum() == 0
    for key, c in by_name.items():
        full = np.concatenate([c.train_timestamps, c.test_timestamps])
        assert c.probation == nab_probation(len(full))
        # Every window boundary is a row's timestamp, and no window starts in probation.
        bounds = [(_ns(a), _ns(b)) for a, b in windows[f"{key}.csv"]]
        assert [(full[s], full[e]) for s, e in c.windows] == bounds
        assert all(s >= c.probation for s, _ in c.windows)
        if c.windows:
            assert 0.08 <= c.test_label.sum() / len(full) <= 0.11


def test_case_defaults_are_not_shared() -> None:
    empty = np.zeros((0, 1), dtype=np.float32)
    none = np.zeros(0, dtype=np.int64)
    a = Case("a", ("x",), empty, empty, none.astype(np.int8), none, none)
    b = Case("b", ("x",), empty, empty, none.astype(np.int8), none, none)
    a.windows.append((0, 1))
    a.meta["k"] = 1
    assert b.windows == [] and b.meta == {}
