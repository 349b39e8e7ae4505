"""Frozen descriptions of a model: window, scaler, threshold and the model card.

The model card is the JSON stored in ``model.onnx``'s ``metadata_props`` under the key
``anomae.card``. It is data, never pickle, and it round-trips exactly::

    >>> card = ModelCard(features=("a", "b"), window=WindowSpec(4, 1),
    ...                  scaler=Scaler(center=(0.0, 1.0), scale=(1.0, 2.0)))
    >>> ModelCard.from_json(card.to_json()) == card
    True
    >>> WindowSpec(4, 2).count(9)
    3
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from anomae.errors import AnomaeError

FORMAT_VERSION = 1
CARD_KEY = "anomae.card"


class ModelCardError(AnomaeError, ValueError):
    """The model card is missing, malformed, or of an unsupported format."""


@dataclass(frozen=True)
class WindowSpec:
    """Sliding windows of ``length`` rows, one every ``stride`` rows, within one series."""

    length: int
    stride: int = 1

    def __post_init__(self) -> None:
        if int(self.length) < 1:
            raise ValueError(f"window length must be >= 1, got {self.length}")
        if int(self.stride) < 1:
            raise ValueError(f"window stride must be >= 1, got {self.stride}")

    def count(self, n_rows: int) -> int:
        """How many complete windows ``n_rows`` rows hold."""
        if n_rows < self.length:
            return 0
        return (n_rows - self.length) // self.stride + 1


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation ``(x - center) / scale`` applied inside the graph, and
    the weight of each feature's squared error in the score (``error_weight``, empty for
    all 1). Training sets a feature's weight to the inverse of its typical error on
    held-out normal windows, so every sensor's error is measured in units of its own normal
    error and no badly reconstructed (or very well reconstructed) sensor dominates the
    score. A weight of 0 leaves the feature out: its input is held at its training value
    and it counts neither in the score nor in the coverage (features constant in training).
    """

    center: tuple[float, ...]
    scale: tuple[float, ...]
    error_weight: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.center) != len(self.scale):
            raise ValueError("scaler center and scale differ in length")
        if any(not math.isfinite(s) or s <= 0 for s in self.scale):
            raise ValueError("scaler scale must be finite and > 0")
        w = self.error_weight
        if w:
            if len(w) != len(self.center):
                raise ValueError("scaler error_weight differs in length from its center")
            if any(not math.isfinite(v) or v < 0 for v in w) or not any(v > 0 for v in w):
                raise ValueError("scaler error_weight must be finite, >= 0, and not all 0")


@dataclass(frozen=True)
class Threshold:
    """A score threshold and how it was obtained; ``score / value > 1`` is anomalous.

    ``expected_far`` is the false-alarm rate per window the method promises on data like the
    calibration set, ``expected_far_ci`` a 95 % interval for it (block bootstrap, see
    :mod:`anomae.calibrate`), and ``per_feature`` optional thresholds of the per-feature
    errors, by feature name, to tell which sensors are out of their normal range.

    Event-level calibration (method ``events``, :mod:`anomae.calibrate_events`) also records
    the budget ``false_events_per_day`` (per series), the ``post_rule`` it chose together
    with the value (``min_windows``, ``max_gap``, ``off``, ``cooldown``), and
    ``expected_false_events_per_day`` with its 95 % interval ``..._ci``. Other methods leave
    them at their defaults, as cards written before they existed do.

    Per-series calibration (:mod:`anomae.calibrate_series`) keeps the fleet threshold in
    ``value`` and adds ``per_series``, each series' own threshold by series name, and
    ``per_series_fallback``, the series that had too little held-out data for one (series
    name to the reason): they, like series never seen at calibration, use ``value``. Read a
    series' threshold with :meth:`for_series`, which batch scoring and the monitor share.
    """

    value: float
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    n_calibration: int = 0
    expected_far: float | None = None
    expected_far_ci: tuple[float, float] | None = None
    per_feature: dict[str, float] = field(default_factory=dict)
    false_events_per_day: float | None = None
    post_rule: dict[str, Any] = field(default_factory=dict)
    expected_false_events_per_day: float | None = None
    expected_false_events_per_day_ci: tuple[float, float] | None = None
    per_series: dict[str, float] = field(default_factory=dict)
    per_series_fallback: dict[str, str] = field(default_factory=dict)
    # quantiles of the calibration windows' normalised scores ("0.99" -> value): what the
    # monitor's score drift is read against
    score_quantiles: dict[str, float] = field(default_factory=dict)

    def for_series(self, name: str) -> float:
        """The threshold of series ``name``: its own, else the fleet's ``value``.

        >>> th = Threshold(2.0, "quantile", per_series={"m1": 1.5})
        >>> th.for_series("m1"), th.for_series("m9")
        (1.5, 2.0)
        """
        return self.per_series.get(name, self.value)

    def __post_init__(self) -> None:
        if not math.isfinite(self.value) or self.value <= 0:
            raise ValueError(f"threshold must be finite and > 0, got {self.value}")
        if self.expected_far_ci is not None:
            if len(self.expected_far_ci) != 2:
                raise ValueError(f"expected_far_ci must be (lo, hi), got {self.expected_far_ci}")
            lo, hi = self.expected_far_ci
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"expected_far_ci must be 0 <= lo <= hi <= 1, got ({lo}, {hi})")
        ci = self.expected_false_events_per_day_ci
        if ci is not None and (len(ci) != 2 or not 0.0 <= ci[0] <= ci[1] < math.inf):
            raise ValueError(f"expected_false_events_per_day_ci must be 0 <= lo <= hi, got {ci}")
        if self.false_events_per_day is not None and not self.false_events_per_day > 0:
            raise ValueError(f"false_events_per_day must be > 0, got {self.false_events_per_day}")
        for name, v in self.per_feature.items():
            if not math.isfinite(v) or v <= 0:
                raise ValueError(
                    f"per-feature threshold of {name!r} must be finite and > 0, got {v}"
                )
        for name, v in self.per_series.items():
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"threshold of series {name!r} must be finite and > 0, got {v}")
        both = sorted(set(self.per_series) & set(self.per_series_fallback))
        if both:
            raise ValueError(f"series {both} have a threshold of their own and fell back too")


def _pair(v: Any) -> tuple[float, float]:
    """A JSON list ``[lo, hi]`` back to the tuple the dataclass holds."""
    lo, hi = v  # anything else raises ValueError/TypeError, reported as a malformed card
    return float(lo), float(hi)


def _no_constant(name: str) -> float:
    """Cards are written with ``allow_nan=False``: NaN or Infinity means a damaged card, and
    a card holding one could not be written back."""
    raise ValueError(f"{name} is not a number a model card holds")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a model card number")
    return value


DEFAULT_COLUMNS: dict[str, str | None] = {
    "timestamp": "timestamp",
    "series": "series",
    "label": "label",
    "timestamp_unit": None,
}


def _columns(d: Any) -> dict[str, str | None]:
    """A card's ``columns``, the defaults filling what it lacks (older cards: all)."""
    given = dict(d or {})
    out = dict(DEFAULT_COLUMNS)
    for k in out:
        if k in given:
            out[k] = None if given[k] is None else str(given[k])
    return out


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True)
class ModelCard:
    """Everything scoring needs to know about a model, stored inside the ONNX file."""

    features: tuple[str, ...]
    window: WindowSpec
    scaler: Scaler
    threshold: Threshold | None = None
    architecture: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    parity: dict[str, Any] = field(default_factory=dict)
    # int8 models (anomae.quantize): how the graph was quantised and the gate's figures;
    # empty for float32 models and for cards written before it existed
    quantization: dict[str, Any] = field(default_factory=dict)
    # the alarm policy scoring applies by default: {"post_rule": {min_windows, max_gap, off,
    # cooldown}, "likelihood": {Likelihood fields}} (likelihood absent: the fixed threshold)
    alarm: dict[str, Any] = field(default_factory=dict)
    # the gap rule (anomae.windows): the training data's median seconds between rows, and
    # the gap after which batch and stream restart a series' windows; 0 (cards written
    # before): unknown / no rule in batch, the monitor's auto rule
    interval_s: float = 0.0
    max_gap_s: float = 0.0
    # the training data's table columns, the defaults of the commands that read data for
    # this model: {"timestamp", "series", "label"} names (label None: none) and
    # "timestamp_unit" (None: epoch seconds); cards written before: DEFAULT_COLUMNS
    columns: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_COLUMNS))
    format_version: int = FORMAT_VERSION
    # retrained models (anomae.retrain): the parent model's sha256 and created_at, the data
    # span (Unix s), rows used and dropped; empty for trained models and older cards
    lineage: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.features) == 0:
            raise ValueError("a model needs at least one feature")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"duplicate feature names: {list(self.features)}")
        if len(self.scaler.center) != len(self.features):
            raise ValueError("scaler size differs from the number of features")
        for name in ("interval_s", "max_gap_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")

    def with_threshold(self, threshold: Threshold) -> ModelCard:
        return replace(self, threshold=threshold)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = list(self.features)
        d["scaler"] = {"center": list(self.scaler.center), "scale": list(self.scaler.scale)}
        if self.scaler.error_weight:
            d["scaler"]["error_weight"] = list(self.scaler.error_weight)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        if not isinstance(d, dict):
            raise ModelCardError("model card is not a JSON object")
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelCardError(
                f"model card format_version {version!r} is not supported (this anomae reads "
                f"{FORMAT_VERSION}); re-export the model with this version of anomae"
            )
        try:
            th = d.get("threshold")
            return cls(
                features=tuple(str(f) for f in d["features"]),
                window=WindowSpec(int(d["window"]["length"]), int(d["window"]["stride"])),
                scaler=Scaler(
                    center=tuple(float(v) for v in d["scaler"]["center"]),
                    scale=tuple(float(v) for v in d["scaler"]["scale"]),
                    error_weight=tuple(
                        float(v) for v in d["scaler"].get("error_weight") or ()
                    ),
                ),
                threshold=None
                if th is None
                else Threshold(
                    value=float(th["value"]),
                    method=str(th["method"]),
                    params=dict(th.get("params") or {}),
                    n_calibration=int(th.get("n_calibration", 0)),
                    expected_far=None
                    if th.get("expected_far") is None
                    else float(th["expected_far"]),
                    # cards written before these keys existed load with the defaults
                    expected_far_ci=None
                    if th.get("expected_far_ci") is None
                    else _pair(th["expected_far_ci"]),
                    per_feature={
                        str(k): float(v) for k, v in (th.get("per_feature") or {}).items()
                    },
                    false_events_per_day=_opt_float(th.get("false_events_per_day")),
                    post_rule=dict(th.get("post_rule") or {}),
                    expected_false_events_per_day=_opt_float(
                        th.get("expected_false_events_per_day")
                    ),
                    expected_false_events_per_day_ci=None
                    if th.get("expected_false_events_per_day_ci") is None
                    else _pair(th["expected_false_events_per_day_ci"]),
                    per_series={
                        str(k): float(v) for k, v in (th.get("per_series") or {}).items()
                    },
                    per_series_fallback={
                        str(k): str(v) for k, v in (th.get("per_series_fallback") or {}).items()
                    },
                    score_quantiles={
                        str(k): float(v) for k, v in (th.get("score_quantiles") or {}).items()
                    },
                ),
                architecture=dict(d.get("architecture") or {}),
                training=dict(d.get("training") or {}),
                data_fingerprint=str(d.get("data_fingerprint", "")),
                versions={str(k): str(v) for k, v in (d.get("versions") or {}).items()},
                created_at=str(d.get("created_at", "")),
                parity=dict(d.get("parity") or {}),
                quantization=dict(d.get("quantization") or {}),
                alarm=dict(d.get("alarm") or {}),
                interval_s=float(d.get("interval_s", 0.0)),
                max_gap_s=float(d.get("max_gap_s", 0.0)),
                columns=_columns(d.get("columns")),
                format_version=int(version),
                lineage=dict(d.get("lineage") or {}),
            )
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise ModelCardError(f"model card is malformed: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            d = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
        except ValueError as exc:  # JSONDecodeError, or an integer over Python's digit limit
            raise ModelCardError(f"model card is not valid JSON: {exc}") from exc
        return cls.from_dict(d)
