"""Pipeline files: one TOML file describes an experiment; this module is its schema.

It holds the sections, :class:`Pipeline`, parsing and loading (with recipes). A section
becomes its owner's settings: ``[model]``, ``[noise]``, ``[sparsity]`` and ``[train]``
:func:`anomae.train.config.train_config`, ``[calibrate]``
:class:`anomae.calibrate_settings.CalibrateSection`, ``[score]`` a
:class:`anomae.events.PostRule`. Carrying a pipeline out lives with its concepts:
:func:`anomae.run.run_pipeline` (``anomae run``), :mod:`anomae.holdout` (the held-out rows),
:mod:`anomae.train.step` (fit and export), :mod:`anomae.calibrate_model` (threshold and
alarm policy). A top-level ``recipe`` lays the file over a shipped recipe or a recipe file
(:func:`with_recipe`; ``"auto"``: the one for the data's shape, :func:`load_pipeline`).
Sections and keys (all optional but ``data.train``)::

    [data]      train, test, calibration (paths relative to the pipeline file's folder),
                timestamp ("": no time column, rows in order one a second; an events
                budget then becomes the 0.99 quantile), series, label, features, exclude,
                timestamp_unit (s, ms, us, ns: epoch numbers' unit; unset: seconds),
                generate ("demo": write the demo data if the files are missing), seed
    [window]    length, stride (scoring), train_stride (training windows), center,
                center_features (centre only these, by name), period (lengthen to the
                training rows' clear period)
    [model]     kind ("dense"|"conv"), hidden, activation, code_activation, channels, kernel,
                code ("fixed"|"features": hidden's last width = the features varying in training)
    [noise]     kind ("none"|"gaussian"|"salt_pepper"|"masking"), sigma, p
    [sparsity]  kind ("none"|"kl"|"l1"), rho, beta
    [train]     epochs, batch_size, lr, weight_decay, val_fraction, patience, seed, device,
                threads (torch's intra-op threads; 0: torch's default)
    [calibrate] method (default "events"), false_events_per_day, min_windows (candidates),
                q, k, rate, alarms_per_day, interval_s, init_quantile, per_feature,
                holdout (fraction of each series, in blocks spread over it, never trained on)
    [score]     min_windows, max_gap, off (hysteresis hold level), cooldown, top_k
    [export]    quantize ("none"|"int8": also write model.int8.onnx when its gate passes)
    [likelihood] short, long, warmup, refit, epsilon, min_spread, season_s, seasons,
                tolerance_s: when present, alarms come from the anomaly likelihood of each
                series' scores, not the fixed threshold (see :mod:`anomae.likelihood`)
    [benchmark] dataset, protocol, data, categories, baselines, vus_window, limit
                (evaluation pipelines, ``anomae evaluate``: see :mod:`anomae.eval.benchmark`)
    [tune]      window, hidden, noise, center (the grid), epochs, train_stride, copies, unit,
                seed, vus_window: when present, the model is chosen label-free first (see
                :mod:`anomae.tune`)

Unknown sections or keys, and values of the wrong type, are errors naming file and key,
raised when the file is read (torch is never imported to check the training sections).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomae.calibrate_settings import CalibrateSection, method_params
from anomae.errors import PipelineError
from anomae.events import PostRule
from anomae.io import LABEL_LIKE, TableSpec
from anomae.settings import from_table
from anomae.spec import WindowSpec
from anomae.timestamps import check_unit
from anomae.train.config import train_config

# Data without time ([data] timestamp = ""): the threshold a recipe's events budget becomes,
# the 0.99 quantile of the held-out windows (as the SMAP and TSB-AD pipelines set)
ROWS_Q = 0.99


@dataclass(frozen=True)
class DataSection:
    train: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    calibration: tuple[str, ...] = ()
    timestamp: str = "timestamp"
    series: str = "series"
    label: str = "label"
    features: tuple[str, ...] = ()
    exclude: tuple[str, ...] = LABEL_LIKE
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
            "timestamp": self.table().timestamp,  # data without time: anomae.io.ROWS
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
    period: bool = False  # lengthen to the training rows' clear period (anomae.period)

    def __post_init__(self) -> None:
        WindowSpec(self.length, self.stride)
        WindowSpec(self.length, self.train_stride)
        if self.center and self.center_features:
            raise ValueError("set center = true (every feature) or center_features, not both")

    @property
    def centred(self) -> bool | list[str]:
        """What the model card records: ``True`` (all), the names, or ``False``."""
        return self.center or list(self.center_features) or False


@dataclass(frozen=True)
class WeightSection:
    """How each feature counts in the score (:mod:`anomae.train.weights`): ``errors``
    "heldout" divides each feature's squared error by its mean on held-out normal windows,
    "spread" by its 0.99 quantile there but never by less than the median over features
    ("equal": raw scaled errors); ``constant`` "ignore" leaves out features constant in the
    training rows ("keep": score them)."""

    errors: str = "equal"
    constant: str = "ignore"

    def __post_init__(self) -> None:
        if self.errors not in ("heldout", "spread", "equal"):
            raise ValueError(f"errors must be 'heldout', 'spread' or 'equal', got {self.errors!r}")
        if self.constant not in ("ignore", "keep"):
            raise ValueError(f"constant must be 'ignore' or 'keep', got {self.constant!r}")


@dataclass(frozen=True)
class ScoreSection:
    """The post-rule (:class:`anomae.events.PostRule`), how many top features a window
    names, and how a window's per-feature errors make its score (``aggregate``: "mean" over
    its observed cells, or "max" over its features; built into the graph at training)."""

    min_windows: int = 3
    max_gap: int = 0
    off: float = 1.0
    cooldown: int = 0
    top_k: int = 3
    aggregate: str = "mean"

    def __post_init__(self) -> None:
        self.post_rule()
        if self.aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be 'mean' or 'max', got {self.aggregate!r}")

    def post_rule(self) -> PostRule:
        return PostRule(self.min_windows, self.max_gap, self.off, self.cooldown)


@dataclass(frozen=True)
class ExportSection:
    """What ``anomae run`` writes beside ``model.onnx``: ``quantize`` "int8" also writes
    ``model.int8.onnx`` when the int8 gate (:mod:`anomae.quantize`) passes on the held-out
    calibration rows, and scores the test data with it ("none": the float32 model only)."""

    quantize: str = "none"

    def __post_init__(self) -> None:
        if self.quantize not in ("none", "int8"):
            raise ValueError(f"quantize must be 'none' or 'int8', got {self.quantize!r}")


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
    export: ExportSection = field(default_factory=ExportSection)
    likelihood: Any = None  # anomae.likelihood.Likelihood: the alarm policy, when set
    benchmark: Any = None  # anomae.eval.section.BenchmarkSection in evaluation pipelines
    tune: Any = None  # anomae.tune.TuneSection: choose the model label-free first
    source: str = "<options>"
    # recipe = "auto" not yet resolved (the data's features unknown when the file was read):
    # laid over the multivariate recipe for now; anomae run loads it again with the count
    auto: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        d.pop("auto")
        return d


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
    "export": ExportSection,
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
            kw[name] = dict(table) if cls is None else from_table(cls, table, f"{source} [{name}]")
    from anomae.eval.section import BenchmarkSection
    from anomae.grid import TuneSection
    from anomae.likelihood import Likelihood

    optional = (("likelihood", Likelihood), ("benchmark", BenchmarkSection), ("tune", TuneSection))
    for name, cls in optional:
        kw[name] = from_table(cls, doc[name], f"{source} [{name}]") if name in doc else None
    pipe = Pipeline(**kw)
    if pipe.data.table().rows:
        pipe = _without_time(pipe)
    train_config(pipe)  # validates [model], [noise], [sparsity], [train] now, torch-free
    if not pipe.data.train and pipe.benchmark is None:
        raise PipelineError(f"{source} [data]: 'train' (file or list of files) is required")
    return pipe


def _without_time(pipe: Pipeline) -> Pipeline:
    """``pipe`` for rows without time (``[data] timestamp = ""``): a budget of false events
    per day has no day to count in (an ``events`` calibration becomes the :data:`ROWS_Q`
    quantile of the held-out windows), and the likelihood's daily season no time of day
    to compare (``season_s = 0``)."""
    if pipe.calibrate.method == "events":
        c = pipe.calibrate  # the budget's own settings go with it; the held-out rows stay
        quantile = CalibrateSection(method="quantile", q=ROWS_Q, holdout=c.holdout,
                                    holdout_from=c.holdout_from, per_feature=c.per_feature,
                                    per_series=c.per_series)  # fmt: skip
        pipe = dataclasses.replace(pipe, calibrate=quantile)
    if pipe.likelihood is not None and pipe.likelihood.season_s:
        pipe = dataclasses.replace(pipe, likelihood=dataclasses.replace(pipe.likelihood,
                                                                        season_s=0.0))  # fmt: skip
    return pipe


def load_pipeline(path: str | Path, n_features: int | None = None) -> Pipeline:
    """The pipeline file ``path``. ``recipe = "auto"`` takes the recipe for the data's
    shape (:func:`shape_recipe`) by ``n_features``, else by ``[data] features``; with
    neither, the multivariate recipe for now, the pipeline marked ``auto`` (``anomae run``
    loads it again once the data is read)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: pipeline file does not exist")
    doc = _read_toml(path)
    auto = doc.get("recipe") == AUTO
    if auto:
        data = doc.get("data")
        listed = data.get("features") if isinstance(data, dict) else None
        n = n_features or (len(listed) if isinstance(listed, list) else 0)
        doc = {**doc, "recipe": shape_recipe(n) if n else "multivariate"}
        auto = not n
    if "recipe" in doc:
        doc = with_recipe(doc, path)
    pipe = with_paths_from(parse_pipeline(doc, str(path)), path.parent)
    return dataclasses.replace(pipe, auto=True) if auto else pipe


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


RECIPES = Path(__file__).resolve().parent / "recipes"  # shipped in the package
AUTO = "auto"  # recipe: the shipped one for the data's shape (shape_recipe), once it is read


def recipe_file(name: str, folder: Path = Path(".")) -> Path:
    """The recipe file ``name`` names: a shipped recipe by its bare name (``multivariate``,
    ``univariate``: ``anomae/recipes/``), else a TOML file relative to ``folder``."""
    shipped = {p.stem: p for p in RECIPES.glob("*.toml")}
    if name in shipped:
        return shipped[name]
    try:
        path = (folder / name).resolve()
        found = path.is_file()
    except (OSError, ValueError) as exc:  # a name too long for the file system, a NUL byte
        raise PipelineError(f"recipe {name!r} is not a usable file name: {exc}") from exc
    if not found:
        known = ", ".join(sorted(shipped))
        raise PipelineError(f"recipe {name!r} not found (looked for {path}; shipped: {known})")
    return path


def with_recipe(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """``doc`` laid over the recipe its top-level ``recipe`` names (a shipped one by name,
    ``recipe = "multivariate"``, or a file relative to ``path``'s folder): every section of
    the recipe is kept, and each key the pipeline sets replaces the recipe's. One recipe per
    data shape, shared by every pipeline of that shape, keeps benchmarks on the settings a
    user's data gets."""
    name = doc.pop("recipe")
    if not isinstance(name, str):
        raise PipelineError(f"{path}: recipe must be a name or a file name, got {name!r}")
    if name == AUTO:
        raise PipelineError(
            f"{path}: recipe '{AUTO}' is chosen by the data's features, where they are read: "
            "anomae run, anomae train and tune, anomae.fit; name multivariate or univariate"
        )
    try:
        base_path = recipe_file(name, path.parent)
    except PipelineError as exc:
        raise PipelineError(f"{path}: {exc}") from exc
    base = _read_toml(base_path)
    if "recipe" in base:
        raise PipelineError(f"{base_path}: a recipe cannot name another recipe")
    return laid_over(base, doc)


def laid_over(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The document ``doc`` laid over ``base`` (a recipe's): each section of ``base`` kept,
    each key ``doc`` sets replacing its. A ``[calibrate] method`` other than the recipe's
    drops the recipe's parameters of its own method (a recipe's ``k`` for ksigma does not
    follow ``method = "quantile"``)."""
    merged: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, table in doc.items():
        if isinstance(table, dict) and isinstance(merged.get(section), dict):
            old = merged[section]
            was = old.get("method", "events")  # the default method's, when the recipe has none
            if section == "calibrate" and table.get("method", was) != was:
                for key in method_params(str(was)):
                    old.pop(key, None)
            old.update(table)
        else:
            merged[section] = table
    return merged


def shape_recipe(n_features: int) -> str:
    """The shipped recipe for data of ``n_features`` features (``recipe = "auto"``):
    ``univariate`` for one, ``multivariate`` for more (docs/benchmarks.md, "One recipe per
    data shape, chosen by the data")."""
    return "univariate" if n_features == 1 else "multivariate"
