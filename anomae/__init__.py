"""anomae: autoencoder anomaly detection for sensor and metrics time series.

The runtime (everything but :mod:`anomae.train`) is torch-free: it needs numpy, polars,
onnx/onnxruntime, click and prometheus-client. ``pip install 'anomae[train]'`` (from a
checkout: ``pip install -e '.[train]'``) adds torch.

Contract: a higher score is more anomalous, and ``score / threshold > 1`` is an anomaly.

The Python API (:mod:`anomae.api`): ``anomae.fit(df)`` trains and calibrates an
:class:`AnomalyModel`; ``anomae.load(path)`` opens a saved one; :class:`AnomaeOD` is a
PyOD-style estimator and :class:`OnlineScorer` scores one reading at a time;
``anomae.score_dask(model, ddf)`` scores a Dask DataFrame (the ``dask`` extra). They are
imported on first use, so ``import anomae`` stays light, and only ``fit`` needs torch.

Settings classes say by their suffix what they describe: ``*Section`` is a table of a
pipeline TOML file (:mod:`anomae.pipeline`), ``*Spec`` a frozen description of data or of
the model that travels with it (``WindowSpec``, ``TableSpec``), ``*Config`` the settings of
one component (``TrainConfig``, ``SynthConfig``, the monitor process's ``MonitorConfig``)
and ``*Options`` those of one scoring run (``ScoreOptions``, the daemon's
``MonitorOptions``). Every error a user can cause is an :class:`~anomae.errors.AnomaeError`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "fit": "anomae.api",
    "load": "anomae.api",
    "AnomalyModel": "anomae.api",
    "AnomaeOD": "anomae.adapters",
    "OnlineScorer": "anomae.online",
    "score_dask": "anomae.frame_dask",
    "read_series": "anomae.io",
    "InputError": "anomae.errors",
    "Detector": "anomae.detector",
    "DetectorError": "anomae.detector",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anomae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
