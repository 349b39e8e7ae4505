"""Per-series thresholds: one model for a fleet, each series judged against its own normal.

A fleet model scores every machine, but machines differ: a quiet one never reaches the
fleet threshold, a noisy one crosses it every week. :func:`calibrate_per_series` keeps
the fleet threshold (calibrated on all series together, :attr:`Threshold.value`) and adds
one per series, calibrated by the same method on that series' own held-out windows:

* method ``events``: the threshold meeting the false-events budget on the series' own data,
  for the post-rule the fleet calibration chose (the alarm policy is one for the fleet);
* per-window methods (``quantile``, ``pot``, ``fpr``, ``ksigma``, ``mad``, ``f1``): the
  method on the series' own window scores (its own quantile, its own tail fit, ...).

A series whose data cannot support its method (too few windows or series-days, too few
peaks for a tail fit, ...) falls back to the fleet threshold; the series and the reason are
recorded in :attr:`Threshold.per_series_fallback`. Series never seen at calibration use
the fleet threshold too. :meth:`Threshold.for_series` reads the result, for batch scoring
and the monitor alike.

    >>> import numpy as np
    >>> from anomae.calibrate import calibrate
    >>> rng = np.random.default_rng(0)
    >>> quiet, noisy = rng.exponential(1.0, 5000), rng.exponential(3.0, 5000)
    >>> fleet = calibrate(np.concatenate([quiet, noisy]), "quantile", q=0.99)
    >>> th = calibrate_per_series(
    ...     fleet, ["quiet", "noisy", "new"], [quiet, noisy, quiet[:50]], "quantile", {"q": 0.99}
    ... )
    >>> th.for_series("quiet") < fleet.value < th.for_series("noisy")
    True
    >>> list(th.per_series_fallback), th.for_series("new") == fleet.value
    (['new'], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from anomae.calibrate import CalibrationError, calibrate, calibrate_events
from anomae.spec import Threshold


def calibrate_per_series(
    fleet: Threshold,
    names: Sequence[str],
    scores: Sequence[np.ndarray],
    method: str,
    params: dict[str, Any],
    labels: Sequence[np.ndarray] | None = None,
) -> Threshold:
    """``fleet`` with a threshold per series: ``names[i]`` is the series of the window
    scores ``scores[i]`` (one block of held-out windows, in time order; a series may have
    several blocks, never joined), ``labels[i]`` their 0/1 window labels (method ``f1``
    only). ``params`` are the method's, as the fleet was calibrated with."""
    if len(names) != len(scores) or (labels is not None and len(labels) != len(scores)):
        raise CalibrationError(
            f"{len(names)} series names for {len(scores)} calibration blocks"
            + ("" if labels is None else f" and {len(labels)} label arrays")
            + ": give one series name (and label array) per block"
        )
    blocks: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        blocks.setdefault(str(name), []).append(i)
    own = {k: v for k, v in params.items() if k != "labels"}
    if method == "events":  # one post-rule for the fleet: the one its calibration chose
        from anomae.events import PostRule

        own["rule"], own["min_windows"] = PostRule(**fleet.post_rule), ()
    else:
        own["block"] = 0  # only the value is kept: no bootstrap interval
    per: dict[str, float] = {}
    fallback: dict[str, str] = {}
    for name, idx in blocks.items():
        mine = [np.asarray(scores[i], np.float64).reshape(-1) for i in idx]
        try:
            if method == "events":
                th = calibrate_events(mine, **own)
            else:
                if labels is not None:
                    own["labels"] = np.concatenate([np.asarray(labels[i]) for i in idx])
                th = calibrate(np.concatenate(mine), method, **own)
        except CalibrationError as exc:
            n = sum(int(np.isfinite(s).sum()) for s in mine)
            fallback[name] = f"{n:,} windows: {exc}"
            continue
        per[name] = th.value
    return replace(fleet, per_series=per, per_series_fallback=fallback)
