"""Model reloads without a restart: on SIGHUP or when the model file changes.

:class:`ModelWatcher` loads the new file on a background thread (scoring goes on with the
old model meanwhile) and accepts it only when it is compatible: the same features in the
same order and the same window (length and stride), so every series' window state stays
valid. A model that differs is refused, logged and counted; the old one stays in use. So is
a file that cannot be loaded (say, caught half-copied): it is tried again when it changes.

    >>> from anomae.spec import ModelCard, Scaler, WindowSpec
    >>> card = ModelCard(("a", "b"), WindowSpec(8), Scaler((0.0, 0.0), (1.0, 1.0)))
    >>> incompatible(card, card) is None
    True
    >>> incompatible(card, ModelCard(("a", "c"), WindowSpec(8), card.scaler))
    "features differ: ['a', 'b'] -> ['a', 'c']"
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

from anomae.spec import ModelCard


def incompatible(old: ModelCard, new: ModelCard) -> str | None:
    """Why ``new`` cannot replace ``old`` in a running monitor (None: it can)."""
    if old.features != new.features:
        return f"features differ: {list(old.features)} -> {list(new.features)}"
    if old.window != new.window:
        return (
            f"window differs: length {old.window.length} stride {old.window.stride} -> "
            f"length {new.window.length} stride {new.window.stride}"
        )
    return None


def read_model(path: str, load: Callable[[str], Any]) -> tuple[Any, bytes]:
    """The detector ``load`` makes of ``path`` and the file's bytes (what a promotion or a
    rollback writes over the model), checked to be the same file (sha256). ``OSError``
    when it cannot be read, the loader's error when it is no model, ``ValueError`` when
    the file changed between the two reads."""
    with open(path, "rb") as f:
        data = f.read()
    det = load(path)
    if getattr(det, "sha256", None) != hashlib.sha256(data).hexdigest():
        raise ValueError("the file changed while it was read; try again")
    return det, data


def file_signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class ModelWatcher:
    """Loads ``path`` with ``load`` when asked or when its signature changes; the result
    of each attempt goes to ``done(detector_or_None, outcome, detail)``."""

    def __init__(
        self,
        path: str,
        load: Callable[[str], Any],
        card: ModelCard,
        done: Callable[[Any, str, str], None],
    ) -> None:
        self.path = path
        self.load = load
        self.card = card
        self.done = done
        self._sig = file_signature(path)
        self._busy = threading.Lock()

    def check(self, force: bool = False) -> bool:
        """Start a reload when forced or the file changed; False if one is running."""
        sig = file_signature(self.path)
        if not force and (sig is None or sig == self._sig):
            return True
        if not self._busy.acquire(blocking=False):
            return False
        self._sig = sig
        threading.Thread(target=self._reload, name="anomae-reload", daemon=True).start()
        return True

    def replace_file(self, data: bytes, card: ModelCard) -> bool:
        """Write ``data`` (a model with ``card``) over the model file atomically and take it
        as the file's state, so it is not reloaded as a change (a promoted shadow); False
        when a reload is running (try again). A failed write raises
        :class:`~anomae.atomic.OutputError` and leaves the file as it was."""
        from anomae.atomic import atomic_write_bytes

        if not self._busy.acquire(blocking=False):
            return False
        try:
            atomic_write_bytes(self.path, data)
            self.card = card
            self._sig = file_signature(self.path)
            return True
        finally:
            self._busy.release()

    def _reload(self) -> None:
        try:
            try:
                det = self.load(self.path)
            except Exception as exc:  # any load failure keeps the old model
                self.done(None, "error", f"{type(exc).__name__}: {exc}")
                return
            why = incompatible(self.card, det.card)
            if why is not None:
                self.done(None, "refused", why)
                return
            self.card = det.card
            self.done(det, "ok", det.sha256)
        finally:
            self._busy.release()
