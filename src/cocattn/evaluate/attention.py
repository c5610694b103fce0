"""Attention at an extrapolated length (the paper's Figure 11): per layer, the last query's attention
over every key of one real document, with and without inference-time scaling, and the mean
attention at each distance (docs/EVAL.md).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from cocattn._checks import check
from cocattn.attention.kinds import is_rope_free
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.memory import check_fits
from cocattn.evaluate.scaling import parse_scaling, scaling_name

__all__ = ["attention_by_distance", "analyze_attention", "document_ids", "ANALYSIS_SCHEMA"]

ANALYSIS_SCHEMA = "cocattn.analysis/1"


def attention_by_distance(probs: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, T]`` causal probabilities -> ``[T]``: mean probability at distance ``Δ = m - n``
    (over batch, heads and the ``T - Δ`` queries that have such a key)."""
    check(probs.dim() == 4 and probs.shape[-1] == probs.shape[-2], "probs", tuple(probs.shape), "[B, H, T, T]")
    t = probs.shape[-1]
    summed = probs.float().sum(dim=(0, 1))  # [T, T]
    m = torch.arange(t, device=summed.device)
    dist = m[:, None] - m[None, :]
    causal = dist >= 0
    totals = torch.zeros(t, dtype=torch.float64, device=summed.device)
    totals.scatter_add_(0, dist[causal], summed[causal].double())
    counts = (t - torch.arange(t, device=summed.device)).double() * probs.shape[0] * probs.shape[1]
    return (totals / counts).float().cpu()


def document_ids(lm: LanguageModel, document: str | Sequence[int], length: object) -> list[int]:
    """The token ids of ``document`` (text, encoded up to ``length`` tokens, or ids as given).

    Returns:
        at least ``length`` ids; an error naming ``length`` where it is not an integer between 2
        and the document's token count.
    """
    needed = length if isinstance(length, int) and length >= 2 else 2  # (checked below)
    ids = lm.encode_prefix(document, needed) if isinstance(document, str) else list(document)
    check(
        isinstance(length, int) and 2 <= length <= len(ids),
        "length",
        length,
        f"an integer between 2 and the document's {len(ids)} tokens",
    )
    return ids


def analyze_attention(
    lm: LanguageModel,
    document: str | Sequence[int],
    length: int | None = None,
    scalings: Sequence[Any] = ("none", "dynamic:4"),
    *,
    max_memory: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Per layer and scaling: last-query attention over positions and attention against distance.

    ``length`` defaults to 4× the training length (the paper's setting); the document must have
    at least that many tokens.
    """
    start = time.perf_counter()
    length = 4 * lm.training_length if length is None else length
    ids = document_ids(lm, document, length)
    dims = lm.dims()
    check_fits({**dims, "heads": dims["heads"] * dims["layers"]}, length, 1, lm.device, max_memory)
    idx = torch.tensor([ids[:length]])
    parsed = [parse_scaling(s, "scalings") for s in scalings]
    if is_rope_free(lm.attention):
        parsed = [None]
    runs = []
    from tqdm.auto import tqdm

    for scaling in tqdm(parsed, disable=not progress, desc=f"attention {lm.name}", unit="scaling"):
        with lm.rope_scaling(scaling):
            maps = lm.attention_maps(idx)
        runs.append(
            {
                "scaling": scaling,
                "scaling_name": scaling_name(scaling),
                "last_query_mean": [m[0, :, -1, :].mean(0).tolist() for m in maps],
                "last_query_max": [m[0, :, -1, :].max(0).values.tolist() for m in maps],
                "by_distance": [attention_by_distance(m).tolist() for m in maps],
            }
        )
        del maps
    return {
        "schema": ANALYSIS_SCHEMA,
        "analysis": "attention",
        **lm.describe(),
        "length": length,
        "layers": len(runs[0]["last_query_mean"]),
        "runs": runs,
        "wall_s": round(time.perf_counter() - start, 3),
    }
