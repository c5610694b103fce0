"""Names that moved stay importable from their old module for one release, with a warning that
names the new place, and they are the very object at the new place (cocattn._moved)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from cocattn import _moved

# The modules that register moved names; importing them fills _moved.MOVED.
OLD_MODULES = [
    "cocattn.reproduce",
    "cocattn.evaluate.lm",
    "cocattn.data",
    "cocattn.data.build",
    "cocattn.data.fetch",
    "cocattn.data.rdata",
    "cocattn.data.sources",
    "cocattn.data.splits",
    "cocattn.data.sword",
    "cocattn.hf",
    "cocattn.hf.stages",
]
for _name in OLD_MODULES:
    importlib.import_module(_name)


def _cases() -> list[tuple[str, str, str]]:
    return [
        (old_mod, old, new) for old_mod, names in sorted(_moved.MOVED.items()) for old, new in sorted(names.items())
    ]


def test_every_module_that_moves_names_is_listed_here():
    assert set(_moved.MOVED) == set(OLD_MODULES)


@pytest.mark.parametrize(("old_module", "old_name", "target"), _cases())
def test_old_name_warns_and_is_the_new_object(old_module, old_name, target):
    module = importlib.import_module(old_module)
    new_module, _, new_name = target.rpartition(".")
    with pytest.warns(DeprecationWarning, match=rf"{old_module}\.{old_name} has moved to {target}"):
        obj = getattr(module, old_name)
    assert obj is getattr(importlib.import_module(new_module), new_name)


@pytest.mark.parametrize(("old_module", "old_name", "target"), _cases())
def test_from_import_of_old_name_warns_in_a_new_process(old_module, old_name, target):
    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        f"try:\n    from {old_module} import {old_name}\nexcept DeprecationWarning as w:\n    print('WARNED', w)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("WARNED") and target in out


def test_unknown_names_still_raise_attribute_error():
    module = importlib.import_module("cocattn.reproduce")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
            module.no_such_name  # noqa: B018


def test_a_package_with_lazy_names_serves_them_quietly_and_warns_at_the_callers_line():
    data = importlib.import_module("cocattn.data")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.load_tokens is importlib.import_module("cocattn.data.shards").load_tokens
        with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
            data.no_such_name  # noqa: B018
    with pytest.warns(DeprecationWarning) as caught:
        data.build_dataset  # noqa: B018
    assert caught[0].filename == __file__
