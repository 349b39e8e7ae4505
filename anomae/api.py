"""The Python API: train, calibrate, score and save a model in a few calls.

:func:`fit` trains on DataFrames (pandas or polars) or files with a recipe's settings and
calibrates the recipe's threshold, the path ``anomae run`` takes; :class:`AnomalyModel` holds
the one-file model in memory and scores tables as ``anomae score`` writes them; :func:`load`
opens a saved model without torch. Higher scores are more anomalous, and
``score / threshold > 1`` is an anomaly.

    >>> import anomae
    >>> from anomae.synth import SynthConfig, generate
    >>> train, test = generate(SynthConfig(seed=1, n_series=2, n_features=6, train_days=1))
    >>> model = anomae.fit(train, epochs=2, calibration={"method": "quantile", "q": 0.99})
    >>> model.features, model.window
    (('temp_in', 'temp_out', 'pressure', 'flow', 'rpm', 'vibration'), 8)
    >>> windows, events = model.score(test)
    >>> windows.columns[:5]
    ['series', 'timestamp', 'score', 'score_normalised', 'is_anomaly']
    >>> model.calibrate(train, method="ksigma", k=4).card.threshold.method
    'ksigma'
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import polars as pl

from anomae.detector import Detector
from anomae.frames import untimed
from anomae.io import SeriesData, TableSpec, read_series
from anomae.pipeline import AUTO, shape_recipe
from anomae.spec import ModelCard

__all__ = ["RECIPES", "AnomalyModel", "fit", "fit_series", "load", "recipe_path"]

RECIPES = ("multivariate", "univariate")
TRAIN_HINT = (
    "pip install 'anomae[train]' (from a checkout: pip install '.[train]'); loading, "
    "calibrating and scoring need no torch"
)
# keyword arguments of fit() -> (pipeline section, key)
_NAMED = {
    "window": ("window", "length"),
    "noise": ("noise", "kind"),
    "hidden": ("model", "hidden"),
    "epochs": ("train", "epochs"),
    "seed": ("train", "seed"),
    "holdout": ("calibrate", "holdout"),
    "progress": ("train", "progress"),
    "arch": ("model", "kind"),
    "sparsity": ("sparsity", "kind"),
}
_SECTION_OF = {
    **dict.fromkeys(("stride", "train_stride", "center", "center_features", "period"), "window"),
    **dict.fromkeys(("activation", "code_activation", "channels", "kernel", "code"), "model"),
    **dict.fromkeys(("sigma", "p"), "noise"),
    **dict.fromkeys(("rho", "beta"), "sparsity"),
    **dict.fromkeys(
        ("batch_size", "lr", "weight_decay", "val_fraction", "patience", "device"), "train"
    ),
}

Data = Any  # a DataFrame (pandas or polars), a file path, or a list of them


def recipe_path(name: str) -> Path:
    """The shipped recipe ``name`` (``multivariate`` or ``univariate``: ``anomae/recipes/``)."""
    from anomae.pipeline import recipe_file

    return recipe_file(name)


def _table(timestamp: str | None, series: str, label: str | None) -> TableSpec:
    return TableSpec(timestamp=timestamp or "", series=series, label=label)


def _pipeline(recipe: Any, sections: dict[str, dict[str, Any]], source: str) -> Any:
    """The :class:`~anomae.pipeline.Pipeline` of ``recipe`` with ``sections``' keys replaced."""
    from anomae.errors import PipelineError
    from anomae.pipeline import Pipeline, laid_over, parse_pipeline, with_recipe

    if isinstance(recipe, Pipeline):
        if not sections:
            return recipe
        doc = _as_toml(recipe.to_dict())
    else:
        path = recipe_path(recipe) if recipe in RECIPES else Path(recipe)
        if not path.is_file():
            raise PipelineError(
                f"recipe {str(recipe)!r} is neither {' nor '.join(RECIPES)} nor a file"
            )
        doc = tomllib.loads(path.read_text())
        doc = with_recipe(doc, path) if "recipe" in doc else doc
        source = f"{source} (recipe {path})"
        sections.setdefault("train", {}).setdefault("progress", False)
        doc.setdefault("data", {})["train"] = ["<fit data>"]
    return parse_pipeline(laid_over(doc, sections), source)


def _as_toml(value: Any) -> Any:
    """A :meth:`Pipeline.to_dict` as the TOML document it came from (lists, no None)."""
    if isinstance(value, dict):
        return {k: _as_toml(v) for k, v in value.items() if v is not None}
    return [_as_toml(v) for v in value] if isinstance(value, list | tuple) else value


def _sections(named: dict[str, Any], settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, value in named.items():
        if value is not None:
            section, name = _NAMED[key]
            out.setdefault(section, {})[name] = list(value) if key == "hidden" else value
    for key, value in settings.items():
        if key not in _SECTION_OF:
            known = sorted([*_NAMED, *_SECTION_OF, "calibration"])
            raise TypeError(f"fit() got an unknown setting {key!r}; known: {known}")
        out.setdefault(_SECTION_OF[key], {})[key] = value
    if named.get("hidden") is not None:  # widths asked for are the widths trained
        out["model"].setdefault("code", "fixed")
    return out


def fit(
    data: Data,
    *,
    features: Sequence[str] | None = None,
    timestamp: str | None = "timestamp",
    series: str = "series",
    label: str | None = "label",
    recipe: str | Path | Any = "auto",
    window: int | None = None,
    noise: str | None = None,
    hidden: Sequence[int] | None = None,
    epochs: int | None = None,
    seed: int | None = None,
    holdout: float | None = None,
    progress: bool | None = None,
    calibration: dict[str, Any] | None = None,
    **settings: Any,
) -> AnomalyModel:
    """Train a model on normal ``data`` and calibrate its threshold, as ``anomae run`` does.

    ``data``: a pandas or polars DataFrame, a CSV/Parquet path, or a list of them, read by
    :func:`anomae.io.read_series` (``features``: which columns; default every numeric one
    but ``timestamp``, ``series`` and ``label``; ``timestamp=None``: the rows are in time
    order with no time column, one a second, as the card then records). Settings come from
    ``recipe``: ``"auto"`` (the default) takes the shipped ``"univariate"`` recipe for data
    of one feature and ``"multivariate"`` for more (:func:`anomae.pipeline.shape_recipe`);
    or name one of them, a recipe TOML path, or a :class:`~anomae.pipeline.Pipeline`.
    ``window`` (rows), ``noise`` (kind), ``hidden``,
    ``epochs``, ``seed``, ``holdout`` (fraction held out for calibration) and the other
    keys of [window], [model], [noise], [sparsity] and [train] given as keywords (``sigma``,
    ``lr``, ``arch`` for the model kind, ...) replace the recipe's (``hidden`` given: those
    widths, ``code="fixed"``, unless ``code`` is given too); ``calibration`` replaces
    [calibrate] keys (``{"method": "quantile", "q": 0.99}``). Training progress is quiet
    unless ``progress=True``. Needs torch (``pip install 'anomae[train]'``)."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"anomae.fit trains with torch, which is missing: {TRAIN_HINT}") from exc
    named: dict[str, Any] = {
        "window": window,
        "noise": noise,
        "hidden": hidden,
        "epochs": epochs,
        "seed": seed,
    }
    named |= {"holdout": holdout, "progress": progress}
    sections = _sections(named, settings)
    if calibration:
        sections.setdefault("calibrate", {}).update(calibration)
    arrays = data if isinstance(data, list | tuple) and data else [data]
    if timestamp == "timestamp" and all(untimed(a) for a in arrays):
        timestamp = None  # an array's rows are in time order, with no time column
    # the card records the columns read (anomae score and AnomalyModel.score read them)
    sections.setdefault("data", {}).update(timestamp=timestamp or "", series=series)
    auto = isinstance(recipe, str) and recipe == AUTO
    pipe = None
    if features or not auto:  # the recipe known: the settings checked before the data is read
        pipe = _pipeline(shape_recipe(len(features or ())) if auto else recipe, sections,
                         "anomae.fit")  # fmt: skip
    rows, names = read_series(data, _table(timestamp, series, label), features)
    if pipe is None:  # auto: the recipe for the features read
        pipe = _pipeline(shape_recipe(len(names)), sections, "anomae.fit")
    return fit_series(pipe, rows, names)


def fit_series(pipe: Any, series: list[SeriesData], features: tuple[str, ...]) -> AnomalyModel:
    """:func:`fit` on series already read, with the settings of ``pipe``: trained by
    :func:`anomae.train.step.train_step`, calibrated by
    :func:`anomae.calibrate_model.calibrate_trained` on the held-out blocks (on all rows,
    in-sample, when ``[calibrate] holdout = 0``); with ``[window] period``, its window is
    first lengthened to the series' period (:mod:`anomae.period`)."""
    from anomae.calibrate_model import calibrate_trained
    from anomae.modelfile import rewrite_card
    from anomae.period import period_window
    from anomae.train.step import train_step

    pipe, _ = period_window(pipe, [s.values for s in series])
    with TemporaryDirectory(prefix="anomae-fit-") as tmp:
        path = Path(tmp) / "model.onnx"
        card, summary, cal_rows = train_step(pipe, series, features, path, calibrated=True)
        names = None
        if not cal_rows:
            cal_rows, names = [s.values for s in series], [s.name for s in series]
        card, _ = calibrate_trained(path, card, cal_rows, pipe, series, names=names)
        rewrite_card(path, card)
        return AnomalyModel(path.read_bytes())


def load(path: str | Path, device: str = "cpu", threads: int = 0) -> AnomalyModel:
    """Open a saved model (no torch needed); a damaged file raises
    :class:`~anomae.detector.DetectorError` naming it."""
    from anomae.detector import DetectorError

    p = Path(path)
    if not p.is_file():
        raise DetectorError(f"{p}: model file does not exist")
    return AnomalyModel(p.read_bytes(), str(p), device=device, threads=threads)


class AnomalyModel:
    """A trained model in memory: the one-file ONNX model and its card.

    ``features`` (names, in order), ``window`` (rows), ``threshold`` and ``card`` describe
    it; :meth:`calibrate` sets a new threshold, :meth:`score` scores tables, :meth:`save`
    writes the file ``anomae score`` and ``anomae monitor`` read. ``detector`` is the
    :class:`~anomae.detector.Detector` (onnxruntime session) inside."""

    def __init__(
        self, data: bytes, name: str = "<in-memory model>", device: str = "cpu", threads: int = 0
    ) -> None:
        self.name = name
        self._bytes = data
        self._device, self._threads = device, threads
        self.detector = Detector.from_bytes(data, name, device=device, threads=threads)

    def __repr__(self) -> str:
        return (
            f"AnomalyModel(features={list(self.features)}, window={self.window}, "
            f"threshold={self.threshold})"
        )

    @property
    def card(self) -> ModelCard:
        return self.detector.card

    @property
    def features(self) -> tuple[str, ...]:
        return self.card.features

    @property
    def window(self) -> int:
        return self.card.window.length

    @property
    def threshold(self) -> float | None:
        return self.detector.threshold

    def to_bytes(self) -> bytes:
        """The model file's bytes."""
        return self._bytes

    def _table(self, timestamp: str | None, series: str | None, label: str | None) -> TableSpec:
        """The table to read: the time and series columns given, else the card's (data
        without time if it was trained so), and ``label``."""
        cols = self.card.columns
        time = cols.get("timestamp") if timestamp is None else timestamp  # "": rows
        return _table("timestamp" if time is None else time,
                      series or cols.get("series") or "series", label)  # fmt: skip

    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` atomically (a complete file or none); returns it."""
        from anomae.modelfile import atomic_write_bytes

        atomic_write_bytes(path, self._bytes)
        return Path(path)

    def calibrate(
        self,
        data: Data,
        method: str = "events",
        *,
        timestamp: str | None = None,
        series: str | None = None,
        label: str | None = "label",
        **params: Any,
    ) -> AnomalyModel:
        """Set the threshold from held-out normal ``data`` as ``anomae calibrate`` does (only
        the card changes); returns ``self``. ``method``: events, quantile, ksigma, mad, pot,
        fpr or f1 (labelled data); ``params`` are the method's (``q``, ``k``, ``rate``,
        ``false_events_per_day``, ``per_series``, ...)."""
        from anomae.calibrate_model import recalibrate_card
        from anomae.calibrate_settings import CalibrateSection
        from anomae.modelfile import rewrite_card
        from anomae.settings import from_table

        section = from_table(CalibrateSection, {"method": method, **params}, "calibrate()")
        rows, _ = read_series(data, self._table(timestamp, series, label), self.features)
        card = recalibrate_card(self.detector, rows, section)
        with TemporaryDirectory(prefix="anomae-calibrate-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(self._bytes)
            rewrite_card(path, card)
            data_out = path.read_bytes()
        self.detector = Detector.from_bytes(
            data_out, self.name, device=self._device, threads=self._threads
        )
        self._bytes = data_out
        return self

    def score(
        self,
        data: Data,
        *,
        timestamp: str | None = None,
        series: str | None = None,
        label: str | None = "label",
        top_k: int = 3,
        threshold: float | None = None,
        likelihood: bool | None = None,
        device: str = "cpu",
        as_pandas: bool = False,
        **rule: Any,
    ) -> tuple[Any, Any]:
        """Score ``data``: the windows table and the events table ``anomae score`` writes
        (polars DataFrames; pandas with ``as_pandas``). The post-rule (``min_windows``,
        ``max_gap``, ``off``, ``cooldown`` given as keywords) and the likelihood alarm
        (``likelihood`` True/False) follow the model card unless given; ``threshold``
        replaces the card's for every series."""
        from anomae.events import resolve_likelihood, resolve_post_rule
        from anomae.score import ScoreOptions, score_all

        post_rule, _ = resolve_post_rule(self.card.alarm, rule)
        policy, _ = resolve_likelihood(self.card.alarm, likelihood, {})
        opts = ScoreOptions(
            rule=post_rule, top_k=top_k, threshold=threshold, likelihood=policy, progress=False
        )
        det = self.detector
        if device != self._device:
            det = Detector.from_bytes(self._bytes, self.name, device=device)
        rows, _ = read_series(data, self._table(timestamp, series, label), self.features)
        windows, events, _ = score_all(det, rows, opts)
        if as_pandas:
            return _to_pandas(windows), _to_pandas(events)
        return windows, events

    def score_rows(self, values: np.ndarray) -> np.ndarray:
        """Scores of the windows of one series' rows ``[rows, features]`` (no timestamps,
        so no gap rule): one per window, the first ending at row ``window - 1``."""
        values = np.asarray(values, np.float32)
        if values.ndim != 2 or values.shape[1] != len(self.features):
            raise ValueError(
                f"rows must be [rows, {len(self.features)}] (features {list(self.features)}), "
                f"got shape {values.shape}"
            )
        return self.detector.score_series(values).score


def _to_pandas(frame: pl.DataFrame) -> Any:
    """A polars table as pandas without pyarrow (enum columns as text)."""
    import pandas as pd

    cols = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pl.Enum | pl.Categorical):
            col = col.cast(pl.String)
        cols[name] = col.to_numpy() if col.dtype != pl.String else col.to_list()
    return pd.DataFrame(cols, columns=frame.columns)
