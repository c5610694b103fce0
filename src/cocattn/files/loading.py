"""Code-free loading: safetensors and JSON only. Nothing is ever unpickled: :func:`refuse_pickles`
rejects a directory holding a pickle (``*.pt``, ``*.pth``, ``*.bin``, ``*.pkl``, or any file whose
first bytes are a pickle or a zip archive) before anything in it is read."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cocattn.errors import UnsafeFileError
from cocattn.files.writes import _TMP_PREFIX, PathLike
from cocattn.safeparse import loads_json

if TYPE_CHECKING:
    import torch

# Suffixes torch / pickle files use; a checkpoint directory holding one is refused.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


def is_pickle_bytes(head: bytes) -> bool:
    """True for bytes that start a pickle (protocol 2+) or a zip archive (torch.save's format)."""
    if head[:4] == b"PK\x03\x04":
        return True
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def refuse_pickles(directory: PathLike) -> None:
    """Raise :class:`UnsafeFileError` if ``directory`` holds a pickle; never reads one further.

    Safetensors files are exempt from the byte test (their header length can start with 0x80);
    their own parser rejects anything that is not safetensors.
    """
    directory = Path(directory)
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):
            file = Path(root) / name
            if name.startswith(_TMP_PREFIX):
                continue
            if name.lower().endswith(PICKLE_SUFFIXES):
                raise UnsafeFileError(
                    f"refusing to load {directory}: {file} is a pickle-format file ({file.suffix}) "
                    "which could run code when loaded; cocattn reads safetensors and JSON only. "
                    "Convert it with a trusted tool, or remove it."
                )
            if name.endswith(".safetensors"):
                continue
            try:
                with open(file, "rb") as handle:
                    head = handle.read(4)
            except OSError:
                continue
            if is_pickle_bytes(head):
                raise UnsafeFileError(
                    f"refusing to load {directory}: {file} is a pickle or zip archive (first bytes "
                    f"{head!r}) which could run code when loaded; cocattn reads safetensors and JSON only."
                )


def load_json(path: PathLike) -> Any:
    """Parse a JSON file; a missing or invalid file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return loads_json(path.read_text(encoding="utf-8"), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON (corrupt or truncated?): {err}") from None


def load_safetensors(path: PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or non-safetensors file names the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path} is not a valid safetensors file (corrupt or truncated?): {err}") from None


def safetensors_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (empty when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
