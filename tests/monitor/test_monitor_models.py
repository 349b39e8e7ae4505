"""Model reloads: which cards may replace a running model, the file signature that notices
a change, the background reload's three outcomes, and an atomic replacement of the file
(a promoted shadow) that is not reloaded as a change."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from test_monitor_daemon import FakeDetector

from anomae.monitor.models import ModelWatcher, file_signature, incompatible
from anomae.spec import WindowSpec


def test_only_the_same_features_and_window_are_compatible() -> None:
    card = FakeDetector().card
    assert incompatible(card, FakeDetector(th=5.0, sha="x").card) is None  # threshold may change
    assert incompatible(card, FakeDetector(length=4).card) == (
        "window differs: length 3 stride 1 -> length 4 stride 1"
    )
    other = FakeDetector(features=("rpm", "temp")).card  # same names, other order
    assert incompatible(card, other) == "features differ: ['temp', 'rpm'] -> ['rpm', 'temp']"
    assert card.window == WindowSpec(3, 1)


def test_file_signature_changes_with_the_file_and_is_none_without_one(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    assert file_signature(str(path)) is None
    path.write_bytes(b"v1")
    first = file_signature(str(path))
    path.write_bytes(b"v2-longer")
    assert first is not None and file_signature(str(path)) not in (None, first)


def test_a_replaced_file_is_taken_as_the_current_state(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"v1")
    calls: list[str] = []
    new = FakeDetector(th=3.0)
    w = ModelWatcher(str(path), lambda p: calls.append(p), FakeDetector().card, lambda *a: None)
    assert w.replace_file(b"promoted", new.card)
    assert path.read_bytes() == b"promoted" and w.card is new.card
    assert w.check() and not calls  # not a change to reload
    assert list(tmp_path.iterdir()) == [path]  # no temporary left beside it


def test_a_replace_waits_for_a_running_reload(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"v1")
    release, started = threading.Event(), threading.Event()

    def slow(_: str) -> Any:
        started.set()
        release.wait(5)
        return FakeDetector()

    w = ModelWatcher(str(path), slow, FakeDetector().card, lambda *a: None)
    assert w.check(force=True) and started.wait(2)
    assert not w.check(force=True)  # one reload at a time
    assert not w.replace_file(b"promoted", FakeDetector().card)
    release.set()
    assert path.read_bytes() == b"v1"


def test_model_watcher_reloads_compatible_and_refuses_different_models(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"v1")
    new = {"det": FakeDetector(th=2.0, sha="cd34")}
    results: list[tuple[Any, str, str]] = []
    got = threading.Event()

    def done(det: Any, outcome: str, detail: str) -> None:
        results.append((det, outcome, detail))
        got.set()

    w = ModelWatcher(str(path), lambda p: new["det"], FakeDetector().card, done)
    assert w.check() and not got.is_set()  # unchanged: nothing to do
    w.check(force=True)
    assert got.wait(2) and results[-1][1] == "ok"
    got.clear()
    new["det"] = FakeDetector(features=("temp", "flow"))
    path.write_bytes(b"v2-longer")  # changed file: checked without force
    w.check()
    assert got.wait(2) and results[-1][1] == "refused" and "features differ" in results[-1][2]
    got.clear()

    def broken(_: str) -> Any:
        raise ValueError("half-copied")

    w.load = broken
    w.check(force=True)
    assert got.wait(2) and results[-1][1] == "error"
