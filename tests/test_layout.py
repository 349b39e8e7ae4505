"""House rules checked on the source tree: no import cycles among anomae's modules, no
module over 400 lines, and a test file for every module.

Imports are read with ``ast``, not by importing: module-level and function-level
(deferred) imports both count, since a deferred import still ties the two modules together;
imports under ``if TYPE_CHECKING:`` do not (they never run). ``from anomae.x import y``
depends on ``anomae.x.y`` when that is a module, else on ``anomae.x``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "anomae"
MAX_LINES = 400

# Modules tested through another file, which must name the module (or, as a pair, the given
# text): keep this list short, and prefer a tests/**/test_<module>.py of their own.
COVERED_ELSEWHERE: dict[str, str | tuple[str, str]] = {
    # anomae/tune.py is tested through its command: tests/test_tune.py is both
    "anomae/cli/tuning.py": ("tests/test_tune.py", "run_cli("),
    # one CLI test, on the model its library tests train in a module fixture
    "anomae/cli/retrain.py": ("tests/test_retrain.py", "run_cli("),
}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imported(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """The anomae modules ``path`` (module ``name``) imports anywhere in its code."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and _type_checking_only(node, parents):
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            if node.level:
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                       for a in node.names]  # fmt: skip
        for t in targets:
            if t.split(".")[0] == "anomae" and (dep := owner(t)) and dep != name:
                out.add(dep)
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(package)
    return {name: imported(path, name, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a chain ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def _test_files(root: Path = REPO) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in (root / "tests").rglob("test_*.py"):
        found.setdefault(p.name, []).append(p)
    return found


def _has_own_test(path: Path, package: Path, tests: dict[str, list[Path]]) -> bool:
    """``anomae/eval/metrics.py`` → tests/eval/test_metrics.py (the mirror), or a
    tests/**/test_eval_metrics.py anywhere; ``anomae/monitor/sources/mqtt.py`` →
    tests/monitor/sources/test_mqtt.py or tests/**/test_monitor_mqtt.py (or
    test_sources_mqtt.py)."""
    rel = path.relative_to(package)
    root = package.parent / "tests"
    if root / rel.parent / f"test_{rel.stem}.py" in tests.get(f"test_{rel.stem}.py", []):
        return True
    return any(f"test_{folder}_{rel.stem}.py" in tests for folder in rel.parent.parts)


def untested(package: Path = PACKAGE) -> list[str]:
    """Modules with neither a test file of their own nor an entry in COVERED_ELSEWHERE."""
    tests = _test_files(package.parent)
    missing = []
    for path in sorted(package.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        rel = path.relative_to(package.parent).as_posix()
        if rel in COVERED_ELSEWHERE or _has_own_test(path, package, tests):
            continue
        missing.append(rel)
    return missing


def too_long(package: Path = PACKAGE, limit: int = MAX_LINES) -> list[str]:
    return [
        f"{p.relative_to(package.parent).as_posix()} ({n} lines)"
        for p in sorted(package.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > limit
    ]


# --- the checks ----------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, (
        "import cycle: " + " -> ".join(cycle or [])
        + "; move what both need into a module that imports neither"
    )  # fmt: skip


def test_no_module_over_400_lines() -> None:
    long = too_long()
    assert not long, f"modules over {MAX_LINES} lines, split them by noun: {long}"


def test_every_module_has_a_test_file() -> None:
    missing = untested()
    assert not missing, (
        f"modules without tests/**/test_<module>.py: {missing}; add one (or, if another "
        "test file covers it, list it in COVERED_ELSEWHERE in tests/test_layout.py)"
    )


def test_covered_elsewhere_is_true() -> None:
    """Every allow-list entry names an existing module and a test file that imports it."""
    tests = _test_files()
    wrong = []
    for module, entry in COVERED_ELSEWHERE.items():
        dotted = module.removesuffix(".py").replace("/", ".")
        test, evidence = entry if isinstance(entry, tuple) else (entry, dotted)
        test_path = REPO / test
        if not (REPO / module).is_file():
            wrong.append(f"{module}: no such module")
        elif not test_path.is_file():
            wrong.append(f"{module}: no test file {test}")
        elif evidence not in test_path.read_text():
            wrong.append(f"{module}: {test} does not name {evidence}")
        elif _has_own_test(REPO / module, PACKAGE, tests):
            wrong.append(f"{module}: has a test file of its own now; remove the entry")
    assert not wrong, wrong


def test_test_basenames_are_unique() -> None:
    dup = {name: [p.relative_to(REPO).as_posix() for p in paths]
           for name, paths in _test_files().items() if len(paths) > 1}  # fmt: skip
    assert not dup, f"pytest (prepend mode, no __init__.py) needs unique test names: {dup}"


# --- the checks can fail -------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "anomae"
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_cycle_found_through_a_deferred_import(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "a.py": "from anomae.b import x\n",
        "b.py": "def x():\n    from anomae import c\n",
        "c.py": "from . import a\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from anomae import a\n",
    })  # fmt: skip
    graph = import_graph(pkg)
    assert find_cycle(graph) == ["anomae.a", "anomae.b", "anomae.c", "anomae.a"]
    assert graph["anomae.d"] == set()  # type-checking imports do not count
    (pkg / "c.py").write_text("")
    assert find_cycle(import_graph(pkg)) is None


def test_long_module_found(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {"ok.py": "x = 1\n" * 400, "big.py": "x = 1\n" * 401})
    assert too_long(pkg) == ["anomae/big.py (401 lines)"]


def test_untested_module_found(tmp_path: Path) -> None:
    pkg = _write(tmp_path, {
        "__init__.py": "", "alone.py": "", "sub/__init__.py": "", "sub/part.py": "",
        "sub/other.py": "",
    })  # fmt: skip
    (tmp_path / "tests" / "sub").mkdir(parents=True)
    (tmp_path / "tests" / "test_sub_part.py").write_text("")  # prefixed: anywhere
    (tmp_path / "tests" / "test_other.py").write_text("")  # not the mirror of sub/other.py
    (tmp_path / "tests" / "sub" / "test_alone.py").write_text("")  # nor of alone.py
    assert untested(pkg) == ["anomae/alone.py", "anomae/sub/other.py"]
