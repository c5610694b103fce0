"""No function in src/cocattn is longer than MAX_LINES lines unless its docstring says why.

A function's length is ``end_lineno - lineno + 1`` of its ``def`` (decorators excluded), nested
functions and methods included (each counted on its own as well). A longer function passes only
when its docstring contains ``Not split:`` followed by the reason it cannot be split.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cocattn"
MAX_LINES = 80
MARKER = re.compile(r"Not split:\s*(\S.{9,})", re.DOTALL)  # the marker and a reason of at least 10 characters


def long_functions(source: str, module: str, max_lines: int = MAX_LINES) -> dict[str, int]:
    """``{qualified name: lines}`` of the functions in ``source`` longer than ``max_lines`` whose
    docstring has no ``Not split:`` reason."""
    found: dict[str, int] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > max_lines and not MARKER.search(ast.get_docstring(child) or ""):
                        found[name] = lines
                walk(child, name)
            else:
                walk(child, prefix)  # functions defined under if/try/with blocks

    walk(ast.parse(source), module)
    return found


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_long_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        found.update(long_functions(path.read_text(encoding="utf-8"), _module(path)))
    return found


def test_no_function_is_longer_than_the_limit_without_a_reason():
    too_long = _all_long_functions()
    assert not too_long, (
        f"functions longer than {MAX_LINES} lines: {too_long}; split them into well-named helpers, "
        "or say in the docstring 'Not split: <why it cannot be>'"
    )


def _function(lines: int, docstring: str = "") -> str:
    body = [f'    """{docstring}"""'] if docstring else []
    body += [f"    x{i} = {i}" for i in range(lines - 1 - len(body))]
    return "\n".join(["def f():", *body]) + "\n"


@pytest.mark.parametrize(
    "source, long",
    [
        (_function(MAX_LINES), False),
        (_function(MAX_LINES + 1), True),
        (_function(MAX_LINES + 1, "Does things. Not split: one table of 90 cases, read top to bottom."), False),
        (_function(MAX_LINES + 1, "Not split:"), True),  # the marker without a reason
        (_function(MAX_LINES + 1, "Not split: short"), True),
        ("@decorator\n" + _function(MAX_LINES), False),  # decorators do not count
        ("class C:\n" + textwrap.indent(_function(MAX_LINES + 1), "    "), True),
        ("if True:\n" + textwrap.indent(_function(MAX_LINES + 1), "    "), True),
    ],
)
def test_the_check_counts_lines_and_reads_the_marker(source, long):
    found = long_functions(source, "m")
    assert bool(found) == long, found
    if long:
        (name,) = found
        assert name in ("m.f", "m.C.f")


def test_nested_functions_are_checked_on_their_own():
    inner = textwrap.indent(_function(MAX_LINES + 1), "    ")
    source = 'def outer():\n    """Not split: the inner function is what is too long here."""\n' + inner
    assert long_functions(source, "m") == {"m.outer.f": MAX_LINES + 1}
