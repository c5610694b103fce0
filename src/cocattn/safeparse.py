"""The one way cocattn parses JSON and YAML text, bounded: at most :data:`MAX_DEPTH` levels of
nesting, and a YAML document whose tree, every alias expanded, holds at most
:data:`MAX_YAML_NODES` nodes and does not contain itself; YAML's safe constructor only. Parse
errors are raised as the parsers raise them; an exceeded bound is an :class:`InputError` naming
``where`` and the bound.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from cocattn.errors import InputError

__all__ = ["MAX_DEPTH", "MAX_YAML_NODES", "loads_json", "loads_yaml", "json_depth"]

MAX_DEPTH = 100
"""Levels of nested lists / mappings accepted (configs, manifests and results use fewer than 10)."""
MAX_YAML_NODES = 100_000
"""Nodes a YAML document may stand for once its aliases are expanded."""

# a JSON string (escapes included) or a bracket; strings are skipped so that "[" inside one is text
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _too_deep(where: str, note: str = "") -> InputError:
    return InputError(
        f"{where} is not valid: it is nested more than {MAX_DEPTH} levels deep{note}; expected at most "
        f"{MAX_DEPTH} levels of nested lists and mappings"
    )


def json_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of JSON ``text`` (lists and objects), counted up to ``limit + 1``: a result
    above ``limit`` means "deeper than ``limit``". Linear in the text, no recursion."""
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def loads_json(text: str | bytes, where: str) -> Any:
    """``json.loads(text)`` for text nested at most :data:`MAX_DEPTH` levels deep; deeper text is
    an :class:`InputError` naming ``where`` (a file, an option) before the parser sees it."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    if text.count("[") + text.count("{") > MAX_DEPTH and json_depth(text) > MAX_DEPTH:
        raise _too_deep(where)
    return json.loads(text)


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader whose composer stops past :data:`MAX_DEPTH` levels."""

    def __init__(self, stream: str, where: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._where = where

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _too_deep(self._where)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded(
    node: yaml.Node, where: str, memo: dict[int, tuple[int, int]], busy: set[int], level: int = 1
) -> tuple[int, int]:
    """``(nodes, depth)`` of the tree ``node`` (at nesting ``level``) stands for with its aliases
    expanded, memoised per shared node so that a billion laughs costs one visit per anchor;
    refuses past the bounds. Recursion stops at :data:`MAX_DEPTH` levels, aliases included."""
    key = id(node)
    if level > MAX_DEPTH or (key in memo and level + memo[key][1] - 1 > MAX_DEPTH):
        raise _too_deep(where, " with its aliases expanded")
    if key in memo:
        return memo[key]
    if key in busy:
        raise InputError(f"{where} is not valid: a YAML alias refers to a node that contains it (a cycle)")
    busy.add(key)
    size, depth = 1, 1
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    else:
        children = []
    for child in children:
        child_size, child_depth = _expanded(child, where, memo, busy, level + 1)
        size += child_size
        depth = max(depth, child_depth + 1)
        if size > MAX_YAML_NODES:
            raise InputError(
                f"{where} is not valid: with its aliases expanded it stands for more than {MAX_YAML_NODES:,} "
                f"values; expected at most {MAX_YAML_NODES:,} (YAML anchors and aliases nested to expand "
                "without end are refused)"
            )
    busy.discard(key)
    memo[key] = (size, depth)
    return size, depth


def loads_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load(text)`` within the bounds above (nesting, expanded size, no cycles)."""
    loader = _BoundedLoader(text, where)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded(node, where, {}, set())
        return loader.construct_document(node)
    finally:
        loader.dispose()
