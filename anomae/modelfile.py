"""Reading and writing the model card inside an ONNX file (no torch, no onnxruntime).

Calibration rewrites only the ``anomae.card`` metadata entry; the graph is untouched.
Files are written atomically: a failure never leaves a partial or damaged model behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx

from anomae.spec import CARD_KEY, ModelCard, ModelCardError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_model(model: onnx.ModelProto, card: ModelCard, path: str | Path) -> None:
    """Store ``card`` in ``model``'s metadata and write the file atomically."""
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, card.to_json()
    model.doc_string = (
        f"anomae anomaly detector: features {list(card.features)}, window "
        f"{card.window.length}/{card.window.stride}; `anomae inspect` shows the model card"
    )
    atomic_write_bytes(path, model.SerializeToString())


def load_onnx(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise ModelCardError(f"{path}: model file does not exist")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises several types for damaged files
        raise ModelCardError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}); "
            f"the file is damaged or not a model"
        ) from exc


def card_from_onnx(model: onnx.ModelProto, path: str | Path = "<model>") -> ModelCard:
    meta = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in meta:
        raise ModelCardError(
            f"{path}: has no '{CARD_KEY}' metadata; it was not exported by anomae "
            f"(export it with `anomae train` or `anomae run`)"
        )
    try:
        return ModelCard.from_json(meta[CARD_KEY])
    except ModelCardError as exc:
        raise ModelCardError(f"{path}: {exc}") from exc


def read_card(path: str | Path) -> ModelCard:
    return card_from_onnx(load_onnx(path), path)


def rewrite_card(path: str | Path, card: ModelCard, out: str | Path | None = None) -> None:
    """Replace the card in ``path`` (or write a copy to ``out``), keeping the graph."""
    model = load_onnx(path)
    card_from_onnx(model, path)  # refuse to relabel a file that is not ours
    write_model(model, card, out or path)
