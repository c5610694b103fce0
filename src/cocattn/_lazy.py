"""Package attributes imported on first use, so that a package's light modules load without its
heavy ones (``cocattn.data.read.tokenizer`` without torch, ``cocattn.data.build.rdata`` alone)."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's module-level ``__getattr__`` and ``__dir__`` for ``exports``.

    Args:
        package: the package's ``__name__``.
        exports: ``{name: submodule}``, the submodule relative to ``package`` (``"read.shards"``).

    Returns:
        ``(__getattr__, __dir__)``: the first imports ``package.submodule`` on first use of a name,
        keeps the value on the package and returns it (an ``AttributeError`` for other names); the
        second lists the names.
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
