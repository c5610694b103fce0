"""The baselines the paper compares CoCA with, shaped like ``F.scaled_dot_product_attention``:
RoPE (RoFormer), ALiBi (Press et al.) and NoPE (the causal mask only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from cocattn.attention import alibi_flex, backends
from cocattn.attention.sdpa import (
    Attended,
    AttentionOptions,
    Call,
    attend,
    compute_dtype,
    dot_product_attention,
    opening,
    rope_tables,
)
from cocattn.rope import apply_rope

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["rope_attention", "nope_attention", "alibi_attention", "alibi_slopes", "ALIBI_BLOCK_ELEMENTS"]


def rope_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options: Unpack[AttentionOptions]) -> Attended:
    """Vanilla RoPE attention (RoFormer): ``softmax(rope(q, m)·rope(k, n) / sqrt(d)) v``; the
    keyword options (``positions``, ``key_positions``, ``rope``, ``causal``, ``scale``,
    ``need_weights``) are :class:`~cocattn.attention.sdpa.AttentionOptions`.

    ``k`` is un-rotated; with ``key_positions`` (and queries defaulting to the last positions) it
    serves cached decoding with every key rotated at the current (e.g. dynamic-NTK) base.

    Args:
        q: queries ``[batch, heads, N, head_dim]``; k, v: ``[batch, kv_heads, S, head_dim]``.
    Returns:
        out: ``[batch, heads, N, head_dim]`` in q's dtype; with ``need_weights=True`` the tuple
        ``(out, probs)``, ``probs [batch, heads, N, S]`` (the eager path).
    """
    call = opening(q, k, v, options, caller="rope_attention")
    cd = compute_dtype(q.dtype)
    (qc, qs), (kc, ks) = rope_tables(call.rope, q.shape[-1], call.where, cd)
    qr = apply_rope(q.to(cd), qc, qs).to(q.dtype)
    kr = apply_rope(k.to(cd), kc, ks).to(q.dtype)
    return attend(qr, kr, v, call)


def nope_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **options: Unpack[AttentionOptions]) -> Attended:
    """No positional encoding: the causal mask is the only source of order (``rope`` is ignored;
    the options are :class:`~cocattn.attention.sdpa.AttentionOptions`).

    Args:
        q: queries ``[batch, heads, N, head_dim]``; k, v: ``[batch, kv_heads, S, head_dim]``.
    Returns:
        out: ``[batch, heads, N, head_dim]`` in q's dtype; with ``need_weights=True`` the tuple
        ``(out, probs)``, ``probs [batch, heads, N, S]`` (the eager path).
    """
    return attend(q, k, v, opening(q, k, v, options, caller="nope_attention"))


def alibi_slopes(heads: int) -> torch.Tensor:
    """Press et al.'s head slopes: a geometric sequence from ``2^(-8/n)``; for a head count that
    is not a power of two, the slopes of the next power of two interleaved (their reference code).

    Returns:
        ``[heads]`` float64 slopes, largest first.
    """

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
    block_elements: int | None = None,
    **options: Unpack[AttentionOptions],
) -> Attended:
    """ALiBi: scores plus ``−slope_h · (m − n)`` (``rope`` is ignored; the other options are
    :class:`~cocattn.attention.sdpa.AttentionOptions`). On a GPU, self-attention over the default
    positions runs on FlexAttention (the bias inside a fused causal kernel; see
    :mod:`cocattn.attention.alibi_flex`). Otherwise the bias is built for a block of queries at a
    time (at most ``block_elements`` numbers) and handed to SDPA, so memory stays bounded at any
    length.

    Args:
        q: queries ``[batch, heads, N, head_dim]``; k, v: ``[batch, kv_heads, S, head_dim]``.
        block_elements: the bias block's bound (default :data:`ALIBI_BLOCK_ELEMENTS`).
    Returns:
        out: ``[batch, heads, N, head_dim]`` in q's dtype; with ``need_weights=True`` the tuple
        ``(out, probs)``, ``probs [batch, heads, N, S]`` (the eager path).
    """
    call = opening(q, k, v, options, caller="alibi_attention")
    heads = q.shape[1]
    flex = alibi_flex.applies(
        q, k, default_layout=call.where.default, causal=call.causal, need_weights=call.need_weights
    )
    if flex:
        out = alibi_flex.alibi_flex(q, k, v, _device_slopes(heads, q.device), scale=call.scale, causal=call.causal)
        if out is not None:
            return out
    return _alibi_blocks(q, k, v, call, block_elements or ALIBI_BLOCK_ELEMENTS)


def _alibi_blocks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, call: Call, limit: int) -> Attended:
    """ALiBi through SDPA, the bias built for blocks of queries of at most ``limit`` numbers."""
    b, heads, n = q.shape[:3]
    s = k.shape[2]
    q_pos, k_pos = call.where.q_pos, call.where.k_pos
    slopes = _device_slopes(heads, q.device).view(1, heads, 1, 1)
    per_row = max(1, heads * s * (q_pos.shape[0] if q_pos.dim() == 2 else 1))
    block = max(1, limit // per_row if not call.need_weights else n)
    outs: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    for start in range(0, n, block):
        qp = q_pos[..., start : start + block]
        dist = (qp.unsqueeze(-1) - k_pos.unsqueeze(-2)).to(torch.float32)  # [.., nb, S]
        dist = dist.unsqueeze(0).unsqueeze(0) if dist.dim() == 2 else dist.unsqueeze(1)
        res = dot_product_attention(
            q[:, :, start : start + block],
            k,
            v,
            q_pos=qp,
            k_pos=k_pos,
            causal=call.causal,
            scale=call.scale,
            bias=-slopes * dist,
            need_weights=call.need_weights,
            default_layout=call.where.default and start + block >= n,
        )
        out, probs = res if isinstance(res, tuple) else (res, None)
        outs.append(out)
        if probs is not None:
            weights.append(probs)
    if not outs:  # an empty query block: an empty output of q's shape
        empty = q.new_empty(b, heads, 0, v.shape[-1])
        return (empty, q.new_empty(b, heads, 0, s)) if call.need_weights else empty
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return (out, torch.cat(weights, dim=2)) if call.need_weights else out
