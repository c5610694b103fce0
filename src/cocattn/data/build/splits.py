"""Split rules: a held-out set of long documents (PG-19 style) for evaluation, a small
validation split for the trainer's validation loss, and the rest for training; no document is in
two splits. The rules (numbered as in the code) are those of docs/DATA.md, "Splits".
"""

from __future__ import annotations

import hashlib
import math

from cocattn.data.read.document import Document


def _every(docs: list[Document], step: int) -> list[Document]:
    return docs[::step]


def _evenly(docs: list[Document], k: int) -> list[Document]:
    if k <= 0 or not docs:
        return []
    if k >= len(docs):
        return list(docs)
    return [docs[(i * len(docs)) // k] for i in range(k)]


def _id_hash(doc_id: str) -> int:
    return int.from_bytes(hashlib.sha256(doc_id.encode("utf-8")).digest()[:8], "big")


def assign_splits(
    docs: list[Document], eval_documents: int = 100, val_fraction: float = 0.02, min_eval_chars: int = 40_000
) -> tuple[dict[str, str], dict[str, str]]:
    """Map each document id to ``train`` / ``val`` / ``eval`` / ``excluded`` by the rules of
    docs/DATA.md ("Splits"; "long" is at least ``min_eval_chars`` characters, tokens are checked by
    :func:`drop_short_eval`); also return ``{id: reason}`` for excluded documents."""
    split: dict[str, str] = {}
    reasons: dict[str, str] = {}
    by_source: dict[str, list[Document]] = {}
    for doc in docs:
        by_source.setdefault(doc.source, []).append(doc)

    for doc in docs:  # rule 1
        if doc.meta.get("split") in ("train", "eval"):
            split[doc.id] = doc.meta["split"]
    if "tdavid" in by_source:  # rule 2
        for source in ("kjv", "web"):
            for doc in by_source.get(source, []):
                if doc.meta.get("osis") == "Ps":
                    split[doc.id] = "excluded"
                    reasons[doc.id] = "Bible Psalms: quoted throughout Spurgeon's Treasury of David (eval)"

    def long(source: str) -> list[Document]:
        return [d for d in by_source.get(source, []) if d.chars >= min_eval_chars and d.id not in split]

    held: list[Document] = []  # rule 3
    held += _every(long("shakespeare"), 2)
    held += [d for i, d in enumerate(by_source.get("austen", [])) if i % 2 == 0 and d.chars >= min_eval_chars]
    held += [d for d in long("milton") if d.id == "milton/paradise_lost"]
    held += _every(long("mhcc"), 3)
    held += _evenly(long("tdavid"), eval_documents - len(held))
    ruled = {"shakespeare", "austen", "milton", "mhcc", "tdavid", "hotpotqa", "kjv", "web", "scofield", "jargon"}
    for source, source_docs in by_source.items():
        if source in ruled:
            continue
        for doc in _every([d for d in source_docs if d.chars >= min_eval_chars and d.id not in split], 2):
            if len(held) + sum(1 for s in split.values() if s == "eval") >= eval_documents:
                break
            held.append(doc)
    for doc in held:
        split[doc.id] = "eval"

    rest = [d for d in docs if d.id not in split]  # rule 4
    val_ids: set[str] = set()
    if val_fraction > 0:
        for source in by_source:
            pool = sorted((d for d in rest if d.source == source), key=lambda d: _id_hash(d.id))
            if len(pool) >= 10:
                val_ids.update(d.id for d in pool[: math.ceil(val_fraction * len(pool))])
        if not val_ids and len(rest) > 1:
            val_ids.add(min(rest, key=lambda d: _id_hash(d.id)).id)
    for doc in rest:
        split[doc.id] = "val" if doc.id in val_ids else "train"
    return split, reasons


def drop_short_eval(
    split: dict[str, str], reasons: dict[str, str], tokens: dict[str, int], min_eval_tokens: int
) -> None:
    """Move held-out documents shorter than ``min_eval_tokens`` tokens to ``excluded`` (in place);
    they were never in training, so nothing leaks."""
    for doc_id, name in split.items():
        if name == "eval" and tokens[doc_id] < min_eval_tokens:
            split[doc_id] = "excluded"
            reasons[doc_id] = f"held out but shorter than {min_eval_tokens} tokens"
