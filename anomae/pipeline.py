"""Pipelines: one TOML file describes an experiment; :func:`run_pipeline` carries it out.

train → export (parity-checked) → calibrate → score → report. Each step is a function the
CLI's single commands (``train``, ``calibrate``, ``score``) call too, so the pipeline and the
commands cannot drift apart. Sections and keys (all optional but ``data.train``)::

    [data]      train, test, calibration, timestamp, series, label, features, exclude,
                generate ("demo": write the demo data if the files are missing), seed
    [window]    length, stride (scoring), train_stride (training windows), center,
                center_features (centre only these, by name)
    [model]     kind ("dense"|"conv"), hidden, activation, code_activation, channels, kernel
    [noise]     kind ("none"|"gaussian"|"salt_pepper"|"masking"), sigma, p
    [sparsity]  kind ("none"|"kl"|"l1"), rho, beta
    [train]     epochs, batch_size, lr, weight_decay, val_fraction, patience, seed, device
    [calibrate] method (default "events"), false_events_per_day, min_windows (candidates),
                q, k, rate, alarms_per_day, interval_s, init_quantile, per_feature,
                holdout (last fraction of each training series, never trained on)
    [score]     min_windows, max_gap, off (hysteresis hold level), cooldown, top_k
    [likelihood] short, long, warmup, refit, epsilon, min_spread, season_s, seasons,
                tolerance_s: when present, alarms come from the anomaly likelihood of each
                series' scores, not the fixed threshold (see :mod:`anomae.likelihood`)
    [benchmark] dataset, protocol, data, categories, baselines, vus_window, limit
                (evaluation pipelines, ``anomae evaluate``: see :mod:`anomae.benchmark`)
    [tune]      window, hidden, noise, center (the grid), epochs, train_stride, copies, unit,
                seed, vus_window: when present, the model is chosen label-free first (see
                :mod:`anomae.tune`)

Unknown sections or keys, and values of the wrong type, are errors naming file and key.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import platform
import time
import tomllib
import typing
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from anomae.io import SeriesData, TableSpec, fingerprint, read_series
from anomae.spec import ModelCard, Scaler, Threshold, WindowSpec


class PipelineError(ValueError):
    """A pipeline file or option is invalid; the message names file, section and key."""


@dataclass(frozen=True)
class DataSection:
    train: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    calibration: tuple[str, ...] = ()
    timestamp: str = "timestamp"
    series: str = "series"
    label: str = "label"
    features: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ("anomaly",)
    generate: str = ""
    seed: int = 7

    def table(self) -> TableSpec:
        return TableSpec(
            timestamp=self.timestamp,
            series=self.series,
            features=self.features or None,
            label=self.label or None,
            exclude=self.exclude,
        )


@dataclass(frozen=True)
class WindowSection:
    length: int = 32
    stride: int = 1
    train_stride: int = 1
    center: bool = False  # subtract each window's per-feature mean (ignore slow level drift)
    center_features: tuple[str, ...] = ()  # centre only these features (names)

    def __post_init__(self) -> None:
        WindowSpec(self.length, self.stride)
        WindowSpec(self.length, self.train_stride)
        if self.center and self.center_features:
            raise ValueError("set center = true (every feature) or center_features, not both")

    @property
    def centred(self) -> bool | list[str]:
        """What the model card records: ``True`` (all), the names, or ``False``."""
        return self.center or list(self.center_features) or False


_METHOD_PARAMS = {
    "events": ("false_events_per_day", "interval_s", "init_quantile", "min_windows"),
    "quantile": ("q",),
    "ksigma": ("k",),
    "mad": ("k",),
    "pot": ("q", "init_quantile"),
    "fpr": ("rate", "alarms_per_day", "interval_s"),
    "f1": (),
}


@dataclass(frozen=True)
class CalibrateSection:
    """How the threshold is set. Parameters left unset take the method's defaults (see
    :mod:`anomae.calibrate`): events (the default) false_events_per_day=1/7 (one per
    series per week) with the [score] post-rule, or the one of the ``min_windows``
    candidates that allows the lowest threshold; quantile q=0.995; ksigma/mad k=3; pot
    q=1e-3, init_quantile=0.98; fpr rate, or alarms_per_day. ``interval_s`` (events, fpr)
    is inferred from the data's timestamps when unset. A parameter the method does not
    take is an error. ``per_series`` also calibrates a threshold per series on its own
    held-out data, the fleet threshold kept for the rest (:mod:`anomae.calibrate_series`)."""

    method: str = "events"
    holdout: float = 0.2
    holdout_from: str = "spread"  # spread: blocks over each series' span; tail: its last rows
    per_feature: bool = False
    per_series: bool = False
    q: float | None = None
    k: float | None = None
    rate: float | None = None
    alarms_per_day: float | None = None
    interval_s: float | None = None
    init_quantile: float | None = None
    false_events_per_day: float | None = None
    min_windows: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        from anomae.calibrate import METHODS

        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {sorted(METHODS)}")
        given = [n for n in _params_of(self) if n not in _METHOD_PARAMS[self.method]]
        if given:
            takers = sorted(m for m, ps in _METHOD_PARAMS.items() if given[0] in ps)
            raise ValueError(
                f"{given[0]} is not a parameter of method {self.method!r}"
                + (" (the default)" if self.method == "events" else "")
                + f": it belongs to {' or '.join(takers)}; set method accordingly or drop it"
            )
        fe = self.false_events_per_day
        if fe is not None and not fe > 0:
            raise ValueError(f"false_events_per_day must be > 0, got {fe}")
        if any(int(m) < 1 for m in self.min_windows):
            raise ValueError(f"min_windows candidates must be >= 1, got {list(self.min_windows)}")
        if self.q is not None and not 0.0 < self.q < 1.0:
            raise ValueError(f"q must be in (0, 1), got {self.q}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.holdout_from not in ("spread", "tail"):
            raise ValueError(f"holdout_from must be 'spread' or 'tail', got {self.holdout_from!r}")

    @property
    def holdout_spread(self) -> bool:
        return self.holdout_from == "spread"

    def params(self) -> dict[str, Any]:
        return _params_of(self)


def _params_of(section: CalibrateSection) -> dict[str, Any]:
    """The method parameters ``section`` sets (unset: None, or no min_windows candidates)."""
    names = (
        "q",
        "k",
        "rate",
        "alarms_per_day",
        "interval_s",
        "init_quantile",
        "false_events_per_day",
    )
    out: dict[str, Any] = {n: getattr(section, n) for n in names if getattr(section, n) is not None}
    if section.min_windows:
        out["min_windows"] = [int(m) for m in section.min_windows]
    return out


@dataclass(frozen=True)
class WeightSection:
    """How each feature counts in the score (:mod:`anomae.train.weights`): ``errors``
    "heldout" divides each feature's squared error by its mean on held-out normal windows
    ("equal": raw scaled errors); ``constant`` "ignore" leaves out features constant in the
    training rows ("keep": score them)."""

    errors: str = "equal"
    constant: str = "ignore"

    def __post_init__(self) -> None:
        if self.errors not in ("heldout", "equal"):
            raise ValueError(f"errors must be 'heldout' or 'equal', got {self.errors!r}")
        if self.constant not in ("ignore", "keep"):
            raise ValueError(f"constant must be 'ignore' or 'keep', got {self.constant!r}")


@dataclass(frozen=True)
class ScoreSection:
    min_windows: int = 3
    max_gap: int = 0
    off: float = 1.0
    cooldown: int = 0
    top_k: int = 3


@dataclass(frozen=True)
class Pipeline:
    data: DataSection = field(default_factory=DataSection)
    window: WindowSection = field(default_factory=WindowSection)
    model: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    sparsity: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    calibrate: CalibrateSection = field(default_factory=CalibrateSection)
    weights: WeightSection = field(default_factory=WeightSection)
    score: ScoreSection = field(default_factory=ScoreSection)
    likelihood: Any = None  # anomae.likelihood.Likelihood: the alarm policy, when set
    benchmark: Any = None  # anomae.benchmark.BenchmarkSection in evaluation pipelines
    tune: Any = None  # anomae.tune.TuneSection: choose the model label-free first
    source: str = "<options>"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d


def _coerce(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from TOML values, checking keys and simple types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        hint = hints[key]
        origin = typing.get_origin(hint)
        if origin is tuple:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list):
                raise PipelineError(f"{where}: key '{key}' must be a list, got {value!r}")
            value = tuple(value)
        elif (
            hint in (float, float | None) and isinstance(value, int) and not isinstance(value, bool)
        ):
            value = float(value)
        elif hint in (int, float, str, bool) and not isinstance(value, hint):
            raise PipelineError(
                f"{where}: key '{key}' must be {hint.__name__}, got {type(value).__name__} "
                f"{value!r}"
            )
        if hint is int and isinstance(value, bool):
            raise PipelineError(f"{where}: key '{key}' must be int, got {value!r}")
        out[key] = value
    try:
        return cls(**out)
    except (TypeError, ValueError) as exc:
        raise PipelineError(f"{where}: {exc}") from exc


SECTIONS: dict[str, type | None] = {
    "data": DataSection,
    "window": WindowSection,
    "model": None,
    "noise": None,
    "sparsity": None,
    "train": None,
    "calibrate": CalibrateSection,
    "weights": WeightSection,
    "score": ScoreSection,
    "likelihood": None,
    "benchmark": None,
    "tune": None,
}
OPTIONAL_SECTIONS = ("likelihood", "benchmark", "tune")  # None when absent, not a default section


def parse_pipeline(doc: dict[str, Any], source: str = "<options>") -> Pipeline:
    """A :class:`Pipeline` from a TOML document (already parsed); paths stay as written."""
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise PipelineError(f"{source}: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    kw: dict[str, Any] = {"source": source}
    for name, cls in SECTIONS.items():
        table = doc.get(name, {})
        if not isinstance(table, dict):
            raise PipelineError(f"{source}: [{name}] must be a table")
        if name not in OPTIONAL_SECTIONS:
            kw[name] = dict(table) if cls is None else _coerce(cls, table, f"{source} [{name}]")
    from anomae.benchmark import BenchmarkSection
    from anomae.grid import TuneSection
    from anomae.likelihood import Likelihood

    optional = (("likelihood", Likelihood), ("benchmark", BenchmarkSection), ("tune", TuneSection))
    for name, cls in optional:
        kw[name] = _coerce(cls, doc[name], f"{source} [{name}]") if name in doc else None
    pipe = Pipeline(**kw)
    train_config(pipe)  # validates [model], [noise], [sparsity] now, not after minutes of work
    post_rule(pipe.score)
    if not pipe.data.train and pipe.benchmark is None:
        raise PipelineError(f"{source} [data]: 'train' (file or list of files) is required")
    return pipe


def load_pipeline(path: str | Path) -> Pipeline:
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: pipeline file does not exist")
    doc = _read_toml(path)
    if "recipe" in doc:
        doc = with_recipe(doc, path)
    pipe = parse_pipeline(doc, str(path))
    # data paths are relative to the working directory, as on the command line
    return pipe


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: not valid TOML: {exc}") from exc


def with_recipe(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """``doc`` laid over the recipe its top-level ``recipe = "FILE"`` names (relative to
    ``path``'s folder, e.g. ``defaults/multivariate.toml``): every section of the recipe
    is kept, and each key the pipeline sets replaces the recipe's. One recipe per data
    shape, shared by every pipeline of that shape, keeps benchmarks on the settings a
    user's data gets."""
    name = doc.pop("recipe")
    if not isinstance(name, str):
        raise PipelineError(f"{path}: recipe must be a file name, got {name!r}")
    try:
        base_path = (path.parent / name).resolve()
        found = base_path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise PipelineError(f"{path}: recipe {name!r} is not a usable file name: {exc}") from exc
    if not found:
        raise PipelineError(f"{path}: recipe {name!r} not found (looked for {base_path})")
    base = _read_toml(base_path)
    if "recipe" in base:
        raise PipelineError(f"{base_path}: a recipe cannot name another recipe")
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, table in doc.items():
        if isinstance(table, dict) and isinstance(merged.get(section), dict):
            merged[section].update(table)
        else:
            merged[section] = table
    return merged


def train_config(pipe: Pipeline) -> Any:
    """The :class:`anomae.train.fit.TrainConfig` a pipeline describes (imports torch)."""
    from anomae.train.fit import SparsityConfig, TrainConfig
    from anomae.train.model import ArchConfig
    from anomae.train.noise import NoiseConfig

    where = pipe.source
    arch = _coerce(ArchConfig, pipe.model, f"{where} [model]")
    noise = _coerce(NoiseConfig, pipe.noise, f"{where} [noise]")
    sparsity = _coerce(SparsityConfig, pipe.sparsity, f"{where} [sparsity]")
    if sparsity.kind == "kl" and arch.code_activation != "sigmoid":
        raise PipelineError(
            f"{where}: sparsity 'kl' needs code activations in (0, 1); set [model] "
            f'code_activation = "sigmoid"'
        )
    nested = sorted({"arch", "noise", "sparsity"} & set(pipe.train))
    if nested:
        raise PipelineError(f"{where} [train]: {nested} have sections of their own")
    kw = {**pipe.train, "arch": arch, "noise": noise, "sparsity": sparsity}
    return _coerce(TrainConfig, kw, f"{where} [train]")


HOLDOUT_BLOCKS = 10  # blocks per series when the held-out rows are spread over its span


def split_holdout(
    series: list[SeriesData], holdout: float, spread: bool = True, min_rows: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Row blocks to fit and to calibrate on (:func:`split_holdout_named`, without names)."""
    fit_rows, cal_rows, _ = split_holdout_named(series, holdout, spread, min_rows)
    return fit_rows, cal_rows


def holdout_blocks(
    pipe: Pipeline, series: list[SeriesData], min_rows: int | None = None
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """:func:`split_holdout_named` as ``pipe``'s [calibrate] and [window] say (``min_rows``
    defaults to the window length)."""
    c = pipe.calibrate
    rows = min_rows or pipe.window.length
    return split_holdout_named(series, c.holdout, c.holdout_spread, min_rows=rows)


def split_holdout_named(
    series: list[SeriesData], holdout: float, spread: bool = True, min_rows: int = 1
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Row blocks to fit and to calibrate on, ``holdout`` of each series held out.

    ``spread`` (the default) cuts each series into :data:`HOLDOUT_BLOCKS` equal blocks and
    holds out every ``1 / holdout``-th of them, so the calibration set samples the whole
    training span: a tail can be a quiet (or a busy) stretch, and a threshold fitted on a
    quiet tail flagged 87 % of later rows on held-out data. ``spread=False`` holds out
    each series' last rows, which a stream's alarm history needs (it must start on rows
    the model never saw, in time order). Blocks are never joined: no window crosses a cut.
    Series too short for ``HOLDOUT_BLOCKS`` blocks of ``min_rows`` rows (the window
    length) fall back to the tail split.

        >>> from anomae.io import SeriesData
        >>> s = SeriesData("m", "x", np.arange(100), np.arange(100.0)[:, None], None, None)
        >>> fit, cal, names = split_holdout_named([s], 0.2)
        >>> [int(b[0, 0]) for b in cal], sum(len(b) for b in cal), names
        ([40, 90], 20, ['m', 'm'])
        >>> fit, cal = split_holdout([s], 0.2, spread=False)
        >>> [int(b[0, 0]) for b in cal]
        [80]

    The third list names the series of each calibration block.
    """
    fit_rows: list[np.ndarray] = []
    cal_rows: list[np.ndarray] = []
    cal_names: list[str] = []
    for s in series:
        n = s.values.shape[0]
        if holdout <= 0:
            fit_rows.append(s.values)
            continue
        k = HOLDOUT_BLOCKS if spread and n >= HOLDOUT_BLOCKS * max(min_rows, 1) else 1
        if k == 1:
            cut = int(round(n * (1.0 - holdout)))
            fit_rows.append(s.values[:cut])
            cal_rows.append(s.values[cut:])
            cal_names.append(s.name)
            continue
        edges = np.linspace(0, n, k + 1).round().astype(int)
        for i in range(k):
            block = s.values[edges[i] : edges[i + 1]]
            # block i is held out when the running count of held-out blocks steps up there
            held = math.floor((i + 1) * holdout + 1e-9) > math.floor(i * holdout + 1e-9)
            (cal_rows if held else fit_rows).append(block)
            if held:
                cal_names.append(s.name)
    return fit_rows, cal_rows, cal_names


def fit_scaler(blocks: list[np.ndarray], features: tuple[str, ...]) -> Scaler:
    rows = np.concatenate(blocks) if blocks else np.empty((0, len(features)), np.float32)
    with np.errstate(all="ignore"):
        center = np.nanmean(rows.astype(np.float64), axis=0)
        scale = np.nanstd(rows.astype(np.float64), axis=0)
    empty = [f for f, c in zip(features, center, strict=True) if not np.isfinite(c)]
    if empty:
        raise PipelineError(f"features {empty} have no observed value in the training data")
    # a constant sensor would divide by zero; 1.0 keeps its (zero) deviations unscaled
    scale = np.where(scale > 1e-12 * np.maximum(np.abs(center), 1.0), scale, 1.0)
    return Scaler(tuple(center.tolist()), tuple(scale.tolist()))


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import polars

    import anomae

    out = {
        "anomae": anomae.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "polars": polars.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        pass
    return out


def train_step(
    pipe: Pipeline,
    series: list[SeriesData],
    features: tuple[str, ...],
    out: Path,
    min_rows: int | None = None,
) -> tuple[ModelCard, dict[str, Any], list[np.ndarray]]:
    """Fit on the non-held-out rows, export to ``out`` with parity check.

    ``min_rows`` (default: the window length) is :func:`split_holdout`'s: tuning passes its
    largest window so every candidate holds out the same rows.
    Returns (card as written, training summary, calibration row blocks)."""
    from anomae.graph import center_mask
    from anomae.train.export import export_model
    from anomae.train.fit import fit
    from anomae.train.weights import constant_features, error_weights, with_weights
    from anomae.windows import GAP_FACTOR, sliding_windows

    cfg = train_config(pipe)
    length = pipe.window.length
    fit_rows, cal_rows, _ = holdout_blocks(pipe, series, min_rows)
    scaler = fit_scaler(fit_rows, features)
    center = np.asarray(scaler.center, np.float32)
    scale = np.asarray(scaler.scale, np.float32)
    train_spec = WindowSpec(length, pipe.window.train_stride)
    windows = [sliding_windows((r - center) / scale, train_spec) for r in fit_rows]
    windows_arr = np.ascontiguousarray(np.concatenate(windows), dtype=np.float32)
    try:
        mask = center_mask(features, pipe.window.centred)
    except ValueError as exc:
        raise PipelineError(f"{pipe.source} [window] center_features: {exc}") from exc
    if mask is not None:  # as the graph does: each window minus its per-feature mean
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN feature: stays NaN
            windows_arr -= mask * np.nanmean(windows_arr, axis=1, keepdims=True)
    if windows_arr.shape[0] < 2:
        raise PipelineError(
            f"training data gives {windows_arr.shape[0]} windows of {length} rows; need more "
            f"rows per series or a shorter window"
        )
    interval_s = sampling_interval(series) or 0.0
    t0 = time.perf_counter()
    result = fit(windows_arr, cfg)
    seconds = time.perf_counter() - t0
    card = ModelCard(
        features=features,
        window=WindowSpec(length, pipe.window.stride),
        scaler=scaler,
        architecture={
            "layout": result.model.layout,
            "center": pipe.window.centred,
            **dataclasses.asdict(cfg.arch),
        },
        training={
            "noise": dataclasses.asdict(cfg.noise),
            "sparsity": dataclasses.asdict(cfg.sparsity),
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "n_train_windows": result.n_train,
            "n_val_windows": result.n_val,
            "train_stride": pipe.window.train_stride,
            "device": result.device,
            "seconds": round(seconds, 2),
            "config": {
                k: v
                for k, v in dataclasses.asdict(cfg).items()
                if k not in ("arch", "noise", "sparsity", "progress")
            },
        },
        data_fingerprint=fingerprint(series, features),
        versions=versions(),
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        # the gap rule batch and stream share (anomae.windows); none without timestamps
        interval_s=interval_s,
        max_gap_s=GAP_FACTOR * interval_s,
    )
    constant = constant_features(fit_rows)
    ignore = constant if pipe.weights.constant == "ignore" else None
    try:
        weights = error_weights(
            result.model,
            card,
            [b for b in cal_rows if b.shape[0] >= length] or fit_rows,
            equalise=pipe.weights.errors == "heldout",
            ignore=ignore,
        )
    except ValueError as exc:
        raise PipelineError(f"{pipe.source} [weights]: {exc}; set constant = \"keep\"") from exc
    card = with_weights(card, weights)
    parity_src = next((b for b in cal_rows if b.shape[0] >= length), fit_rows[0])
    parity_rows = np.ascontiguousarray(parity_src[:4096][None], dtype=np.float32)
    card = export_model(result.model, card, out, parity_rows)
    summary = {
        k: card.training[k]
        for k in (
            "epochs_run",
            "best_epoch",
            "best_val_loss",
            "n_train_windows",
            "seconds",
            "device",
        )
    }
    summary["ignored_features"] = [f for f, w in zip(features, weights, strict=True) if w == 0]
    return card, summary, cal_rows


def sampling_interval(series: list[SeriesData]) -> float | None:
    """Median seconds between rows over all series (None when it cannot be told)."""
    diffs = [np.diff(s.timestamps) for s in series if s.timestamps.size > 1]
    if not diffs:
        return None
    return float(np.median(np.concatenate(diffs))) / 1e9


def calibrate_blocks(
    det: Any,
    blocks: list[np.ndarray],
    section: CalibrateSection,
    interval_s: float | None = None,
    labels: list[np.ndarray | None] | None = None,
    rule: Any = None,
    names: list[str] | None = None,
) -> Threshold:
    """Threshold for ``det`` from held-out row blocks, as ``section`` says (torch-free).

    ``names`` (the series of each block) is needed by, and only used with,
    ``section.per_series``: a threshold per series besides the fleet's.

    ``labels`` (row labels per block) are needed by, and only by, the ``f1`` method.
    ``rule`` (a :class:`~anomae.events.PostRule`, default ``min_windows=3``) is the
    post-rule method ``events`` calibrates for; the threshold's ``post_rule`` says which
    one it chose (:func:`chosen_rule`)."""
    from anomae.calibrate import CalibrationError, calibrate_rows
    from anomae.score import window_labels
    from anomae.windows import window_ends

    params: dict[str, Any] = section.params()
    if section.method == "fpr":
        params.setdefault("stride", det.card.window.stride)
        if "alarms_per_day" in params and "interval_s" not in params:
            if interval_s is None:
                raise CalibrationError(
                    "fpr with alarms_per_day needs the sampling interval: set interval_s"
                )
            params["interval_s"] = interval_s
    if section.method == "events":
        params["rule"] = rule
        if "interval_s" not in params:
            if interval_s is None:
                raise CalibrationError(
                    "method 'events' counts false events per day and needs the sampling "
                    "interval: the calibration data has no usable timestamps; set interval_s "
                    "(seconds between rows)"
                )
            params["interval_s"] = interval_s
    if section.method == "f1":
        if labels is None or any(lb is None for lb in labels):
            raise CalibrationError(
                "method 'f1' needs labelled calibration data (a label column); without "
                "labels use a label-free method: quantile, pot, fpr, ksigma or mad"
            )
        spec = det.card.window
        params["labels"] = [
            window_labels(lb, window_ends(b.shape[0], spec), spec.length)
            for b, lb in zip(blocks, labels, strict=True)
            if lb is not None
        ]
    if section.per_series and names is None:
        raise CalibrationError(
            "[calibrate] per_series needs the series name of each calibration block: pass "
            "names= (one per block) to calibrate_blocks"
        )
    series = names if section.per_series else None
    return calibrate_rows(
        det, blocks, section.method, per_feature=section.per_feature, series=series, **params
    )


def chosen_rule(threshold: Threshold, rule: Any) -> Any:
    """The post-rule ``threshold`` was calibrated for (method ``events``), else ``rule``."""
    from anomae.events import PostRule

    return PostRule(**threshold.post_rule) if threshold.post_rule else rule


def post_rule(section: ScoreSection) -> Any:
    from anomae.events import PostRule

    try:
        return PostRule(section.min_windows, section.max_gap, section.off, section.cooldown)
    except ValueError as exc:
        raise PipelineError(f"[score]: {exc}") from exc


def report_path(out_dir: Path) -> Path:
    return out_dir / "report.json"


def run_pipeline(path: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Run the whole pipeline in ``path``; write model, scores, events and report to ``out_dir``."""
    from anomae.atomic import target_of, temp_name, write_atomically
    from anomae.compare import compare_baselines
    from anomae.detector import Detector
    from anomae.evaluate import evaluate_windows, span_days
    from anomae.modelfile import atomic_write_bytes, rewrite_card
    from anomae.score import ScoreOptions, encode_table, score_all

    t_start = time.perf_counter()
    pipe = load_pipeline(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    d = pipe.data
    if d.generate:
        _generate_if_missing(pipe)
    table = d.table()
    model_path = out / "model.onnx"
    if pipe.tune is None:
        series, features = read_series(list(d.train), table)
        note = ""
    else:  # label-free model choice: the training files' label column is never read
        from anomae.tune import label_free, label_note

        series, features = read_series(list(d.train), label_free(table))
        note = label_note(list(d.train), d.label) or ""
        if note and pipe.train.get("progress", True):
            print(note)
    # trained and calibrated beside the old model, which is replaced once, when complete
    tmp_model = temp_name(target_of(model_path))
    try:
        pipe, card, train_summary, rule = _train_and_calibrate(pipe, series, features, tmp_model)
        rewrite_card(tmp_model, card, model_path)
    finally:
        tmp_model.unlink(missing_ok=True)
    assert card.threshold is not None
    tuned = None if pipe.tune is None else {**card.training["tune"], "labels": note}
    report: dict[str, Any] = {
        "pipeline": str(path),
        "config": pipe.to_dict(),
        "model": {
            "path": str(model_path),
            "features": list(features),
            "window": dataclasses.asdict(card.window),
            "parity": card.parity,
        },
        "training": train_summary,
        "threshold": dataclasses.asdict(card.threshold),
        "alarm": card.alarm,
    }
    if tuned is not None:
        report["tune"] = tuned
    if d.test:
        det = Detector.load(model_path)
        test_series, _ = read_series(list(d.test), table, features=features)
        opts = ScoreOptions(rule=rule, top_k=pipe.score.top_k, likelihood=pipe.likelihood)
        windows, events, summary = score_all(det, test_series, opts)
        write_atomically(
            [
                (out / "events.csv", encode_table(events, out / "events.csv")),
                (out / "scores.parquet", encode_table(windows, out / "scores.parquet")),
            ]
        )
        report["scoring"] = dataclasses.asdict(summary)
        if "label" in windows.columns:
            kinds = _anomaly_kinds(list(d.test), table, windows)
            days = sum(span_days(s.timestamps) for s in test_series)
            labelled, kind = (windows, None) if kinds is None else (kinds, "anomaly")
            report["metrics"] = evaluate_windows(labelled, kind, days)
            # what the model adds: the baselines through the same calibration and post-rules
            cal_files = (
                read_series(list(d.calibration), table, features=features)[0]
                if d.calibration
                else None
            )
            report["baselines"] = compare_baselines(
                pipe, series, test_series, labelled, cal_files, kind, days
            )
    report["seconds_total"] = round(time.perf_counter() - t_start, 2)
    atomic_write_bytes(report_path(out), json.dumps(report, indent=2, default=str).encode())
    return report


def _train_and_calibrate(
    pipe: Pipeline, series: list[SeriesData], features: tuple[str, ...], model_path: Path
) -> tuple[Pipeline, ModelCard, dict[str, Any], Any]:
    """Train (with ``[tune]``: the model chosen from normal data) to ``model_path``,
    calibrate its threshold and write it with the alarm policy into the card there; returns
    the pipeline trained (the tuned one), the card, the training summary and the post-rule."""
    from anomae.detector import Detector
    from anomae.modelfile import rewrite_card

    d = pipe.data
    table = d.table()
    if pipe.tune is None:
        card, train_summary, cal_rows = train_step(pipe, series, features, model_path)
    else:
        from anomae.tune import tuned_train_step

        echo = print if pipe.train.get("progress", True) else (lambda _: None)
        pipe, card, train_summary, cal_rows = tuned_train_step(
            pipe, series, features, model_path, echo
        )
    cal_names = holdout_blocks(pipe, series)[2]
    cal_labels = None
    if d.calibration:
        cal_series, _ = read_series(list(d.calibration), table, features=features)
        cal_rows = [s.values for s in cal_series]
        cal_names = [s.name for s in cal_series]
        cal_labels = [s.labels for s in cal_series] if pipe.calibrate.method == "f1" else None
    if not cal_rows:
        raise PipelineError(
            f"{pipe.source}: no calibration data: set [calibrate] holdout > 0 or [data] calibration"
        )
    card, rule = calibrate_card(
        Detector.load(model_path),
        card,
        cal_rows,
        pipe,
        sampling_interval(series),
        cal_labels,
        names=cal_names,
    )
    rewrite_card(model_path, card)
    return pipe, card, train_summary, rule


def calibrate_card(
    det: Any,
    card: ModelCard,
    cal_rows: list[np.ndarray],
    pipe: Pipeline,
    interval_s: float | None,
    labels: list[np.ndarray | None] | None = None,
    names: list[str] | None = None,
) -> tuple[ModelCard, Any]:
    """``card`` with the threshold ``pipe`` calibrates for ``det`` on ``cal_rows`` (of the
    series ``names``, for per-series thresholds) and the alarm policy (the post-rule it
    chose, the likelihood); returns it and the post-rule."""
    from anomae.events import alarm_policy

    base = post_rule(pipe.score)
    threshold = calibrate_blocks(
        det, cal_rows, pipe.calibrate, interval_s, labels, rule=base, names=names
    )
    rule = chosen_rule(threshold, base)
    return replace(card.with_threshold(threshold), alarm=alarm_policy(rule, pipe.likelihood)), rule


def _anomaly_kinds(paths: list[str], table: TableSpec, windows: Any) -> Any:
    """Join the test files' ``anomaly`` kind column (if any) onto the windows by end time."""
    import polars as pl

    frames = []
    for p in paths:
        df = pl.read_parquet(p) if str(p).endswith((".parquet", ".pq")) else pl.read_csv(p)
        if "anomaly" not in df.columns or table.series not in df.columns:
            return None
        frames.append(
            df.select(
                pl.col(table.series).cast(pl.Utf8).alias("series"),
                pl.col(table.timestamp).cast(pl.Datetime("ns")).alias("timestamp"),
                pl.col("anomaly").fill_null(""),
            )
        )
    kinds = pl.concat(frames)
    return windows.join(kinds, on=["series", "timestamp"], how="left", maintain_order="left")


def _generate_if_missing(pipe: Pipeline) -> None:
    d = pipe.data
    if d.generate != "demo":
        raise PipelineError(f'{pipe.source} [data]: generate must be "demo" or absent')
    paths = [Path(p) for p in (*d.train, *d.test)]
    if all(p.exists() for p in paths):
        return
    from anomae.synth import SynthConfig, write_demo

    write_demo(paths[0].parent, SynthConfig(seed=d.seed))
