"""Perplexity and passkey over inference-time RoPE scalings: one record per (model, scaling, metric).

The paper's stability study runs dynamic NTK with factors 2, 4 and 8; the default sweep adds
linear interpolation and YaRN at factor 4 (:data:`~cocattn.evaluate.scaling.DEFAULT_SWEEP`). Models
without a rotary embedding (``alibi``, ``nope``) are evaluated once, without scaling.
"""

from __future__ import annotations

from typing import Any, Sequence

from cocattn._checks import check
from cocattn.attention.kinds import is_rope_free
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.passkey import evaluate_passkey
from cocattn.evaluate.perplexity import evaluate_perplexity
from cocattn.evaluate.scaling import DEFAULT_SWEEP, parse_scaling

__all__ = ["evaluate_sweep"]


def evaluate_sweep(
    lm: LanguageModel,
    documents: Sequence[str] | None,
    scalings: Sequence[str | dict | None] = DEFAULT_SWEEP,
    *,
    metrics: Sequence[str] = ("ppl", "passkey"),
    lengths: Sequence[int] | None = None,
    ppl_options: dict[str, Any] | None = None,
    passkey_options: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Result records for every scaling × metric (see :mod:`.results`).

    ``scalings`` are specs (``"none"``, ``"dynamic:4"``, a dict, ...); all are validated before any
    model is run. ``documents`` are needed for ``ppl``.
    """
    check(
        len(metrics) > 0 and set(metrics) <= {"ppl", "passkey"},
        "metrics",
        list(metrics),
        "a subset of ['ppl', 'passkey']",
    )
    check(len(scalings) > 0, "scalings", list(scalings), "at least one scaling")
    parsed = [parse_scaling(s, "scalings") for s in scalings]
    if is_rope_free(lm.attention):
        parsed = [None]
    unique: list[dict | None] = []
    for p in parsed:
        if p not in unique:
            unique.append(p)
    if "ppl" in metrics:
        check(documents is not None and len(documents) > 0, "documents", documents, "documents for perplexity")
    docs: Sequence[str] = documents or []  # None only without ppl (checked above)
    out: list[dict[str, Any]] = []
    for scaling in unique:
        if "ppl" in metrics:
            out.append(
                evaluate_perplexity(lm, docs, lengths, scaling=scaling, progress=progress, **(ppl_options or {}))
            )
        if "passkey" in metrics:
            out.append(evaluate_passkey(lm, lengths, scaling=scaling, progress=progress, **(passkey_options or {})))
    return out
