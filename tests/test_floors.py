"""The package's floors (docs/ARCHITECTURE.md, "Floors"): every module imports only from its own
floor and the floors below, and no modules import each other round a loop. Read from the source
with ``ast`` (lazy imports inside functions count), against the table in the document."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "cocattn"

# Known violations, each with the issue that removes it. The test fails on any violation not
# listed here, and on an entry here that no longer occurs (so the list only shrinks).
ALLOWED_UPWARD: set[tuple[str, str]] = set()
ALLOWED_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def imports(name: str, source: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that module ``name`` (its text ``source``) imports; ``from a import b``
    counts as ``a.b`` when that is a module, else as ``a``."""
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for target in targets:
            if target == PACKAGE or target.startswith(PACKAGE + "."):
                while target not in known and "." in target:  # `import cocattn.x.y` of a non-module y
                    target = target.rpartition(".")[0]
                if target != name:
                    found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {
        name: imports(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", known)
        for name, path in mods.items()
    }


def floors_from_docs() -> dict[str, int]:
    """``{"rope": 1, "attention": 2, ...}`` from the table under "## Floors" in docs/ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    match = re.search(r"^## Floors.*?$(.*?)(?=^## )", text, flags=re.M | re.S)
    assert match, 'docs/ARCHITECTURE.md has no "## Floors" section'
    floors: dict[str, int] = {}
    for line in match.group(1).splitlines():
        row = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", line)
        if row:
            for name in re.findall(r"`([^`]+)`", row.group(2)):
                assert name not in floors, f"{name} is on two floors in docs/ARCHITECTURE.md"
                floors[name] = int(row.group(1))
    assert floors, "the Floors section of docs/ARCHITECTURE.md has no table rows"
    return floors


def floor_of(module: str, floors: dict[str, int]) -> int | None:
    """The floor of the longest documented name that is ``module`` or a package holding it."""
    if module == PACKAGE:
        return floors.get(PACKAGE)
    parts = module.split(".")[1:]
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in floors:
            return floors[key]
    return None


def upward_imports(graph: dict[str, set[str]], floors: dict[str, int]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in graph.items() for b in targets if floor_of(b, floors) > floor_of(a, floors)}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_floor():
    floors = floors_from_docs()
    missing = sorted(m for m in modules() if floor_of(m, floors) is None)
    assert not missing, f"modules on no floor (add them to the Floors table of docs/ARCHITECTURE.md): {missing}"


def test_no_import_goes_up_a_floor():
    floors = floors_from_docs()
    graph = import_graph()
    if any(floor_of(m, floors) is None for m in graph):
        pytest.skip("a module has no floor (test_every_module_has_a_floor says which)")
    upward = upward_imports(graph, floors)
    new = sorted(upward - ALLOWED_UPWARD)
    assert not new, "imports from a lower floor to a higher one: " + "; ".join(
        f"{a} (floor {floor_of(a, floors)}) imports {b} (floor {floor_of(b, floors)})" for a, b in new
    )
    fixed = sorted(ALLOWED_UPWARD - upward)
    assert not fixed, f"allowed upward imports that no longer occur (remove them from ALLOWED_UPWARD): {fixed}"


def test_no_import_cycles():
    found = set(cycles(import_graph()))
    new = [sorted(c) for c in found - ALLOWED_CYCLES]
    assert not new, f"modules importing each other round a loop: {new}"
    fixed = [sorted(c) for c in ALLOWED_CYCLES - found]
    assert not fixed, f"allowed cycles that no longer occur (remove them from ALLOWED_CYCLES): {fixed}"


# --- the checker itself, on made-up graphs: it must catch what it is there to catch ----------


def test_checker_finds_upward_imports_and_cycles():
    floors = {"low": 0, "high": 1, "pkg": 1}
    graph = {"cocattn.low": {"cocattn.high"}, "cocattn.high": {"cocattn.low"}, "cocattn.pkg.a": {"cocattn.low"}}
    assert upward_imports(graph, floors) == {("cocattn.low", "cocattn.high")}
    assert cycles(graph) == [frozenset({"cocattn.low", "cocattn.high"})]
    assert floor_of("cocattn.pkg.a", floors) == 1 and floor_of("cocattn.other", floors) is None
    assert cycles({"cocattn.a": {"cocattn.b"}, "cocattn.b": {"cocattn.c"}, "cocattn.c": set()}) == []


def test_checker_reads_lazy_relative_and_plain_imports():
    known = {"cocattn", "cocattn.train", "cocattn.evaluate", "cocattn.evaluate.lm", "cocattn.rope", "cocattn.hf"}
    source = (
        "import os\n"
        "import cocattn.hf\n"
        "from cocattn import rope\n"
        "def f():\n"
        "    from cocattn.evaluate.lm import model_dir_kind\n"
        "    from . import train\n"  # itself: not an edge
    )
    assert imports("cocattn.train", source, False, known) == {"cocattn.hf", "cocattn.rope", "cocattn.evaluate.lm"}
    assert imports("cocattn.evaluate", "from .lm import x\nfrom .. import rope\n", True, known) == {
        "cocattn.evaluate.lm",
        "cocattn.rope",
    }
