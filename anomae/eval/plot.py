"""PNG plots of one benchmark case: every detector's score against its threshold.

One panel per detector (anomae first), sharing the test-row axis: the normalised score
``score / threshold`` on a log scale with the threshold at 1, the labelled anomalous
ranges shaded, and the events the post-rule raised drawn as a strip along the bottom —
the same events :func:`anomae.eval.benchmark.case_metrics` scores. ``all_anomalous`` has no
meaningful score and gets no panel. Rows before the first full window have no score (NaN)
and leave a gap; scores at or below zero sit on the bottom edge, ``inf`` on the top edge.

matplotlib is an optional extra (``pip install 'anomae[plot]'``), imported only here and
only when a plot is drawn; the object-oriented :class:`~matplotlib.figure.Figure` is used
without pyplot, so no global state or display backend is touched.

    >>> safe_name("skab/valve1/0")
    'skab_valve1_0'
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anomae.errors import AnomaeError, install_hint
from anomae.events import PostRule, event_bounds, event_mask, runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from anomae.eval.benchmark import Scored
    from anomae.eval.datasets import Case

WIDTH_IN = 12.0
PANEL_IN = 1.7
HEAD_IN = 0.9  # suptitle, legend and x-axis label
DPI = 100

SCORE_COLOUR = "#1f4e79"
THRESHOLD_COLOUR = "#222222"
LABEL_COLOUR = "#f5b041"  # labelled anomalous rows, drawn at LABEL_ALPHA over white
LABEL_ALPHA = 0.35
EVENT_COLOUR = "#c0392b"
EVENT_STRIP = 0.07  # height of the event strip, as a fraction of the panel
SKIPPED = ("all_anomalous",)  # flags every row; its score carries no information


class PlotError(AnomaeError, RuntimeError):
    """A plot cannot be drawn or written; the message says what to do."""


def safe_name(name: str) -> str:
    """``name`` as a file name: anything but letters, digits, ``.``, ``-``, ``_`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "case"


def figure_size(n_panels: int) -> tuple[float, float]:
    """Figure size in inches for ``n_panels`` detectors (pixels: times :data:`DPI`)."""
    return WIDTH_IN, HEAD_IN + PANEL_IN * max(n_panels, 1)


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotError(f"plots need matplotlib: {install_hint('plot')}") from exc
    return Figure


def _display_range(norm: np.ndarray) -> tuple[float, float]:
    """Log-axis limits that always show the threshold and ignore NaN, inf and scores ≤ 0."""
    pos = norm[np.isfinite(norm) & (norm > 0)]
    if pos.size == 0:
        return 0.1, 10.0
    lo = min(float(np.percentile(pos, 0.5)) / 1.5, 0.5)
    hi = max(float(pos.max()) * 1.5, 2.0)
    return lo, hi


def _key_numbers(name: str, s: Scored, pred: np.ndarray, label: np.ndarray, n: int) -> str:
    from anomae.eval import metrics

    m = metrics.point_metrics(pred, label)

    def pct(x: float) -> str:
        return "–" if x != x else f"{100 * x:.1f}%"

    f1 = "–" if m["f1"] != m["f1"] else f"{m['f1']:.2f}"
    return (
        f"{name}   threshold {s.threshold:.4g}   F1 {f1}   FAR {pct(m['far'])}   "
        f"MAR {pct(m['mar'])}   {n} event{'s' if n != 1 else ''}"
    )


def _time_span(case: Case) -> str:
    ts = case.test_timestamps
    # loaders without a clock number rows as seconds since 1970: no time span to show then
    if ts.size == 0 or ts[0] < 315_532_800 * 10**9:  # 1980-01-01
        return ""
    a, b = (str(np.datetime64(int(t), "ns").astype("datetime64[s]")) for t in (ts[0], ts[-1]))
    same_day = a[:10] == b[:10]
    return f", {a.replace('T', ' ')} → {b[11:] if same_day else b.replace('T', ' ')} UTC"


def case_figure(case: Case, scored: dict[str, Scored], rule: PostRule) -> Figure:
    """The figure of one case: a panel per detector in ``scored`` (anomae first)."""
    figure_cls = _figure_class()
    names = sorted(
        (k for k, s in scored.items() if k not in SKIPPED and not s.flag_all),
        key=lambda k: (k != "anomae", list(scored).index(k)),
    )
    label = case.test_label.astype(bool)
    n = label.size
    x = np.arange(n)
    fig = figure_cls(figsize=figure_size(len(names)), dpi=DPI, layout="constrained")
    axes = fig.subplots(max(len(names), 1), 1, sharex=True, squeeze=False)[:, 0]
    lab_s, lab_e = runs(label)
    for ax, name in zip(axes, names, strict=False):
        s = scored[name]
        with np.errstate(divide="ignore", invalid="ignore"):
            norm = np.asarray(s.score, np.float64) / s.threshold
        starts, ends = event_bounds(norm, rule)
        lo, hi = _display_range(norm)
        shown = np.where(np.isnan(norm), np.nan, np.clip(norm, lo, hi))
        for a, b in zip(lab_s.tolist(), lab_e.tolist(), strict=True):
            ax.axvspan(a - 0.5, b + 0.5, color=LABEL_COLOUR, alpha=LABEL_ALPHA, lw=0, zorder=0)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            # the edge keeps a one-row event visible on a long series
            ax.axvspan(a - 0.5, b + 0.5, ymin=0, ymax=EVENT_STRIP, color=EVENT_COLOUR, lw=0.8)
        # onsets (NAB's alarms) as markers of fixed size, above the strip
        if starts.size:
            y = np.full(starts.size, EVENT_STRIP)
            ax.plot(starts, y, "v", color=EVENT_COLOUR, ms=4, transform=ax.get_xaxis_transform())
        ax.plot(x, shown, color=SCORE_COLOUR, lw=0.8 if n <= 2000 else 0.5, zorder=3)
        ax.axhline(1.0, color=THRESHOLD_COLOUR, lw=1.0, ls="--", zorder=4)
        _log_axis(ax, lo, hi)
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylabel("score / thr.", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="y", which="major", color="#dddddd", lw=0.5)
        pred = event_mask(n, (starts, ends))
        ax.set_title(_key_numbers(name, s, pred, label, starts.size), loc="left", fontsize=9)
    axes[-1].set_xlabel("test row", fontsize=9)
    fig.suptitle(
        f"{case.name}: {n:,} test rows, {int(label.sum()):,} labelled anomalous{_time_span(case)}",
        fontsize=11,
    )
    _legend(fig)
    return fig


def _log_axis(ax: Any, lo: float, hi: float) -> None:
    """Log scale with plain tick labels (0.5, 1, 2, not 5×10⁻¹) at 1-2-5 steps."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    decades = np.log10(hi / lo)
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0,) if decades > 3 else (1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _legend(fig: Figure) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [  # a tuple draws its artists on top of each other
        Line2D([], [], color=SCORE_COLOUR, lw=1.2),
        Line2D([], [], color=THRESHOLD_COLOUR, lw=1.0, ls="--"),
        Patch(color=LABEL_COLOUR, alpha=LABEL_ALPHA),
        (Patch(color=EVENT_COLOUR), Line2D([], [], color=EVENT_COLOUR, marker="v", ls="")),
    ]
    labels = [
        "score / threshold",
        "threshold",
        "labelled anomaly",
        "event after post-rule, ▼ onset",
    ]
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8, frameon=False)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def plot_case(case: Case, scored: dict[str, Scored], rule: PostRule, path: str | Path) -> Path:
    """Write :func:`case_figure` to ``path`` as a PNG, atomically."""
    from anomae.modelfile import atomic_write_bytes

    path = Path(path)
    data = png_bytes(case_figure(case, scored, rule))
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise PlotError(f"{path}: cannot write the plot ({exc.strerror or exc})") from exc
    return path


class CasePlotter:
    """``on_case`` callback of :func:`anomae.eval.benchmark.run_benchmark`: one PNG per case.

    Construction checks up front, before a long benchmark run, that matplotlib is
    installed and that ``folder`` can be created or written; the folder itself is made on
    the first plot. ``paths`` lists ``(case name, file)`` in run order; names that sanitise
    alike get ``-2``, ``-3``, ... suffixes, so no plot overwrites another.
    """

    def __init__(self, folder: str | Path) -> None:
        _figure_class()
        self.folder = Path(folder)
        self.paths: list[tuple[str, Path]] = []
        _check_writable(self.folder)

    def __call__(self, case: Case, scored: dict[str, Scored], rule: PostRule) -> None:
        stem = safe_name(case.name)
        taken = {p.name for _, p in self.paths}
        name, i = f"{stem}.png", 1
        while name in taken:
            i += 1
            name = f"{stem}-{i}.png"
        self.paths.append((case.name, plot_case(case, scored, rule, self.folder / name)))


def _check_writable(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a writable directory."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise PlotError(f"{probe}: not a folder; cannot write plots into {folder}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PlotError(f"{probe}: folder is not writable; cannot write plots into {folder}")
