"""Token shards and the manifest of a data directory: writing, and loading with checks.

A data directory holds ``manifest.json``, ``tokenizer.json``, ``train.bin`` and ``val.bin``
(flat token ids, each document followed by the end-of-text token; ``uint16`` unless the
vocabulary needs ``uint32``, recorded in the manifest) and ``eval.jsonl`` (held-out documents as
text). Loading always checks each file's size against the manifest; the sha256 is checked the
first time a file is loaded (``verify="auto"``), after which a marker ``.verified.json``
(size, modification time and checksum per file) skips it until the file changes;
``verify="full"`` always checks it, ``verify="size"`` never does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from cocattn._checks import check_choice
from cocattn.data.read.document import Document
from cocattn.files import dumps_json, load_json, sha256_file, write_text
from cocattn.safeparse import loads_json

PathLike = str | os.PathLike
FORMAT = "cocattn-data"
FORMAT_VERSION = 1
#: The splits a manifest puts documents in (cocattn.data.build.splits); the first two have token shards.
SPLITS = ("train", "val", "eval", "excluded")
TOKEN_SPLITS = ("train", "val")
MARKER = ".verified.json"
VERIFY = ("auto", "full", "size")


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id fits (vocabulary ≤ 65,536), else ``uint32``."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def load_manifest(data_dir: PathLike) -> dict:
    """The manifest of a data directory; clear errors for a missing directory or file."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(
            f"data directory {data_dir} does not exist (build it with "
            f"`cocattn data build --preset pypi --out {data_dir}`)"
        )
    manifest = load_json(data_dir / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{data_dir / 'manifest.json'} is not a cocattn data manifest (format != {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{data_dir / 'manifest.json'}: format_version {manifest.get('format_version')!r} "
            f"is not supported (expected {FORMAT_VERSION}); rebuild the data"
        )
    _check_file_table(data_dir / "manifest.json", manifest.get("files"))
    return manifest


def _check_file_table(where: Path, files: object) -> None:
    """The manifest's ``files`` table must map names to ``{size: int >= 0, sha256: 64 hex}`` (and a
    numeric ``dtype`` for token shards); anything else is a corrupt manifest, named as such."""

    def bad(what: str) -> ValueError:
        return ValueError(f"{where} is corrupt: {what}; rebuild the data directory")

    if not isinstance(files, dict):
        raise bad(f"'files' is {type(files).__name__}, expected a mapping of file entries")
    for name, entry in files.items():
        if name in ("", ".", "..") or "/" in name or "\\" in name:
            raise bad(f"files lists {name!r}, which is not a plain file name inside the directory")
        if not isinstance(entry, dict):
            raise bad(f"files[{name!r}] is {type(entry).__name__}, expected a mapping")
        size, digest = entry.get("size"), entry.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"files[{name!r}].size={size!r} is not a byte count")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise bad(f"files[{name!r}].sha256={digest!r} is not a sha256 hex digest")
        if name.endswith(".bin"):
            dtype = entry.get("dtype")
            try:
                ok = isinstance(dtype, str) and np.dtype(dtype).kind in "iu"
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise bad(f"files[{name!r}].dtype={dtype!r} is not an integer token dtype")


def _marker(data_dir: Path) -> dict:
    try:
        return loads_json((data_dir / MARKER).read_text(), str(data_dir / MARKER))
    except (OSError, ValueError):
        return {}


def verify_file(data_dir: PathLike, name: str, manifest: dict | None = None, verify: str = "auto") -> Path:
    """Check ``name`` against the manifest (size always; sha256 per ``verify``); return its path.

    A missing, truncated, extended or corrupt file raises a ValueError / FileNotFoundError naming it.
    """
    check_choice("verify", verify, VERIFY)
    data_dir = Path(data_dir)
    manifest = manifest if manifest is not None else load_manifest(data_dir)
    entry = manifest["files"].get(name)
    if entry is None:
        raise ValueError(f"{data_dir / 'manifest.json'} lists no file {name!r}")
    path = data_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (the data directory is incomplete; rebuild it)")
    stat = path.stat()
    if stat.st_size != entry["size"]:
        raise ValueError(
            f"{path} has {stat.st_size} bytes but the manifest says {entry['size']}: "
            "the file is truncated or corrupt; rebuild the data directory"
        )
    if verify == "size":
        return path
    marker = _marker(data_dir)
    seen = marker.get(name)
    stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": entry["sha256"]}
    if verify == "auto" and seen == stamp:
        return path
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ValueError(
            f"{path} is corrupt: sha256 {actual} does not match the manifest's {entry['sha256']}; "
            "rebuild the data directory"
        )
    marker[name] = stamp
    try:
        write_text(data_dir / MARKER, dumps_json(marker))  # atomic: ranks may verify at once
    except OSError:
        pass  # a read-only data directory: verify again next time
    return path


def load_tokens(data_dir: PathLike, split: str = "train", verify: str = "auto") -> np.ndarray:
    """The tokens of ``split`` (``train`` or ``val``) as a read-only memory map, checked against
    the manifest (see the module docstring)."""
    check_choice("split", split, TOKEN_SPLITS)
    manifest = load_manifest(data_dir)
    name = f"{split}.bin"
    path = verify_file(data_dir, name, manifest, verify)
    entry = manifest["files"][name]
    where = Path(data_dir) / "manifest.json"
    dtype = np.dtype(entry["dtype"])
    vocab = (manifest.get("tokenizer") or {}).get("vocab_size") if isinstance(manifest.get("tokenizer"), dict) else None
    if isinstance(vocab, int) and not isinstance(vocab, bool) and vocab > 0:
        if dtype != token_dtype(vocab):
            raise ValueError(
                f"{where}: files[{name!r}].dtype={entry['dtype']!r} is not the token dtype of a "
                f"{vocab}-token vocabulary ({token_dtype(vocab).name}); the manifest is corrupt"
            )
    else:
        raise ValueError(f"{where}: tokenizer.vocab_size={vocab!r} is not a positive integer; the manifest is corrupt")
    size = path.stat().st_size
    count = entry.get("tokens")
    if size % dtype.itemsize or (isinstance(count, int) and size // dtype.itemsize != count):
        raise ValueError(
            f"{path} holds {size} bytes, not the {count} {dtype.name} tokens {where} records; "
            "the data directory is corrupt; rebuild it"
        )
    if size == 0:
        return np.zeros(0, dtype=dtype)  # np.memmap refuses empty files
    tokens = np.memmap(path, dtype=dtype, mode="r")
    top = int(tokens.max())
    if top >= vocab:
        raise ValueError(
            f"{path} holds token id {top}, outside the {vocab}-token vocabulary of {where}; "
            "the data directory is corrupt; rebuild it"
        )
    return tokens


def load_eval_documents(data_dir: PathLike, verify: str = "auto") -> list[Document]:
    """The held-out long documents (``eval.jsonl``), checked against the manifest."""
    manifest = load_manifest(data_dir)
    path = verify_file(data_dir, "eval.jsonl", manifest, verify)
    docs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                rec = loads_json(line, f"{path}: line {number}")
                docs.append(
                    Document(
                        rec["id"],
                        rec["source"],
                        rec["title"],
                        rec["text"],
                        {"tokens": rec["tokens"], "sha256": rec["sha256"]},
                    )
                )
            except json.JSONDecodeError:
                raise ValueError(f"{path}: line {number} is not valid JSON (corrupt?)") from None
            except (KeyError, TypeError) as err:
                raise ValueError(
                    f"{path}: line {number} is not a document record (corrupt?): {type(err).__name__}: {err}"
                ) from None
    return docs


def write_tokens(path: PathLike, token_lists: list, eot: int, dtype: np.dtype) -> int:
    """Write documents' tokens (sequences of ids), each followed by ``eot``, as one flat array of
    ``dtype``; return the token count."""
    total = 0
    end = np.asarray([eot], dtype=dtype)
    with open(path, "wb") as handle:
        for ids in token_lists:
            arr = np.asarray(ids, dtype=dtype)
            handle.write(arr.tobytes())
            handle.write(end.tobytes())
            total += arr.size + 1
    return total
