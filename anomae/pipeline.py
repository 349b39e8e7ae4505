"""Pipeline files: one TOML file describes an experiment; this module is its schema.

It holds the sections, :class:`Pipeline`, parsing and loading (with recipes),
:func:`train_config` and :func:`post_rule`. Carrying a pipeline out lives with its
concepts: :func:`anomae.run.run_pipeline` (``anomae run``), :mod:`anomae.holdout` (the
held-out rows), :mod:`anomae.train.step` (fit and export), :mod:`anomae.calibrate_model`
(threshold and alarm policy). Sections and keys (all optional but ``data.train``)::

    [data]      train, test, calibration (paths relative to the pipeline file's folder),
                timestamp, series, label, features, exclude, timestamp_unit (s, ms, us,
                ns: the unit of epoch-number timestamps; unset: seconds),
                generate ("demo": write the demo data if the files are missing), seed
    [window]    length, stride (scoring), train_stride (training windows), center,
                center_features (centre only these, by name)
    [model]     kind ("dense"|"conv"), hidden, activation, code_activation, channels, kernel
    [noise]     kind ("none"|"gaussian"|"salt_pepper"|"masking"), sigma, p
    [sparsity]  kind ("none"|"kl"|"l1"), rho, beta
    [train]     epochs, batch_size, lr, weight_decay, val_fraction, patience, seed, device,
                threads (torch's intra-op threads; 0: torch's default)
    [calibrate] method (default "events"), false_events_per_day, min_windows (candidates),
                q, k, rate, alarms_per_day, interval_s, init_quantile, per_feature,
                holdout (fraction of each series, in blocks spread over it, never trained on)
    [score]     min_windows, max_gap, off (hysteresis hold level), cooldown, top_k
    [likelihood] short, long, warmup, refit, epsilon, min_spread, season_s, seasons,
                tolerance_s: when present, alarms come from the anomaly likelihood of each
                series' scores, not the fixed threshold (see :mod:`anomae.likelihood`)
    [benchmark] dataset, protocol, data, categories, baselines, vus_window, limit
                (evaluation pipelines, ``anomae evaluate``: see :mod:`anomae.eval.benchmark`)
    [tune]      window, hidden, noise, center (the grid), epochs, train_stride, copies, unit,
                seed, vus_window: when present, the model is chosen label-free first (see
                :mod:`anomae.tune`)

Unknown sections or keys, and values of the wrong type, are errors naming file and key.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from anomae.errors import AnomaeError
from anomae.io import TableSpec
from anomae.spec import WindowSpec
from anomae.timestamps import check_unit


class PipelineError(AnomaeError, ValueError):
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
    timestamp_unit: str = ""  # epoch numbers' unit: s, ms, us, ns ("": seconds)

    def __post_init__(self) -> None:
        check_unit(self.timestamp_unit)

    def table(self) -> TableSpec:
        return TableSpec(
            timestamp=self.timestamp,
            series=self.series,
            features=self.features or None,
            label=self.label or None,
            exclude=self.exclude,
            timestamp_unit=self.timestamp_unit or None,
        )

    def columns(self) -> dict[str, str | None]:
        """What the model card records (:attr:`anomae.spec.ModelCard.columns`)."""
        return {
            "timestamp": self.timestamp,
            "series": self.series,
            "label": self.label or None,
            "timestamp_unit": self.timestamp_unit or None,
        }


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
    benchmark: Any = None  # anomae.eval.section.BenchmarkSection in evaluation pipelines
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
    from anomae.eval.section import BenchmarkSection
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
    return with_paths_from(parse_pipeline(doc, str(path)), path.parent)


def with_paths_from(pipe: Pipeline, folder: Path) -> Pipeline:
    """``pipe`` with its relative file paths (``[data]`` train, test, calibration;
    ``[benchmark]`` train, test, data) taken relative to ``folder``, the pipeline file's,
    so a pipeline runs the same from any working directory."""

    def resolve(paths: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(folder / p) if p else p for p in paths)

    d = pipe.data
    data = dataclasses.replace(
        d, train=resolve(d.train), test=resolve(d.test), calibration=resolve(d.calibration)
    )
    bench = pipe.benchmark
    if bench is not None:
        train, test, root = resolve((bench.train, bench.test, bench.data))
        bench = dataclasses.replace(bench, train=train, test=test, data=root)
    return dataclasses.replace(pipe, data=data, benchmark=bench)


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


def post_rule(section: ScoreSection) -> Any:
    from anomae.events import PostRule

    try:
        return PostRule(section.min_windows, section.max_gap, section.off, section.cooldown)
    except ValueError as exc:
        raise PipelineError(f"[score]: {exc}") from exc
