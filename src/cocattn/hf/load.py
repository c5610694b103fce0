"""Loading a Hugging Face model directory the one safe way: local files, safetensors only, never
code from the directory (:func:`refuse_remote_code`), and any failure of transformers turned into
a ValueError that names the argument, the directory and what was expected."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cocattn._checks import bad_value
from cocattn.errors import InputError, UnsafeFileError
from cocattn.files import PathLike
from cocattn.safeparse import loads_json

__all__ = ["from_pretrained_checked", "refuse_remote_code"]


def from_pretrained_checked(cls: Any, path: str | os.PathLike, *, name: str, expected: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(path, local_files_only=True, use_safetensors=True,
    trust_remote_code=False, **kwargs)``; a truncated safetensors file, an impossible config
    (``num_attention_heads=3``), ... raise ``ValueError`` naming ``name`` = ``path`` and ``expected``."""
    try:
        return cls.from_pretrained(path, local_files_only=True, use_safetensors=True, trust_remote_code=False, **kwargs)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as err:  # transformers raises many types for a broken directory
        raise bad_value(name, str(path), f"{expected}; transformers said: {type(err).__name__}: {err}") from None


def refuse_remote_code(directory: PathLike) -> None:
    """Raise :class:`UnsafeFileError` if a Hugging Face model directory asks for custom code: an
    ``auto_map`` in ``config.json`` / ``tokenizer_config.json`` / ``processor_config.json``, or
    any ``*.py`` file. transformers would offer to run that code (``trust_remote_code``); cocattn
    refuses before transformers sees the directory, and loads with ``trust_remote_code=False``."""
    directory = Path(directory)
    for name in ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        file = directory / name
        if not file.is_file():
            continue
        try:
            data = loads_json(file.read_text(encoding="utf-8"), str(file))
        except InputError:
            raise  # nested past the bound: transformers would recurse without end on it
        except (OSError, ValueError):
            continue  # the loaders name unreadable files themselves
        if isinstance(data, dict) and "auto_map" in data:
            raise UnsafeFileError(
                f'refusing to load {directory}: {file} has an "auto_map" (custom model code to run); '
                "cocattn never executes code from a model directory. Remove auto_map and the *.py files "
                "if the architecture is a standard one."
            )
    code = sorted(p for p in directory.rglob("*.py") if p.is_file())
    if code:
        raise UnsafeFileError(
            f"refusing to load {directory}: it holds Python code ({code[0]}"
            f"{f' and {len(code) - 1} more' if len(code) > 1 else ''}); cocattn never executes code from a model "
            "directory. Remove the *.py files."
        )
