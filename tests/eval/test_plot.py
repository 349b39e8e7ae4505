"""The PNG plots of ``anomae evaluate --plot``: file format and size, what the pixels show,
robustness to NaN/inf/degenerate scores, the CLI end to end and without matplotlib."""

from __future__ import annotations

import struct
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import blocked_imports, run_cli

pytest.importorskip("matplotlib")

from anomae.eval import plot  # noqa: E402
from anomae.eval.benchmark import Scored  # noqa: E402
from anomae.eval.datasets import Case  # noqa: E402
from anomae.events import PostRule  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N = 200
LABELLED = (80, 119)  # inclusive rows
ALARM = (90, 110)  # rows where anomae's score is above its threshold


def _case(name: str = "skab/valve1/0") -> Case:
    label = np.zeros(N, np.int8)
    label[LABELLED[0] : LABELLED[1] + 1] = 1
    start = np.datetime64("2020-03-09T10:00:00", "ns").astype(np.int64)
    return Case(
        name=name,
        features=("a",),
        train=np.zeros((50, 1), np.float32),
        test=np.zeros((N, 1), np.float32),
        test_label=label,
        test_timestamps=start + np.arange(N, dtype=np.int64) * 10**9,
        train_timestamps=np.arange(50, dtype=np.int64),
    )


def _scored() -> dict[str, Scored]:
    anomae = np.full(N, 0.5)
    anomae[:15] = np.nan  # rows before the first full window
    anomae[ALARM[0] : ALARM[1] + 1] = 3.0
    ksigma = np.linspace(0.0, 2.0, N)  # a zero on a log axis
    ksigma[150] = np.inf
    return {
        "anomae": Scored(anomae * 2.0, threshold=2.0),
        "ksigma": Scored(ksigma, threshold=4.0),
        "all_anomalous": Scored(np.ones(N), 1.0, flag_all=True),
    }


def _png_size(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the signature
    return width, height


def test_png_is_written_atomically_with_the_expected_size(tmp_path: Path) -> None:
    path = plot.plot_case(_case(), _scored(), PostRule(), tmp_path / "plots" / "c.png")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    w, h = plot.figure_size(2)  # all_anomalous gets no panel
    assert _png_size(data) == (round(w * plot.DPI), round(h * plot.DPI))
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.png"]  # no temp file left


def _pixels(fig: object) -> np.ndarray:
    import io

    from matplotlib.image import imread

    return imread(io.BytesIO(plot.png_bytes(fig)), format="png")[..., :3]  # type: ignore[arg-type]


def _matches(pixels: np.ndarray, colour: str, alpha: float = 1.0) -> np.ndarray:
    from matplotlib.colors import to_rgb

    want = alpha * np.array(to_rgb(colour)) + (1 - alpha) * np.ones(3)  # over white
    return np.all(np.abs(pixels - want) < 3 / 255, axis=-1)


def _column(ax: object, row: float) -> int:
    return int(ax.transData.transform((row, 1.0))[0])  # type: ignore[attr-defined]


def test_labelled_range_is_shaded_there_and_nowhere_else() -> None:
    fig = plot.case_figure(_case(), _scored(), PostRule())
    img = _pixels(fig)  # draws, so the transforms below hold the final layout
    height = img.shape[0]
    assert len(fig.axes) == 2
    for ax in fig.axes:
        box = ax.get_window_extent()
        # panel rows above the event strip, inside the frame
        top, bottom = (
            int(height - box.y1) + 3,
            int(height - box.y0 - plot.EVENT_STRIP * box.height) - 3,
        )
        shaded = _matches(img[top:bottom], plot.LABEL_COLOUR, plot.LABEL_ALPHA).mean(axis=0)
        inside = range(_column(ax, LABELLED[0] + 1), _column(ax, LABELLED[1] - 1))
        outside = [*range(int(box.x0) + 2, _column(ax, LABELLED[0] - 1.5)),
                   *range(_column(ax, LABELLED[1] + 1.5), int(box.x1) - 2)]  # fmt: skip
        # the score line and the threshold cross a column's pixels, the shade fills the rest
        assert min(shaded[c] for c in inside) > 0.5
        assert np.mean([shaded[c] for c in inside]) > 0.9
        assert max(shaded[c] for c in outside) == 0.0


def test_events_are_marked_where_the_score_crosses_the_threshold() -> None:
    fig = plot.case_figure(_case(), _scored(), PostRule())
    img = _pixels(fig)
    anomae, ksigma = fig.axes
    box = anomae.get_window_extent()
    strip_row = int(img.shape[0] - box.y0 - 0.4 * plot.EVENT_STRIP * box.height)
    red = _matches(img[strip_row], plot.EVENT_COLOUR)
    assert red[_column(anomae, ALARM[0] + 2) : _column(anomae, ALARM[1] - 1)].all()
    assert not red[int(box.x0) + 2 : _column(anomae, ALARM[0] - 3)].any()
    assert not red[_column(anomae, ALARM[1] + 3) : int(box.x1) - 2].any()
    assert anomae.get_title(loc="left").startswith("anomae")
    assert "1 event" in anomae.get_title(loc="left")
    assert ksigma.get_title(loc="left").startswith("ksigma")


@pytest.mark.parametrize(
    ("score", "threshold"),
    [
        (np.full(N, np.nan), 1.0),  # no full window at all
        (np.zeros(N), 1.0),  # nothing positive for a log axis
        (np.full(N, np.inf), 1.0),
        (np.ones(N), 0.0),  # degenerate threshold: scores / 0
        (-np.ones(N), 1.0),
    ],
)
def test_degenerate_scores_still_plot(score: np.ndarray, threshold: float, tmp_path: Path) -> None:
    path = plot.plot_case(
        _case(), {"anomae": Scored(score, threshold)}, PostRule(), tmp_path / "d.png"
    )
    assert path.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("skab/valve1/0", "skab_valve1_0"),
        ("nab/realKnownCause/nyc taxi", "nab_realKnownCause_nyc_taxi"),
        ("../../etc/passwd", "etc_passwd"),
        ("", "case"),
        ("m-1.2_x", "m-1.2_x"),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert plot.safe_name(name) == expected


def test_plotter_names_one_file_per_case(tmp_path: Path) -> None:
    plotter = plot.CasePlotter(tmp_path / "plots")
    for name in ("skab/a/b", "skab/a_b", "skab/a/b"):
        plotter(_case(name), _scored(), PostRule())
    names = [p.name for _, p in plotter.paths]
    assert names == ["skab_a_b.png", "skab_a_b-2.png", "skab_a_b-3.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(names)


def test_plotter_refuses_a_file_as_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(plot.PlotError, match="not a folder"):
        plot.CasePlotter(tmp_path / "f" / "plots")


def test_missing_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for mod in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # None: import raises ImportError
    with pytest.raises(plot.PlotError, match=r"pip install 'anomae\[plot\]'"):
        plot.CasePlotter(tmp_path / "plots")
    with pytest.raises(plot.PlotError, match="matplotlib"):
        plot.plot_case(_case(), _scored(), PostRule(), tmp_path / "x.png")
    assert not (tmp_path / "plots").exists() and not (tmp_path / "x.png").exists()


def _benchmark_pipeline(tmp_path: Path, epochs: int = 3) -> Path:
    pipe = tmp_path / "bench.toml"
    pipe.write_text(
        textwrap.dedent(f"""
        [benchmark]
        dataset = "matrix"
        vus_window = 10
        baselines = ["ksigma", "all_anomalous"]
        [window]
        length = 8
        train_stride = 2
        [model]
        hidden = [8, 2]
        [train]
        epochs = {epochs}
        progress = false
        [calibrate]
        holdout = 0.0
        method = "ksigma"
        k = 4.0
    """)
    )
    return pipe


def _blocking_matplotlib(tmp_path: Path) -> dict[str, str]:
    return blocked_imports(tmp_path / "block", "matplotlib")


def test_cli_without_matplotlib_fails_before_the_run(tmp_path: Path) -> None:
    env = _blocking_matplotlib(tmp_path)
    pipe, out = _benchmark_pipeline(tmp_path), tmp_path / "out"
    # --data points nowhere: the plot check must come first, before any data or training
    args = ["evaluate", str(pipe), "--out", str(out), "--data", str(tmp_path / "nowhere")]
    r = run_cli([*args, "--plot"], env=env)
    assert r.returncode == 1, r.stderr
    assert "error: plots need matplotlib: pip install 'anomae[plot]'" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    # the flag is an environment variable too, like every option
    r = run_cli(args, env={**env, "ANOMAE_EVALUATE_PLOT": "1"})
    assert r.returncode == 1 and "pip install 'anomae[plot]'" in r.stderr
    # without --plot, matplotlib is never imported: the run gets as far as the data
    r = run_cli(args, env=env)
    assert r.returncode == 1 and "no such data folder" in r.stderr and "plots" not in r.stderr


def test_cli_refuses_an_output_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    pipe = _benchmark_pipeline(tmp_path)
    r = run_cli(["evaluate", str(pipe), "--out", str(tmp_path / "f" / "out"), "--plot"])
    assert r.returncode == 1 and "not a folder" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_cli_evaluate_writes_one_plot_per_case(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    data = tmp_path / "smd"
    rng = np.random.default_rng(0)
    for d in ("train", "test", "test_label"):
        (data / d).mkdir(parents=True)
    t = np.arange(600)
    x = np.sin(2 * np.pi * t / 40)[:, None] * np.array([1.0, -0.5]) + 0.05 * rng.normal(
        size=(600, 2)
    )
    test, label = x[300:].copy(), np.zeros(300, int)
    test[150:180, 1] += 2.0
    label[150:180] = 1
    for m in ("m/1", "m 2"):  # names with a slash and a space: the files must still be safe
        stem = m.replace("/", "_")
        np.savetxt(data / "train" / f"{stem}.txt", x[:300], delimiter=",")
        np.savetxt(data / "test" / f"{stem}.txt", test, delimiter=",")
        np.savetxt(data / "test_label" / f"{stem}.txt", label, fmt="%d")
    out = tmp_path / "out"
    r = run_cli(
        ["evaluate", str(_benchmark_pipeline(tmp_path)), "--out", str(out), "--data", str(data)]
        + ["--plot"]
    )
    assert r.returncode == 0, r.stderr
    pngs = sorted(p.name for p in (out / "plots").iterdir())
    assert pngs == ["smd_m_1.png", "smd_m_2.png"]
    for name in pngs:
        data_png = (out / "plots" / name).read_bytes()
        assert data_png.startswith(PNG_SIGNATURE)
        w, h = plot.figure_size(2)  # anomae and ksigma; all_anomalous has no panel
        assert _png_size(data_png) == (round(w * plot.DPI), round(h * plot.DPI))
    assert f"2 plots -> {out / 'plots'}" in r.stdout
    md = (out / "report.md").read_text()
    assert "## Plots" in md and "(plots/smd_m_1.png)" in md and "--plot" in md
