"""Loading a Hugging Face model directory the one safe way: local files, safetensors only, never
code from the directory, and any failure of transformers turned into a ValueError that names the
argument, the directory and what was expected."""

from __future__ import annotations

import os
from typing import Any

from cocattn._checks import bad_value

__all__ = ["from_pretrained_checked"]


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
