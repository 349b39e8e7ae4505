"""Reading and writing the model card inside an ONNX file (no torch, no onnxruntime).

Calibration rewrites only the ``anomae.card`` metadata entry; the graph is untouched.
Files are written atomically (:mod:`anomae.atomic`): a failure never leaves a partial or
damaged model behind, and a rewritten model keeps its permissions and symlink. anomae writes
single-file models; a model whose tensors live in external data files is refused, and those
files are never read.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from anomae.atomic import atomic_write_bytes
from anomae.spec import CARD_KEY, ModelCard, ModelCardError

__all__ = [
    "atomic_write_bytes",
    "card_from_text",
    "load_onnx",
    "read_card",
    "refuse_external_data",
    "rewrite_card",
]

MAX_CARD_BYTES = 1 << 20  # anomae's cards are a few kB; a larger one is damaged or hostile


def card_from_text(text: str, path: str | Path = "<model>") -> ModelCard:
    """Parse the card JSON stored in ``path``'s metadata, refusing oversized or deeply
    nested text with a :class:`ModelCardError` instead of a memory blow-up or traceback."""
    if len(text) > MAX_CARD_BYTES:
        raise ModelCardError(
            f"{path}: the model card is {len(text):,} characters, over the "
            f"{MAX_CARD_BYTES:,} anomae reads; the file is damaged or was not written by "
            f"anomae: re-export it"
        )
    try:
        return ModelCard.from_json(text)
    except RecursionError as exc:
        raise ModelCardError(
            f"{path}: model card is malformed (JSON nested too deeply); re-export the model"
        ) from exc
    except ModelCardError as exc:
        raise ModelCardError(f"{path}: {exc}") from exc


def _external_data(model: onnx.ModelProto) -> list[str]:
    """Names of the external files the model's tensors point to."""
    found: list[str] = []
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            where = {e.key: e.value for e in t.external_data}.get("location", "?")
            found.append(f"{t.name} -> {where}")
    return found


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
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises several types for damaged files
        raise ModelCardError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc}); "
            f"the file is damaged or not a model"
        ) from exc
    refuse_external_data(model, path)
    return model


def refuse_external_data(model: onnx.ModelProto, path: str | Path) -> None:
    """Raise :class:`ModelCardError` if ``model``'s tensors live in external data files."""
    external = _external_data(model)
    if external:
        raise ModelCardError(
            f"{path}: tensors stored in external data files ({', '.join(external[:3])}); "
            f"anomae writes and reads single-file models only: re-export the model with "
            f"`anomae train` or `anomae run`"
        )


def card_from_onnx(model: onnx.ModelProto, path: str | Path = "<model>") -> ModelCard:
    meta = {p.key: p.value for p in model.metadata_props}
    if CARD_KEY not in meta:
        raise ModelCardError(
            f"{path}: has no '{CARD_KEY}' metadata; it was not exported by anomae "
            f"(export it with `anomae train` or `anomae run`)"
        )
    return card_from_text(meta[CARD_KEY], path)


def read_card(path: str | Path) -> ModelCard:
    return card_from_onnx(load_onnx(path), path)


def rewrite_card(path: str | Path, card: ModelCard, out: str | Path | None = None) -> None:
    """Replace the card in ``path`` (or write a copy to ``out``), keeping the graph."""
    model = load_onnx(path)
    card_from_onnx(model, path)  # refuse to relabel a file that is not ours
    write_model(model, card, out or path)
