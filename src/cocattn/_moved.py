"""Names that moved: importable from their old module for one release, with a DeprecationWarning.

A module whose names moved ends with ``__getattr__ = moved(__name__, {"old": "new.module.name"})``;
``from old.module import old`` then warns and returns the object from its new home (imported on
first use, so the old module does not import the new one at load time). The table of every moved
name is :data:`MOVED`, which ``tests/test_moved.py`` walks: each old name warns, names the new
place, and is the very object at the new place.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable

#: The release in which the old names disappear.
REMOVED_IN = "0.3.0"

#: ``{old module: {old name: "new.module.new_name"}}`` for every name registered with :func:`moved`.
MOVED: dict[str, dict[str, str]] = {}


def moved(module: str, names: dict[str, str], fallback: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` that serves ``names`` (``{old: "package.module.new"}``) with a
    DeprecationWarning and raises the usual AttributeError for anything else, or hands it to
    ``fallback`` (a package's own lazy ``__getattr__``, so that the warning still points at the
    caller's line)."""
    MOVED.setdefault(module, {}).update(names)

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None and fallback is not None:
            return fallback(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, new_name = target.rpartition(".")
        warnings.warn(
            f"{module}.{name} has moved to {target}; the old name is removed in cocattn {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
