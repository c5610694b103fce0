"""Local sources (a text file or a directory of ``*.txt`` files, a JSONL file) and Hugging Face
``datasets``, each read into documents."""

from __future__ import annotations

import json
from pathlib import Path

from cocattn._checks import bad_value
from cocattn.data.build.source_result import PathLike, SourceResult
from cocattn.data.read.document import Document, decode_text, normalize_text, slug
from cocattn.files import sha256_file
from cocattn.safeparse import loads_json


def text_files(path: PathLike) -> SourceResult:
    """A UTF-8 text file as one document, or every ``*.txt`` under a directory (sorted), one each."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise bad_value("source", f"text:{path}", "a text file or a directory holding *.txt files")
        root = path.resolve()
        for file in files:  # a symlink (file or directory) must not lead out of the source directory
            target = file.resolve()
            if not target.is_relative_to(root):
                raise bad_value(
                    "source",
                    f"text:{path}",
                    f"a directory whose *.txt files lie inside it; {file} "
                    f"leads to {target} outside it (a symlink): copy the file in or remove the link",
                )
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"source text:{path}: no such file or directory")
    docs = []
    base = path if path.is_dir() else path.parent
    for file in files:
        rel = file.relative_to(base).as_posix()
        text = normalize_text(decode_text(file.read_bytes()))
        if text:
            docs.append(
                Document(f"text/{slug(rel[:-4] if rel.endswith('.txt') else rel)}", "text", rel, text, {"file": rel})
            )
    return SourceResult(docs, [_local_record(f) for f in files])


def _local_record(path: Path) -> dict:
    return {"registry": "local", "name": path.name, "size": path.stat().st_size, "sha256": sha256_file(path)}


def jsonl_file(path: PathLike) -> SourceResult:
    """One document per JSON line: ``{"text": ..., "title"?: ..., "id"?: ..., "split"?: "train"|"eval"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"source jsonl:{path}: no such file")
    docs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = loads_json(line, f"{path}: line {number}")
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: line {number} is not valid JSON: {err}") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}: line {number} has no string field 'text'")
            meta = {}
            if "split" in record:
                if record["split"] not in ("train", "eval"):
                    raise bad_value(f"{path}: line {number}: split", record["split"], "'train' or 'eval'")
                meta["split"] = record["split"]
            name = slug(str(record.get("id", f"{number:06d}")))
            title = str(record.get("title", record.get("id", f"line {number}")))
            docs.append(Document(f"jsonl/{name}", "jsonl", title, normalize_text(record["text"]), meta))
    return SourceResult(docs, [_local_record(path)])


def hf_dataset(name: str, split: str, text_field: str = "text") -> SourceResult:
    """Documents of a Hugging Face dataset (e.g. ``hf:pg19:test``); needs ``pip install datasets``."""
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise ValueError(
            f"source hf:{name}:{split} needs the Hugging Face `datasets` package, which is not "
            "installed: `pip install datasets` (or use text:PATH / jsonl:PATH with local files)"
        ) from None
    dataset = datasets.load_dataset(name, split=split)
    if text_field not in dataset.column_names:
        raise bad_value("source field", text_field, f"one of the columns {dataset.column_names}")
    docs = []
    for i, row in enumerate(dataset):
        title = str(row.get("short_book_title") or row.get("title") or f"{name} {split} {i}")
        docs.append(
            Document(
                f"hf/{slug(name)}_{i:06d}",
                f"hf:{name}",
                title,
                normalize_text(row[text_field]),
                {"split": "eval"} if split in ("test", "validation") else {},
            )
        )
    fingerprint = getattr(dataset, "_fingerprint", "")
    return SourceResult(docs, [{"registry": "huggingface", "name": name, "split": split, "fingerprint": fingerprint}])
