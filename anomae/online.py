"""One reading at a time, river style: :class:`OnlineScorer` keeps each series' recent rows
and scores the window each new reading completes.

It is built on the streaming pieces the monitor uses: :class:`~anomae.monitor.series.SeriesTable`
admits readings (in time order per series; the model card's gap rule restarts a series'
window) and a :class:`~anomae.windows.RingBuffer` per series (the one-reading form of the
monitor's :class:`~anomae.monitor.ring.RingBank`) emits the windows, so its scores equal
``anomae score``'s (and :meth:`anomae.api.AnomalyModel.score`'s) on the same rows. A higher
score is more anomalous; ``score / scorer.threshold > 1`` is an anomaly. The model does not
learn online: :meth:`OnlineScorer.learn_one` does nothing; refit with :func:`anomae.fit`.

    >>> import anomae
    >>> from anomae.synth import SynthConfig, generate
    >>> train, test = generate(SynthConfig(seed=1, n_series=1, n_features=6, train_days=1))
    >>> model = anomae.fit(train, epochs=1, calibration={"method": "quantile", "q": 0.99})
    >>> scorer = anomae.OnlineScorer(model)
    >>> rows = test.drop("series", "label", "anomaly").head(9).to_dicts()
    >>> scores = [scorer.score_one(r, t=r.pop("timestamp")) for r in rows]
    >>> [round(s, 3) if s == s else s for s in scores][:7]   # NaN until a window is full
    [nan, nan, nan, nan, nan, nan, nan]
    >>> all(s > 0 for s in scores[7:])
    True
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from anomae.errors import InputError
from anomae.monitor.series import SeriesTable
from anomae.windows import RingBuffer

__all__ = ["OnlineScorer"]


class OnlineScorer:
    """Scores readings one at a time with ``model`` (an :class:`~anomae.api.AnomalyModel`
    or a :class:`~anomae.detector.Detector`), for up to ``max_series`` series. An
    AnomalyModel gets its own one-thread onnxruntime session: for one window per call one
    thread is faster than several (DESIGN.md's latency figures)."""

    def __init__(self, model: Any, max_series: int = 10_000) -> None:
        if hasattr(model, "to_bytes"):
            from anomae.detector import Detector

            model = Detector.from_bytes(model.to_bytes(), model.name, threads=1)
        self.detector = model
        card = self.detector.card
        self.features: tuple[str, ...] = card.features
        self._index = {f: j for j, f in enumerate(self.features)}
        gap = card.max_gap_s if card.max_gap_s else math.inf  # 0: no gap rule, as batch
        self._table = SeriesTable(max_series, max_gap_seconds=gap)
        self._buffers: dict[int, RingBuffer] = {}
        self._last: dict[str, float] = {}

    @property
    def threshold(self) -> float | None:
        return self.detector.threshold  # type: ignore[no-any-return]

    def learn_one(self, x: dict[str, Any], series: str = "default", t: Any = None) -> None:
        """Does nothing: the model learns offline (:func:`anomae.fit`)."""

    def score_one(self, x: dict[str, Any], series: str = "default", t: Any = None) -> float:
        """The score of the window ``x`` completes in ``series``, NaN until one is full.

        ``x`` maps feature names to numbers (a feature left out, None or NaN is a missing
        reading); ``t`` is the reading's time (epoch seconds, a datetime or an ISO 8601
        string; None: one second after the series' previous reading). Readings of a series
        must come in time order."""
        row = self._row(x, series)
        ts = self._seconds(t, series)
        prev = self._last.get(series)
        if prev is not None and ts <= prev:
            raise InputError(
                f"series {series!r}: reading at t={ts!r} is not after the previous one "
                f"(t={prev!r}); readings of a series must come in time order, once each"
            )
        adm = self._table.admit([series], [ts], [None], now=0.0)
        if adm.index.size == 0:
            raise InputError(
                f"series {series!r}: over max_series={self._table.max_series} series; create "
                f"the OnlineScorer with a larger max_series"
            )
        self._last[series] = ts
        slot = int(adm.slots[0])
        buf = self._buffers.get(slot)
        if buf is None:
            buf = self._buffers[slot] = RingBuffer(self.detector.card.window, len(self.features))
        elif adm.reset[0]:
            buf.reset()  # a gap longer than the card's limit (or a new series in the slot)
        window = buf.push(row)
        if window is None:
            return math.nan
        score, _, _ = self.detector.run(window[None])
        return float(score[0, -1])

    def _row(self, x: dict[str, Any], series: str) -> np.ndarray:
        unknown = sorted(set(x) - set(self._index))
        if unknown:
            raise InputError(
                f"series {series!r}: reading has {unknown} which the model does not know; its "
                f"features are {list(self.features)}"
            )
        row = np.full(len(self.features), np.nan, np.float32)
        for name, value in x.items():
            if value is None:
                continue
            try:
                row[self._index[name]] = float(value)
            except (TypeError, ValueError):
                raise InputError(
                    f"series {series!r}: feature {name!r} = {value!r} is not a number (None or "
                    f"NaN for a missing reading)"
                ) from None
        if np.isinf(row).any():
            name = self.features[int(np.argmax(np.isinf(row)))]
            raise InputError(f"series {series!r}: feature {name!r} is not finite")
        return row

    def _seconds(self, t: Any, series: str) -> float:
        if t is None:
            return self._last.get(series, 0.0) + 1.0
        if isinstance(t, str):
            t = datetime.fromisoformat(t.replace("Z", "+00:00"))
        if isinstance(t, datetime):
            return t.timestamp() if t.tzinfo else t.replace(tzinfo=UTC).timestamp()
        if isinstance(t, np.datetime64):
            return float(t.astype("datetime64[ns]").astype(np.int64)) / 1e9
        try:
            return float(t)
        except (TypeError, ValueError):
            raise InputError(
                f"series {series!r}: time {t!r} is not epoch seconds, a datetime or an ISO 8601 "
                f"string"
            ) from None
