"""The paper's RoPE anomaly: the initial angle ``Θ_j`` between the un-rotated query and key slices in
each rotary plane; ``Θ_j ∈ (-π, 0)`` is anomalous (the score rises with distance up to
``Δ* = -Θ_j / θ_j``). :func:`analyze_rope` reports per layer and plane the anomalous share of
sampled causal (query, key) pairs and a histogram of ``Θ``; the derivation: docs/EVAL.md.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch

from cocattn._checks import check
from cocattn.attention.kinds import is_coca
from cocattn.evaluate.attention import ANALYSIS_SCHEMA, attention_by_distance, document_ids
from cocattn.evaluate.protocol import LanguageModel

__all__ = ["initial_angles", "anomaly_stats", "analyze_rope"]


def initial_angles(q: torch.Tensor, k: torch.Tensor, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``Θ`` for pairs ``(m[i], n[i])``: ``q [H, T, d]``, ``k [Hkv, T, d]`` (un-rotated) ->
    ``[P, H, d/2]`` in ``(-π, π]``. Query head ``h`` uses key head ``h // (H / Hkv)`` (GQA)."""
    h, _, d = q.shape
    half = d // 2
    k = k.repeat_interleave(h // k.shape[0], dim=0)
    angle_q = torch.atan2(q[..., half:], q[..., :half])  # [H, T, d/2]
    angle_k = torch.atan2(k[..., half:], k[..., :half])
    theta = angle_q[:, m] - angle_k[:, n]  # [H, P, d/2]
    theta = torch.remainder(theta + math.pi, 2 * math.pi) - math.pi
    return theta.transpose(0, 1)


def anomaly_stats(theta: torch.Tensor, inv_freq: torch.Tensor, bins: int = 36) -> dict[str, Any]:
    """Shares of anomalous triples (overall and per plane) and per-plane histograms of ``Θ``."""
    anomalous = theta < 0
    border = -theta / inv_freq.to(theta)  # tokens until the anomalous rise ends
    visible = anomalous & (border >= 1)
    flat = theta.reshape(-1, theta.shape[-1])
    hist = [torch.histc(flat[:, j], bins=bins, min=-math.pi, max=math.pi).tolist() for j in range(flat.shape[1])]
    return {
        "anomalous_share": float(anomalous.float().mean()),
        "visible_share": float(visible.float().mean()),
        "anomalous_share_by_plane": anomalous.float().mean(dim=(0, 1)).tolist(),
        "visible_share_by_plane": visible.float().mean(dim=(0, 1)).tolist(),
        "histogram_by_plane": hist,
    }


def analyze_rope(
    lm: LanguageModel,
    document: str | Sequence[int],
    length: int | None = None,
    *,
    pairs: int = 20_000,
    seed: int = 0,
    bins: int = 36,
) -> dict[str, Any]:
    """Per layer: Θ statistics (RoPE models) and mean attention against distance (any model)."""
    start = time.perf_counter()
    length = lm.training_length if length is None else length
    ids = document_ids(lm, document, length)
    check(isinstance(pairs, int) and pairs > 0, "pairs", pairs, "a positive integer")
    idx = torch.tensor([ids[:length]])
    with lm.rope_scaling(None):
        by_distance = [attention_by_distance(p).tolist() for p in lm.attention_maps(idx)]
        layers: list[dict[str, Any]] = []
        if lm.attention == "rope":
            gen = torch.Generator().manual_seed(seed)
            m = torch.randint(0, length, (pairs,), generator=gen)
            n = (torch.rand(pairs, generator=gen) * (m + 1)).long().clamp(max=length - 1)  # uniform n <= m
            states = lm.query_key_states(idx)
            from cocattn.rope import inv_freq_and_scaling

            head_dim = states[0][0].shape[-1]
            inv_freq, _ = inv_freq_and_scaling({"rope_type": "default", "rope_theta": _theta(lm)}, head_dim)
            for q, k in states:
                layers.append(anomaly_stats(initial_angles(q[0].cpu(), k[0].cpu(), m, n), inv_freq.float(), bins))
    note = (
        None
        if lm.attention == "rope"
        else ("Θ = 0 by construction (CoCA)" if is_coca(lm.attention) else f"no rotary embedding ({lm.attention})")
    )
    return {
        "schema": ANALYSIS_SCHEMA,
        "analysis": "rope",
        **lm.describe(),
        "length": length,
        "pairs": pairs,
        "seed": seed,
        "bins": bins,
        "layers": layers,
        "by_distance": by_distance,
        "note": note,
        "wall_s": round(time.perf_counter() - start, 3),
    }


def _theta(lm: LanguageModel) -> float:
    base = getattr(lm, "base_rope", None) or {}
    return float(base.get("rope_theta", 10000.0))
