"""The confidence intervals of a result record, from the raw data it stores: the evaluators fill
``ci95`` with :func:`attach_intervals`, and the report and the verdict call the same functions on
the records they read, so a report rebuilt from the JSON shows the same intervals. ``ci95`` keeps
its name at any level (``settings.confidence``); which interval for which metric: docs/EVAL.md.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from cocattn._checks import check_ci_options  # noqa: F401  (re-exported: its old home)
from cocattn.evaluate.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    bootstrap_ppl_interval,
    check_confidence,
    check_resamples,
    paired_ratio_interval,
    wilson_interval,
)
from cocattn.tasks.depth import DEPTH_BUCKETS, depth_bucket

__all__ = [
    "CI_SEED",
    "DIFFERENT_DOCUMENTS",
    "document_id",
    "per_document",
    "ppl_intervals",
    "paired_ratio",
    "passkey_intervals",
    "attach_intervals",
    "check_ci_options",
    "ci_options_of",
]

CI_SEED = 0
"""Seed of every bootstrap: the same data give the same interval on every machine."""

DIFFERENT_DOCUMENTS = "the two records scored different documents"
"""The reason :func:`paired_ratio` gives when two records cannot be paired."""


def document_id(index: int, tokens: Sequence[int]) -> str:
    """``"<index>:<12 hex digits>"``: the document's position among the evaluated documents and
    a SHA-256 prefix of the token ids scored, so two records can be checked to have scored the
    same documents (same tokenizer, same truncation)."""
    digest = hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()
    return f"{index}:{digest[:12]}"


def per_document(record: dict) -> tuple[dict | None, str]:
    """``(details.per_document, "")`` when the record has usable per-document data, else
    ``(None, reason)``."""
    data = (record.get("details") or {}).get("per_document")
    if data is None:
        return None, "no per-document NLL sums (result JSON written before they were stored)"
    lengths = record.get("lengths") or []
    try:
        ids, nll, tokens = data["ids"], data["nll_sum"], data["tokens"]
        ok = (
            len(nll) == len(tokens) == len(lengths)
            and len(ids) >= 1
            and all((a is None) == (b is None) for a, b in zip(nll, tokens))
            and all(a is None or (len(a) == len(b) == len(ids)) for a, b in zip(nll, tokens))
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        return None, "malformed details.per_document (ids, nll_sum and tokens must align with lengths)"
    return data, ""


def ppl_intervals(
    record: dict, confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES
) -> tuple[list[tuple[float, float] | None] | None, str]:
    """``([(low, high) or None per length], "")``, or ``(None, reason)`` without per-document data.

    A length with no value (skipped: longer than every document) has ``None``.
    """
    data, reason = per_document(record)
    if data is None:
        return None, reason
    out: list[tuple[float, float] | None] = []
    for value, nll, tokens in zip(record["values"], data["nll_sum"], data["tokens"]):
        if value is None or nll is None or sum(tokens) == 0:
            out.append(None)
        else:
            out.append(bootstrap_ppl_interval(nll, tokens, confidence=confidence, resamples=resamples, seed=CI_SEED))
    return out, ""


def paired_ratio(
    a: dict,
    length_a: int,
    b: dict,
    length_b: int,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
) -> tuple[dict | None, str]:
    """Perplexity of record ``a`` at ``length_a`` divided by that of ``b`` at ``length_b``, with
    a paired bootstrap interval over their common documents.

    Returns ``({"ratio", "low", "high", "documents"}, "")``, or ``(None, reason)`` when either
    side lacks per-document data or a value at that length, or they scored different documents.
    """
    sides = []
    for r, n in ((a, length_a), (b, length_b)):
        data, reason = per_document(r)
        if data is None:
            return None, reason
        if n not in r["lengths"]:
            return None, f"no value at {n} tokens"
        j = r["lengths"].index(n)
        if r["values"][j] is None or data["nll_sum"][j] is None:
            return None, f"no value at {n} tokens"
        sides.append((data["ids"], data["nll_sum"][j], data["tokens"][j]))
    (ids_a, nll_a, tok_a), (ids_b, nll_b, tok_b) = sides
    if list(ids_a) != list(ids_b):
        return None, DIFFERENT_DOCUMENTS
    ratio, low, high = paired_ratio_interval(
        nll_a, tok_a, nll_b, tok_b, confidence=confidence, resamples=resamples, seed=CI_SEED
    )
    return {"ratio": ratio, "low": low, "high": high, "documents": len(ids_a)}, ""


def _wilson(flags: Sequence[bool], confidence: float) -> tuple[float, float] | None:
    return wilson_interval(sum(map(bool, flags)), len(flags), confidence) if flags else None


def passkey_intervals(record: dict, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Wilson intervals of a passkey record: ``{"values": [...], "exact": [...],
    "within_training": [...], "beyond_training": [...], "by_depth": {bucket: [...]}}``, each a
    list over lengths of ``(low, high)`` or ``None`` (no cases). From the per-case records when
    the record has them; otherwise only ``values``, from accuracy × cases (an exact count), and
    the splits are ``None``."""
    lengths = record["lengths"]
    cases = (record.get("details") or {}).get("cases")
    if isinstance(cases, list) and len(cases) == len(lengths) and all(isinstance(c, list) for c in cases):
        out: dict[str, Any] = {
            "values": [],
            "exact": [],
            "within_training": [],
            "beyond_training": [],
            "by_depth": {b: [] for b in DEPTH_BUCKETS},
        }
        for rows in cases:
            out["values"].append(_wilson([r["correct"] for r in rows], confidence))
            out["exact"].append(_wilson([r["exact"] for r in rows], confidence))
            out["within_training"].append(_wilson([r["correct"] for r in rows if r.get("within_training")], confidence))
            out["beyond_training"].append(
                _wilson([r["correct"] for r in rows if r.get("within_training") is False], confidence)
            )
            for b in DEPTH_BUCKETS:
                out["by_depth"][b].append(
                    _wilson([r["correct"] for r in rows if depth_bucket(r["depth"]) == b], confidence)
                )
        return out
    values = []
    for value, n in zip(record["values"], record.get("counts") or [0] * len(lengths)):
        k = None if value is None or not n else round(value * n)
        values.append(wilson_interval(k, n, confidence) if k is not None and abs(k - value * n) < 1e-6 else None)
    return {
        "values": values,
        "exact": [None] * len(lengths),
        "within_training": [None] * len(lengths),
        "beyond_training": [None] * len(lengths),
        "by_depth": {b: [None] * len(lengths) for b in DEPTH_BUCKETS},
    }


def _as_lists(intervals: list | None) -> list | None:
    return None if intervals is None else [None if x is None else [float(x[0]), float(x[1])] for x in intervals]


def attach_intervals(record: dict, confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Fill ``record["ci95"]`` (one ``[low, high]`` or ``null`` per length) and record the level
    and method in ``settings``; for passkey also ``details.ci95`` (the splits). Returns the record."""
    check_confidence(confidence)
    check_resamples(resamples)
    settings = record.setdefault("settings", {})
    settings["confidence"] = confidence
    if record["metric"] == "ppl":
        intervals, _ = ppl_intervals(record, confidence, resamples)
        record["ci95"] = _as_lists(intervals)
        settings.update(ci_resamples=resamples, ci_seed=CI_SEED, ci_method="bootstrap over documents")
    else:
        found = passkey_intervals(record, confidence)
        record["ci95"] = _as_lists(found["values"])
        record["details"]["ci95"] = {
            "exact": _as_lists(found["exact"]),
            "within_training": _as_lists(found["within_training"]),
            "beyond_training": _as_lists(found["beyond_training"]),
            "by_depth": {b: _as_lists(v) for b, v in found["by_depth"].items()},
        }
        settings["ci_method"] = "wilson"
    return record


def ci_options_of(
    records: Sequence[dict], confidence: float | None = None, resamples: int | None = None
) -> tuple[float, int]:
    """The level and resamples a report uses: the ones given, else the ones every record was
    evaluated with when they agree, else the defaults (0.95, 2000)."""

    def agreed(key: str, default: Any) -> Any:
        found = {r.get("settings", {}).get(key) for r in records} - {None}
        return found.pop() if len(found) == 1 else default

    confidence = agreed("confidence", DEFAULT_CONFIDENCE) if confidence is None else confidence
    resamples = agreed("ci_resamples", DEFAULT_RESAMPLES) if resamples is None else resamples
    check_ci_options(confidence, resamples)
    return confidence, resamples
