"""anomae: autoencoder anomaly detection for sensor and metrics time series.

The runtime (everything but :mod:`anomae.train`) is torch-free: it needs numpy, polars,
onnx/onnxruntime, click and prometheus-client. ``pip install 'anomae[train]'`` (from a
checkout: ``pip install -e '.[train]'``) adds torch.

Contract: a higher score is more anomalous, and ``score / threshold > 1`` is an anomaly.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
