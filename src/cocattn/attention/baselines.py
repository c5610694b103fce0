"""The baselines the paper compares CoCA with, shaped like ``F.scaled_dot_product_attention``:
RoPE (RoFormer), ALiBi (Press et al.) and NoPE (the causal mask only)."""

from __future__ import annotations

import math
from typing import Any

import torch

from cocattn.attention import alibi_flex, backends
from cocattn.attention.sdpa import RopeLike, attend, compute_dtype, dot_product_attention, opening, rope_tables
from cocattn.rope import apply_rope

__all__ = ["rope_attention", "nope_attention", "alibi_attention", "alibi_slopes", "ALIBI_BLOCK_ELEMENTS"]


def rope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    positions: torch.Tensor | None = None,
    key_positions: torch.Tensor | None = None,
    rope: RopeLike = None,
    causal: bool = True,
    scale: float | None = None,
    need_weights: bool = False,
):
    """Vanilla RoPE attention (RoFormer): ``softmax(rope(q, m)·rope(k, n) / sqrt(d)) v``.

    ``k`` is un-rotated; with ``key_positions`` (and queries defaulting to the last positions) it
    serves cached decoding with every key rotated at the current (e.g. dynamic-NTK) base.
    """
    where, scale = opening(q, k, v, "k", positions, key_positions, scale)
    cd = compute_dtype(q.dtype)
    (qc, qs), (kc, ks) = rope_tables(rope, q.shape[-1], where, cd)
    qr = apply_rope(q.to(cd), qc, qs).to(q.dtype)
    kr = apply_rope(k.to(cd), kc, ks).to(q.dtype)
    return attend(qr, kr, v, where, causal=causal, scale=scale, need_weights=need_weights)


def nope_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    positions: torch.Tensor | None = None,
    key_positions: torch.Tensor | None = None,
    causal: bool = True,
    scale: float | None = None,
    need_weights: bool = False,
    **_: Any,
):
    """No positional encoding: the causal mask is the only source of order."""
    where, scale = opening(q, k, v, "k", positions, key_positions, scale)
    return attend(q, k, v, where, causal=causal, scale=scale, need_weights=need_weights)


def alibi_slopes(heads: int) -> torch.Tensor:
    """Press et al.'s head slopes: a geometric sequence from ``2^(-8/n)``; for a head count that
    is not a power of two, the slopes of the next power of two interleaved (their reference code)."""

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        slopes = power_of_two(heads)
    else:
        closest = 2 ** math.floor(math.log2(heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: heads - closest]
    return torch.tensor(slopes, dtype=torch.float64)


# compiled=True: FlexAttention's score functions (alibi_flex) are keyed on these tensors
_SLOPES: dict[tuple[int, str], torch.Tensor] = backends.register_cache({}, compiled=True)


def _device_slopes(heads: int, device: torch.device) -> torch.Tensor:
    """float32 slopes on ``device``, copied there once (a host-to-device copy synchronises)."""
    key = (heads, str(device))
    if key not in _SLOPES:
        with torch.inference_mode(False), torch.no_grad():
            _SLOPES[key] = alibi_slopes(heads).to(device, torch.float32)
    return _SLOPES[key]


# Upper bound on the bias block materialised at once by ALiBi (elements).
ALIBI_BLOCK_ELEMENTS = 1 << 24


def alibi_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    positions: torch.Tensor | None = None,
    key_positions: torch.Tensor | None = None,
    causal: bool = True,
    scale: float | None = None,
    need_weights: bool = False,
    block_elements: int | None = None,
    **_: Any,
):
    """ALiBi: scores plus ``−slope_h · (m − n)``. On a GPU, self-attention over the default
    positions runs on FlexAttention (the bias inside a fused causal kernel; see
    :mod:`cocattn.attention.alibi_flex`). Otherwise the bias is built for a block of queries at a
    time (at most ``block_elements`` numbers) and handed to SDPA, so memory stays bounded at any
    length."""
    where, scale = opening(q, k, v, "k", positions, key_positions, scale)
    b, heads, n, _ = q.shape
    s = k.shape[2]
    q_pos, k_pos = where.q_pos, where.k_pos
    if alibi_flex.applies(q, k, default_layout=where.default, causal=causal, need_weights=need_weights):
        out = alibi_flex.alibi_flex(q, k, v, _device_slopes(heads, q.device), scale=scale, causal=causal)
        if out is not None:
            return out
    slopes = _device_slopes(heads, q.device).view(1, heads, 1, 1)
    limit = block_elements or ALIBI_BLOCK_ELEMENTS
    per_row = max(1, heads * s * (q_pos.shape[0] if q_pos.dim() == 2 else 1))
    block = max(1, limit // per_row if not need_weights else n)
    outs, weights = [], []
    for start in range(0, n, block):
        qp = q_pos[..., start : start + block]
        dist = (qp.unsqueeze(-1) - k_pos.unsqueeze(-2)).to(torch.float32)  # [.., nb, S]
        dist = dist.unsqueeze(0).unsqueeze(0) if dist.dim() == 2 else dist.unsqueeze(1)
        bias = -slopes * dist
        res = dot_product_attention(
            q[:, :, start : start + block],
            k,
            v,
            q_pos=qp,
            k_pos=k_pos,
            causal=causal,
            scale=scale,
            bias=bias,
            need_weights=need_weights,
            default_layout=where.default and start + block >= n,
        )
        if need_weights:
            outs.append(res[0])
            weights.append(res[1])
        else:
            outs.append(res)
    if not outs:  # an empty query block: an empty output of q's shape
        empty = q.new_empty(b, heads, 0, v.shape[-1])
        return (empty, q.new_empty(b, heads, 0, s)) if need_weights else empty
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return (out, torch.cat(weights, dim=2)) if need_weights else out
