"""The long documents the evaluators read, as text (so that any tokenizer can be evaluated): a data
directory built by ``cocattn data build`` (its held-out ``eval.jsonl``, checksums verified), a
``.jsonl`` file of ``{"text": ...}`` objects, a ``.txt`` file (one document) or a directory of them.
"""

from __future__ import annotations

import json
from pathlib import Path

from cocattn._checks import bad_value, check
from cocattn.safeparse import loads_json

__all__ = ["load_documents"]


def _read_jsonl(path: Path) -> list[str]:
    docs = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = loads_json(line, f"{path}:{number}")
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number} is not valid JSON: {err}") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{number}: expected an object with a string 'text'")
            docs.append(row["text"])
    return docs


def load_documents(source: str | Path, max_docs: int | None = None) -> list[str]:
    """Document texts from ``source`` (see the module docstring), at most ``max_docs`` of them."""
    check(
        max_docs is None or (isinstance(max_docs, int) and max_docs > 0),
        "max_docs",
        max_docs,
        "a positive integer or None",
    )
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"data {path} does not exist")
    docs: list[str]
    if path.is_dir() and (path / "eval.jsonl").is_file():
        try:
            from cocattn.data import load_eval_documents  # verifies the manifest
        except ImportError:
            load_eval_documents = None
        if load_eval_documents is not None:
            loaded = load_eval_documents(path)
            docs = [d if isinstance(d, str) else getattr(d, "text", None) or d["text"] for d in loaded]
        else:
            docs = _read_jsonl(path / "eval.jsonl")
    elif path.is_file() and path.suffix == ".jsonl":
        docs = _read_jsonl(path)
    elif path.is_file() and path.suffix == ".txt":
        docs = [path.read_text(encoding="utf-8")]
    elif path.is_dir() and any(path.glob("*.txt")):
        docs = [p.read_text(encoding="utf-8") for p in sorted(path.glob("*.txt"))]
    else:
        raise bad_value(
            "data",
            str(path),
            "a data directory with eval.jsonl, a .jsonl file with 'text', a .txt file or a directory of .txt files",
        )
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise bad_value("data", str(path), "at least one non-empty document")
    return docs[:max_docs] if max_docs else docs
