"""Scoring with onnxruntime only: :class:`Detector` loads ``model.onnx`` and scores rows.

    >>> det = Detector.load("runs/demo/model.onnx")            # doctest: +SKIP
    >>> out = det.score_series(values)                         # doctest: +SKIP
    >>> out.normalised(det.threshold) > 1                      # doctest: +SKIP

``load`` validates the model card and the graph's inputs and outputs, checks the card
against the graph and re-scores the reference windows recorded at export
(:mod:`anomae.reference`), and fails with a :class:`DetectorError` that names the file on
anything wrong or damaged. Host code ships
raw rows; windowing, scaling and scoring happen in the graph.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomae.errors import AnomaeError
from anomae.graph import INPUT, OUTPUTS
from anomae.reference import ReferenceMismatch, check_graph
from anomae.spec import CARD_KEY, ModelCard, ModelCardError


class DetectorError(AnomaeError, ValueError):
    """The model file cannot be used for scoring; the message says why and what to do."""


# windows per graph call (Detector.score_series). On CPU, calls run one per core side by
# side (call_workers), so the call's windows tensor is sized to share the cache: at most
# CHUNK_BYTES_CPU of float32 windows, 256-4,096 windows (bench/chunk_size.py). A GPU call
# amortises its launch and copies over many more.
CHUNK_BYTES_CPU = 2 << 20
CHUNK_WINDOWS_GPU = 262_144


def cpu_chunk_windows(length: int, n_features: int) -> int:
    """Windows per CPU call for ``length``-row windows of ``n_features``: the largest power
    of two whose windows fit :data:`CHUNK_BYTES_CPU`, within 256-4,096 (a smaller call
    spends more on its overhead than it saves in cache; a larger one holds a series' rows
    longer in bounded-memory scoring)."""
    fit = CHUNK_BYTES_CPU // (4 * max(length * n_features, 1))
    return int(min(4096, max(256, 1 << max(fit.bit_length() - 1, 0))))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def call_workers(device: str, threads: int) -> tuple[int, int]:
    """How batch scoring spends ``threads`` onnxruntime threads (0: a core each):
    ``(worker threads making calls side by side, threads of the session)``. On CPU,
    ``threads`` one-thread calls side by side (a call slowed by the host's threads then
    holds up no other, where one pool waits for its slowest thread); on a GPU one call at
    a time of a session with ``threads``."""
    if device != "cpu":
        return 1, threads
    return (threads if threads > 0 else usable_cores()), 1


CUDA_HELP = (
    "onnxruntime here has no CUDA execution provider. Install the GPU build in place of the "
    "CPU one: `pip uninstall -y onnxruntime && pip install onnxruntime-gpu` (it needs an "
    "NVIDIA driver and the CUDA/cuDNN libraries its release notes list), or score with "
    "--device cpu"
)


@dataclass
class Scores:
    """Scores of consecutive windows: ``score [n]``, ``feature_error [n, F]``, ``coverage [n]``."""

    score: np.ndarray
    feature_error: np.ndarray
    coverage: np.ndarray

    def normalised(self, threshold: float) -> np.ndarray:
        """``score / threshold``: above 1 is anomalous (NaN where nothing was observed)."""
        return self.score / np.float32(threshold)


def providers_for(device: str) -> list[str]:
    """onnxruntime execution providers for ``device`` (``cpu``, ``cuda`` or ``cuda:N``)."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DetectorError(CUDA_HELP)
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise DetectorError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")


class Detector:
    """An exported anomae model ready to score (onnxruntime session + model card)."""

    def __init__(self, session: object, card: ModelCard, path: str, sha256: str) -> None:
        self.session = session
        self.card = card
        self.path = path
        self.sha256 = sha256

    @property
    def threshold(self) -> float | None:
        return None if self.card.threshold is None else self.card.threshold.value

    @classmethod
    def load(
        cls, path: str | Path, device: str = "cpu", threads: int = 0, spin: bool = True
    ) -> Detector:
        """Open ``path`` for scoring; ``threads`` = onnxruntime intra-op threads (0 = all
        cores); ``spin=False``: its threads sleep as soon as a call's work is done instead
        of spinning for the next (right when other threads of the process need the cores
        between calls: the reader and writer of a batch run)."""
        path = Path(path)
        if not path.is_file():
            raise DetectorError(f"{path}: model file does not exist")
        return cls.from_bytes(path.read_bytes(), path, device, threads, spin)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        path: str | Path = "<model>",
        device: str = "cpu",
        threads: int = 0,
        spin: bool = True,
    ) -> Detector:
        """:meth:`load` of a model held in memory; ``path`` names it in messages."""
        import onnx
        import onnxruntime as ort

        from anomae.modelfile import card_from_text, refuse_external_data

        try:
            # onnxruntime would resolve external data against the working directory
            refuse_external_data(onnx.load_from_string(data), path)
        except ModelCardError as exc:
            raise DetectorError(str(exc)) from exc
        except Exception:  # unparsable: onnxruntime's own error below says it best
            pass
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers_for(device)
        provider_options: list[dict[str, str]] = [{} for _ in providers]
        if device.startswith("cuda:"):
            provider_options[0] = {"device_id": device.split(":", 1)[1]}
        try:
            sess = ort.InferenceSession(
                data, opts, providers=providers, provider_options=provider_options
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectorError(
                f"{path}: onnxruntime cannot load this file ({type(exc).__name__}: "
                f"{str(exc)[:300]}); it is damaged or not an ONNX model"
            ) from exc
        meta = sess.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise DetectorError(
                f"{path}: has no '{CARD_KEY}' metadata; it was not exported by anomae "
                f"(export with `anomae train` or `anomae run`)"
            )
        try:
            card = card_from_text(meta[CARD_KEY], path)
        except ModelCardError as exc:
            raise DetectorError(str(exc)) from exc
        inputs = sess.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT or len(inputs[0].shape) != 3:
            raise DetectorError(
                f"{path}: expected one input '{INPUT}' [batch, time, features]; the graph has "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        if inputs[0].shape[2] != len(card.features):
            raise DetectorError(
                f"{path}: graph takes {inputs[0].shape[2]} features but the model card lists "
                f"{len(card.features)}; the file was altered"
            )
        names = [o.name for o in sess.get_outputs()]
        if any(o not in names for o in OUTPUTS):
            raise DetectorError(f"{path}: graph outputs {names}, expected {list(OUTPUTS)}")
        det = cls(sess, card, str(path), hashlib.sha256(data).hexdigest())
        try:
            check_graph(det.run, card)
        except ReferenceMismatch as exc:
            raise DetectorError(
                f"{path}: {exc}; the model file is damaged or was edited: re-export it "
                f"(`anomae train` or `anomae run`)"
            ) from exc
        return det

    def run(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw graph call on ``rows`` ``[batch, time, F]`` float32."""
        return tuple(self.session.run(OUTPUTS, {INPUT: rows}))  # type: ignore[attr-defined,return-value]

    @property
    def on_gpu(self) -> bool:
        return "CUDAExecutionProvider" in self.session.get_providers()  # type: ignore[attr-defined]

    @property
    def chunk_windows(self) -> int:
        """Windows per graph call of :meth:`score_series` by default (see there)."""
        if self.on_gpu:
            return CHUNK_WINDOWS_GPU
        return cpu_chunk_windows(self.card.window.length, len(self.card.features))

    def score_series(self, values: np.ndarray, chunk_windows: int | None = None) -> Scores:
        """Score every window of one series ``values`` ``[rows, F]``.

        Long series go through in chunks of ``chunk_windows`` windows, each a zero-copy view
        of the rows that overlaps the next by ``length - stride`` rows so no window is lost.
        On CPU the default (:func:`cpu_chunk_windows`) keeps a call's windows within 2 MiB,
        so the calls that run side by side, one per core, share the cache: on the
        reference model (64x8 windows) 1,024 windows per call scored 1.14x the 2,048 before
        it with two calls at once (bench/chunk_size.py). On a GPU the default is 256k
        windows per call, to amortise the launch and copy overheads."""
        if chunk_windows is None:
            chunk_windows = self.chunk_windows
        spec = self.card.window
        n_f = len(self.card.features)
        if values.ndim != 2 or values.shape[1] != n_f:
            raise ValueError(f"values must be [rows, {n_f}], got {values.shape}")
        values = np.ascontiguousarray(values, dtype=np.float32)
        n = spec.count(values.shape[0])
        if 0 < n <= chunk_windows:  # one call: its outputs as they come, not copied
            s, f, c = self.run(values[None])
            return Scores(s[0], f[0], c[0])
        score = np.empty(n, np.float32)
        fe = np.empty((n, n_f), np.float32)
        cov = np.empty(n, np.float32)
        for first in range(0, n, chunk_windows):
            k = min(chunk_windows, n - first)
            lo = first * spec.stride
            rows = values[lo : lo + (k - 1) * spec.stride + spec.length]
            s, f, c = self.run(rows[None])
            score[first : first + k], fe[first : first + k], cov[first : first + k] = (
                s[0],
                f[0],
                c[0],
            )
        return Scores(score, fe, cov)
