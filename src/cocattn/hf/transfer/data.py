"""The transfer set: ``[sequences, seq_len]`` token ids of the model's tokenizer, in windows evenly
spaced over a cocattn data directory's training split, a ``.jsonl`` or a ``.txt`` file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cocattn._checks import bad_value, check
from cocattn.hf.transfer.settings import TransferSettings


def _windows(stream: np.ndarray, count: int, seq_len: int, where: str) -> torch.Tensor:
    """``count`` windows of ``seq_len`` tokens evenly spaced over ``stream`` (non-overlapping when it
    is long enough; at most ``len // seq_len`` of them)."""
    if len(stream) < seq_len:
        raise bad_value(
            "transfer data",
            where,
            f"at least one sequence of seq_len={seq_len} tokens "
            f"(it has {len(stream)} tokens with the model's tokenizer)",
        )
    count = min(count, len(stream) // seq_len)
    starts = (
        np.linspace(0, len(stream) - seq_len, count).round().astype(np.int64) if count > 1 else np.zeros(1, np.int64)
    )
    return torch.from_numpy(np.stack([stream[s : s + seq_len] for s in starts]).astype(np.int64))


def _read_texts(path: Path) -> list[str]:
    """A ``.txt`` file whole, or a ``.jsonl`` file read as ``cocattn data build`` reads one
    (``jsonl:`` source; documents marked ``"split": "eval"`` are held out, so left out here)."""
    if path.suffix == ".txt":
        return [path.read_text(encoding="utf-8")]
    from cocattn.data.build.sources import jsonl_file

    return [d.text for d in jsonl_file(path).documents if d.meta.get("split") != "eval"]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def transfer_tokens(data: str | os.PathLike, tokenizer: Any, settings: TransferSettings) -> torch.Tensor:
    """The transfer set: token ids of the model's ``tokenizer`` (a transformers tokenizer) from
    ``data``. Deterministic; fewer tokens than one sequence is an error.

    ``data`` is a cocattn data directory (its **training split** ``train.bin``, never the held-out
    or validation text: windows evenly spaced over it, decoded with the data's tokenizer and
    re-encoded with the model's unless the two are the same), a ``.jsonl`` file of
    ``{"text": ...}`` lines or a ``.txt`` file (documents joined with the tokenizer's end-of-sequence
    token, windows evenly spaced).

    Returns:
        ``[sequences, settings.seq_len]`` int64 token ids, ``sequences <= settings.sequences``.
    """
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"transfer data {path} does not exist")
    count, seq_len = settings.sequences, settings.seq_len
    if path.is_dir():
        return _data_dir_windows(path, tokenizer, count, seq_len)
    check(
        path.suffix in (".jsonl", ".txt"),
        "transfer data",
        str(path),
        'a cocattn data directory, a .jsonl file of {"text": ...} lines or a .txt file',
    )
    eos = getattr(tokenizer, "eos_token_id", None)
    ids: list[int] = []
    for text in _read_texts(path):
        ids += _encode(tokenizer, text)
        if eos is not None:
            ids.append(int(eos))
    return _windows(np.asarray(ids, dtype=np.int64), count, seq_len, str(path))


def _data_dir_windows(path: Path, tokenizer: Any, count: int, seq_len: int) -> torch.Tensor:
    from cocattn.data.read.shards import load_manifest, verify_file
    from cocattn.data.read.tokenizer import load_tokenizer

    manifest = load_manifest(path)
    verify_file(path, "train.bin", manifest, verify="size")
    dtype = np.dtype(manifest["files"]["train.bin"].get("dtype", "uint16"))
    train = np.memmap(path / "train.bin", dtype=dtype, mode="r")
    theirs = load_tokenizer(path)
    ours = tokenizer.backend_tokenizer if hasattr(tokenizer, "backend_tokenizer") else None
    if ours is not None and ours.get_vocab(with_added_tokens=True) == theirs.get_vocab(with_added_tokens=True):
        return _windows(np.asarray(train, dtype=np.int64), count, seq_len, str(path / "train.bin"))
    # Another vocabulary: decode spans of the data's tokens and re-encode them with the model's.
    if len(train) == 0:
        raise bad_value("transfer data", str(path), "a data directory with training tokens (train.bin is empty)")
    rows: list[list[int]] = []
    span = 2 * seq_len
    last = max(0, len(train) - span)
    starts = np.linspace(0, last, count).round().astype(np.int64) if count > 1 else np.zeros(1, np.int64)
    for start in starts.tolist():
        width = span
        while True:
            start = max(0, min(start, len(train) - width))
            chunk = np.asarray(train[start : start + width], dtype=np.int64).tolist()
            ids = _encode(tokenizer, theirs.decode(chunk, skip_special_tokens=False))
            if len(ids) >= seq_len or width >= len(train):
                break
            width *= 2
        if len(ids) >= seq_len:
            rows.append(ids[:seq_len])
    if not rows:
        raise bad_value(
            "transfer data",
            str(path),
            f"at least one sequence of seq_len={seq_len} tokens with the model's tokenizer in train.bin",
        )
    return torch.tensor(rows, dtype=torch.long)
