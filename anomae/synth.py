"""A deterministic synthetic plant: multivariate sensor series with labelled anomalies.

Each machine (series ``m1``, ``m2``, ...) is driven by a few shared latent signals: the
plant's ambient temperature (daily cycle plus weather), the machine's load (its own
operating point, a day-shift profile and slow random variation) and first-order thermal
lags. Sensors follow them through simple physics with per-machine gains and offsets, plus
smooth AR(1) process noise and white measurement noise. The training period is normal;
the test period that immediately follows holds non-overlapping, labelled anomalies of
every kind in :data:`ANOMALY_KINDS`. The same :class:`SynthConfig` always gives the same
frames, and a machine's signals do not depend on how many machines are generated.

    >>> cfg = SynthConfig(n_series=2, n_features=6, train_days=1, test_days=1)
    >>> train, test = generate(cfg)
    >>> train.height, test.height
    (2880, 2880)
    >>> train.columns[:3], train.columns[-2:]
    (['timestamp', 'series', 'temp_in'], ['label', 'anomaly'])
    >>> int(train["label"].sum()), sorted(test["anomaly"].drop_nulls().unique())
    (0, ['correlation_break', 'drift', 'level_shift', 'noise_burst', 'spike', 'stuck'])
    >>> generate(cfg)[1].equals(test)
    True
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from anomae.atomic import write_atomically

ANOMALY_KINDS = ("spike", "level_shift", "drift", "stuck", "correlation_break", "noise_burst")

# All sensors are always simulated, in this order; ``n_features`` keeps the first ones, so a
# machine's readings do not change with the number of features asked for.
SENSORS = (
    "temp_in", "temp_out", "pressure", "flow", "rpm", "vibration",
    "current", "voltage", "oil_temp", "power_kw", "humidity", "bearing_temp",
)  # fmt: skip
# (AR(1) process-noise std, white measurement-noise std) per sensor, in its own unit.
_NOISE = {
    "temp_in": (0.3, 0.1), "temp_out": (0.3, 0.15), "pressure": (0.04, 0.03),
    "flow": (0.8, 0.4), "rpm": (12.0, 8.0), "vibration": (0.04, 0.06),
    "current": (0.5, 0.4), "voltage": (1.0, 0.6), "oil_temp": (0.3, 0.15),
    "power_kw": (0.4, 0.3), "humidity": (1.5, 0.5), "bearing_temp": (0.3, 0.15),
}  # fmt: skip
# Physical range per sensor; readings are clipped to it.
_RANGE = {s: (-math.inf if "temp" in s else 0.0, math.inf) for s in SENSORS}
_RANGE["humidity"] = (0.0, 100.0)
# Segment length in rows, inclusive bounds, per kind.
SEGMENT_LENGTHS = {
    "spike": (1, 5), "level_shift": (30, 120), "drift": (120, 180),
    "stuck": (30, 120), "correlation_break": (90, 180), "noise_burst": (30, 90),
}  # fmt: skip
# Magnitude in local std units per kind: the step, the spike, the drift's final offset and
# the std of the burst's added noise.
SIZES = {"spike": (5, 8), "level_shift": (4, 7), "drift": (4, 7), "noise_burst": (2, 3)}
# (partner, follower): the follower is replaced by an independent signal in a break.
_PAIRS = (("flow", "pressure"), ("rpm", "vibration"), ("rpm", "flow"), ("current", "power_kw"))
_LEAD_IN = 200  # normal rows at the start of the test period, for windows to warm up
_GAP = 60  # normal rows after each anomaly, so each one has a clean surrounding


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; every field has a demo-sized default."""

    seed: int = 7
    n_series: int = 4
    n_features: int = 8
    freq_s: int = 60
    train_days: float = 5.0
    test_days: float = 2.0
    missing_rate: float = 0.002
    anomalies_per_kind: int = 1
    start: str = "2026-01-05T00:00:00"

    def __post_init__(self) -> None:
        if not 6 <= self.n_features <= len(SENSORS):
            raise ValueError(f"n_features must be in 6..{len(SENSORS)}, got {self.n_features}")
        if self.n_series < 1 or self.freq_s < 1 or self.anomalies_per_kind < 0:
            raise ValueError("n_series and freq_s must be >= 1, anomalies_per_kind >= 0")
        if self.train_rows < 1 or self.test_rows < 1:
            raise ValueError("train_days and test_days must each give at least one row")
        if not 0.0 <= self.missing_rate < 1.0:
            raise ValueError(f"missing_rate must be in [0, 1), got {self.missing_rate}")
        datetime.fromisoformat(self.start)  # raises ValueError on a malformed start

    @property
    def train_rows(self) -> int:
        return round(self.train_days * 86400 / self.freq_s)

    @property
    def test_rows(self) -> int:
        return round(self.test_days * 86400 / self.freq_s)

    @property
    def features(self) -> tuple[str, ...]:
        return SENSORS[: self.n_features]


def generate(cfg: SynthConfig = SynthConfig()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return ``(train, test)`` frames, sorted by series then timestamp."""
    train, test, _ = _build(cfg)
    return train, test


def anomaly_events(cfg: SynthConfig = SynthConfig()) -> pl.DataFrame:
    """The injected anomalies of ``generate(cfg)``'s test frame, one row each.

    Columns: ``series``, ``kind``, ``start`` and ``end`` (timestamps of the first and last
    labelled rows) and ``sensors``. For ``correlation_break`` the sensors are
    ``[partner, replaced]``: only the second one's values were changed.
    """
    return _build(cfg)[2]


def write_demo(out_dir: str | Path, cfg: SynthConfig = SynthConfig()) -> dict[str, Path]:
    """Write ``train.parquet``, ``test.parquet`` and ``test.csv`` under ``out_dir``.

    The files are written atomically (:mod:`anomae.atomic`): a reader never sees a
    half-written file, and replaced files keep their permissions.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = generate(cfg)
    paths = {
        "train": out / "train.parquet",
        "test": out / "test.parquet",
        "test_csv": out / "test.csv",
    }
    write_atomically(
        [
            (paths["train"], _encoded(train.write_parquet)),
            (paths["test"], _encoded(test.write_parquet)),
            (paths["test_csv"], _encoded(test.write_csv)),
        ]
    )
    return paths


def _encoded(write: Callable[[io.BytesIO], object]) -> bytes:
    buf = io.BytesIO()
    write(buf)
    return buf.getvalue()


def _build(cfg: SynthConfig) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    n_train, n_test = cfg.train_rows, cfg.test_rows
    n = n_train + n_test
    start = datetime.fromisoformat(cfg.start)
    if start.tzinfo is not None:
        start = start.astimezone(UTC).replace(tzinfo=None)
    stamps = np.datetime64(start, "us") + np.arange(n) * np.timedelta64(cfg.freq_s, "s")
    # Seconds since the start's midnight: the daily cycles follow the wall clock.
    t_s = np.arange(n) * float(cfg.freq_s) + (start.hour * 3600 + start.minute * 60 + start.second)
    # Spawned streams: machine i's draws depend only on (seed, i), not on n_series.
    plant_seq, *machine_seqs = np.random.SeedSequence(cfg.seed).spawn(1 + cfg.n_series)
    ambient = _ambient(np.random.default_rng(plant_seq), t_s, cfg.freq_s)
    k = cfg.n_features
    trains, tests, events = [], [], []
    for i, seq in enumerate(machine_seqs):
        name = f"m{i + 1}"
        signal_rng, anomaly_rng, missing_rng = (np.random.default_rng(s) for s in seq.spawn(3))
        values = _machine(signal_rng, t_s, ambient, cfg.freq_s)
        missing = missing_rng.random(values.shape) < cfg.missing_rate
        test_vals, kinds, touched, evs = _inject(anomaly_rng, values[n_train:, :k], cfg)
        values[n_train:, :k] = test_vals
        # Anomalous readings stay visible: a stuck or spiking sensor reports a value.
        missing[n_train:, :k] &= ~touched
        values = np.clip(values, *np.array([_RANGE[s] for s in SENSORS]).T)
        values[missing] = np.nan
        trains.append(_frame(stamps[:n_train], name, values[:n_train, :k], None, cfg))
        tests.append(_frame(stamps[n_train:], name, values[n_train:, :k], kinds, cfg))
        for kind, s, e, sensors in evs:
            ts = stamps[n_train:]
            events.append((name, kind, ts[s].item(), ts[e - 1].item(), sensors))
    event_frame = pl.DataFrame(
        events,
        schema={
            "series": pl.Utf8,
            "kind": pl.Utf8,
            "start": pl.Datetime("us"),
            "end": pl.Datetime("us"),
            "sensors": pl.List(pl.Utf8),
        },
        orient="row",
    )
    return pl.concat(trains), pl.concat(tests), event_frame


def _frame(
    stamps: np.ndarray, name: str, values: np.ndarray, kinds: np.ndarray | None, cfg: SynthConfig
) -> pl.DataFrame:
    n = len(stamps)
    codes = np.full(n, -1, dtype=np.int8) if kinds is None else kinds
    cols = [pl.Series("timestamp", stamps, dtype=pl.Datetime("us"))]
    cols.append(pl.Series("series", [name] * n, dtype=pl.Utf8))
    cols += [
        pl.Series(f, values[:, j], dtype=pl.Float64, nan_to_null=True)
        for j, f in enumerate(cfg.features)
    ]
    cols.append(pl.Series("label", (codes >= 0).astype(np.int8), dtype=pl.Int8))
    names = [ANOMALY_KINDS[c] if c >= 0 else None for c in codes.tolist()]
    cols.append(pl.Series("anomaly", names, dtype=pl.Utf8))
    return pl.DataFrame(cols)


def _causal_filter(x: np.ndarray, phi: float) -> np.ndarray:
    """``y[t] = phi * y[t-1] + x[t]`` from ``y[-1] = 0`` along axis 0, without a Python loop.

    The recursion is a convolution with ``phi ** k``; an FFT twice the length makes it linear.
    """
    n = x.shape[0]
    kernel = np.fft.rfft(phi ** np.arange(n), 2 * n)
    if x.ndim == 2:
        kernel = kernel[:, None]
    return np.fft.irfft(np.fft.rfft(x, 2 * n, axis=0) * kernel, 2 * n, axis=0)[:n]


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    """``k`` independent stationary unit-variance AR(1) series, ``[n, k]``."""
    innov = rng.standard_normal((n, k)) * math.sqrt(1.0 - phi**2)
    # Starting from a stationary draw, so the first hours are not calmer than the rest.
    y0 = rng.standard_normal(k)
    return _causal_filter(innov, phi) + np.outer(phi ** np.arange(1, n + 1), y0)


def _lag(x: np.ndarray, tau_s: float, freq_s: int) -> np.ndarray:
    """First-order lag with time constant ``tau_s`` (thermal inertia), settled at ``x[0]``."""
    phi = math.exp(-freq_s / tau_s)
    return x[0] + (1.0 - phi) * _causal_filter(x - x[0], phi)


def _phi(tau_s: float, freq_s: int) -> float:
    # Time constants are in seconds so the dynamics do not change with the sampling rate.
    return math.exp(-freq_s / tau_s)


def _ambient(rng: np.random.Generator, t_s: np.ndarray, freq_s: int) -> np.ndarray:
    """Plant ambient temperature in degC: a daily cycle peaking at 15:00 plus weather."""
    daily = 6.0 * np.sin(2 * np.pi * (t_s / 86400.0 - 9.0 / 24.0))
    weather = 2.0 * _ar1(rng, len(t_s), 1, _phi(6 * 3600, freq_s))[:, 0]
    return 10.0 + daily + weather


def _machine(
    rng: np.random.Generator, t_s: np.ndarray, ambient: np.ndarray, freq_s: int
) -> np.ndarray:
    """Clean readings ``[rows, len(SENSORS)]`` of one machine."""
    n = len(t_s)
    g = rng.normal(1.0, 0.05, size=len(SENSORS))  # per-machine sensor gains
    hour = (t_s % 86400.0) / 3600.0
    # The day shift (06-22) runs harder; sigmoid edges keep the load free of steps.
    shift = 1 / (1 + np.exp(-1.5 * (hour - 6))) - 1 / (1 + np.exp(-1.5 * (hour - 22)))
    operating_point = rng.uniform(0.45, 0.65)
    load = operating_point + 0.15 * (shift - 0.5)
    load = np.clip(load + 0.09 * _ar1(rng, n, 1, _phi(1800, freq_s))[:, 0], 0.1, 1.0)
    amb = ambient + rng.normal(0.0, 1.0)  # the machine room is warmer or cooler
    temp_in = 0.6 * amb + 8.0
    temp_out = temp_in + 18.0 * g[1] * _lag(load, 600, freq_s)
    flow = 5.0 + 55.0 * g[3] * _lag(load, 180, freq_s)
    pressure = 1.2 + 0.0009 * g[2] * flow**2  # system curve: pressure ~ flow squared
    rpm = 600.0 + 2400.0 * g[4] * load
    vibration = 0.8 + 2.2 * g[5] * (rpm / 3000.0) ** 2
    current = 12.0 + 48.0 * g[6] * load
    voltage = 400.0 + rng.normal(0.0, 4.0) - 0.04 * current  # sags slightly under load
    oil_temp = 0.3 * amb + 35.0 + 25.0 * g[8] * _lag(load, 1800, freq_s)
    power_kw = math.sqrt(3) * voltage * current * 0.85 * g[9] / 1000.0
    humidity = 55.0 - 1.5 * (amb - 12.0)
    bearing_temp = 0.5 * amb + 25.0 + 20.0 * g[11] * _lag(rpm / 3000.0, 2400, freq_s)
    clean = np.stack(
        [temp_in, temp_out, pressure, flow, rpm, vibration,
         current, voltage, oil_temp, power_kw, humidity, bearing_temp],
        axis=1,
    )  # fmt: skip
    ar_std, white_std = (np.array([_NOISE[s][i] for s in SENSORS]) for i in (0, 1))
    process = _ar1(rng, n, len(SENSORS), _phi(900, freq_s)) * ar_std
    return clean + process + rng.standard_normal(clean.shape) * white_std


def _inject(
    rng: np.random.Generator, x: np.ndarray, cfg: SynthConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int, int, list[str]]]]:
    """Anomalies into a copy of one machine's test rows ``x``.

    Returns the values, the kind per row (its index in ANOMALY_KINDS, -1 when normal), a
    mask of the changed cells and the events ``(kind, start, stop, sensors)``, ``stop``
    exclusive.
    """
    out = x.copy()
    n, k = x.shape
    kind_codes = np.full(n, -1, dtype=np.int8)
    touched = np.zeros(x.shape, dtype=bool)
    plan = [kind for kind in ANOMALY_KINDS for _ in range(cfg.anomalies_per_kind)]
    plan = [plan[i] for i in rng.permutation(len(plan))]
    lengths = [int(rng.integers(lo, hi + 1)) for lo, hi in (SEGMENT_LENGTHS[p] for p in plan)]
    slack = n - _LEAD_IN - sum(lengths) - _GAP * len(plan)
    if slack < 0:
        raise ValueError(
            f"test period of {n} rows is too short for {len(plan)} anomalies; "
            "raise test_days or lower anomalies_per_kind"
        )
    # Random non-negative padding before each segment, summing to at most the slack.
    pads = np.diff(np.sort(rng.integers(0, slack + 1, size=len(plan))), prepend=0)
    pairs = [(a, b) for a, b in _PAIRS if a in cfg.features and b in cfg.features]
    events = []
    pos = _LEAD_IN
    for kind, length, pad in zip(plan, lengths, pads, strict=True):
        s = pos + int(pad)
        e = s + length
        pos = e + _GAP
        if kind == "correlation_break":
            partner, follower = pairs[rng.integers(len(pairs))]
            cols = [cfg.features.index(partner), cfg.features.index(follower)]
        else:
            n_cols = 2 if kind in ("level_shift", "noise_burst") and rng.random() < 0.5 else 1
            cols = sorted(rng.choice(k, size=n_cols, replace=False).tolist())
        # "Local std": the clean sensor's spread within the hour before and the hour after,
        # so magnitudes scale with the sensor's short-term movement but not with a change
        # of load between the two.
        local_sd = (x[s - _GAP : s, cols].std(axis=0) + x[e : e + _GAP, cols].std(axis=0)) / 2
        # A downward step or drift that would cross the sensor's physical floor goes up.
        floors = np.array([_RANGE[cfg.features[c]][0] for c in cols])
        inject_segment(rng, x, out, kind, s, e, cols, local_sd, floors, _phi(600, cfg.freq_s))
        changed = cols[1:] if kind == "correlation_break" else cols
        touched[s:e, changed] = True
        kind_codes[s:e] = ANOMALY_KINDS.index(kind)
        events.append((kind, s, e, [cfg.features[c] for c in cols]))
    return out, kind_codes, touched, events


def inject_segment(
    rng: np.random.Generator,
    x: np.ndarray,
    out: np.ndarray,
    kind: str,
    s: int,
    e: int,
    cols: list[int],
    unit: np.ndarray,
    floors: np.ndarray,
    smooth_phi: float,
) -> None:
    """One anomaly of ``kind`` into ``out[s:e, cols]`` (in place), from the clean rows ``x``.

    Magnitudes are drawn from :data:`SIZES` in units of ``unit`` (one per column); a
    downward step or drift that would cross a column's ``floors`` goes up instead.
    ``stuck`` repeats row ``s - 1``; ``correlation_break`` replaces ``cols[1]`` by an AR(1)
    signal (lag-one coefficient ``smooth_phi``) with its own mean and std in the segment,
    exactly uncorrelated with ``cols[0]``. The generator and :mod:`anomae.tune` share it.
    """
    length = e - s
    size = rng.uniform(*SIZES.get(kind, (0, 0)), len(cols)) * unit
    sign = np.where(x[s:e, cols].min(axis=0) - size > floors, rng.choice([-1, 1]), 1)
    seg = out[s:e, cols]
    if kind == "spike":
        seg += size
    elif kind == "level_shift":
        seg += sign * size
    elif kind == "drift":
        seg += np.linspace(0.0, 1.0, length)[:, None] * sign * size
    elif kind == "stuck":
        seg[:] = x[s - 1, cols]
    elif kind == "correlation_break":
        # A plausible but independent signal with the follower's own mean and std. It is
        # made exactly uncorrelated with the partner in the segment: a short smooth
        # series could otherwise correlate with it by chance and hide the break.
        z = _ar1(rng, length, 1, smooth_phi)[:, 0]
        partner_vals = x[s:e, cols[0]] - x[s:e, cols[0]].mean()
        z -= z.mean() + (z @ partner_vals) / (partner_vals @ partner_vals) * partner_vals
        z /= z.std()
        follower_vals = x[s:e, cols[1]]
        seg[:, 1] = follower_vals.mean() + follower_vals.std() * z
    elif kind == "noise_burst":
        # A loose connector: white noise on top of the signal.
        seg += rng.standard_normal(seg.shape) * size
    out[s:e, cols] = seg
