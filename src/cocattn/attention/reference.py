"""Slow reference implementations, written straight from the paper's definitions.

These build the N×N×d tensors of the definitions (and the N×N scores) on purpose: they are the
ground truth the fast paths are tested against, not something to run at length. Rotations are
done plane by plane with explicit 2×2 rotation matrices, independently of :mod:`cocattn.rope`'s
rotate-half code; only the frequencies come from the shared scaling registry (which is itself
parity-tested against transformers).
"""

from __future__ import annotations

import math

import torch

from cocattn.attention.functional import alibi_slopes
from cocattn.rope import inv_freq_and_scaling, rope_parameters

__all__ = [
    "rotate_planes",
    "coca_slack_einsum",
    "coca_slack_reference",
    "coca_strict_reference",
    "rope_reference",
    "alibi_reference",
    "nope_reference",
]


def rotate_planes(
    x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor, scaling: float = 1.0
) -> torch.Tensor:
    """``R_p x``: rotate plane j = (x_j, x_{j+h}) by angle ``p · inv_freq_j`` (times ``scaling``,
    transformers' attention factor). ``x [..., N, d]``, ``positions [N]``."""
    h = x.shape[-1] // 2
    angle = positions.to(torch.float64)[:, None] * inv_freq.to(torch.float64)[None, :]  # [N, h]
    c, s = torch.cos(angle).to(x.dtype) * scaling, torch.sin(angle).to(x.dtype) * scaling
    a, b = x[..., :h], x[..., h:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


def _positions(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries' and keys' positions: the last ``N`` of the keys' ``0 … S − 1`` (or of ``positions``)."""
    n, s = q.shape[2], k.shape[2]
    q_pos = torch.arange(s - n, s) if positions is None else positions[-n:]
    k_pos = torch.arange(s) if positions is None else positions
    return q_pos, k_pos


def _scale(scale: float | None, d: int) -> float:
    return 1.0 / math.sqrt(d) if scale is None else scale


def _setup(q, k, positions, rope):
    d = q.shape[-1]
    q_pos, k_pos = _positions(q, k, positions)
    params = rope_parameters(rope)
    inv_freq, scaling = inv_freq_and_scaling(params, d, int(k_pos.max()) + 1)
    return q_pos, k_pos, inv_freq, scaling


def _finish(
    scores: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, causal: bool
) -> torch.Tensor:
    heads = scores.shape[1]
    v = v.repeat_interleave(heads // v.shape[1], dim=1)
    if causal:
        allowed = k_pos[None, :] <= q_pos[:, None]
        scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return probs @ v


def _dot_scores(q: torch.Tensor, k: torch.Tensor, scale: float | None) -> torch.Tensor:
    """``q_m·k_n`` times the scale, every query head against its key head (GQA)."""
    kk = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    return torch.einsum("bhmd,bhnd->bhmn", q, kk) * _scale(scale, q.shape[-1])


def _tie(t: torch.Tensor) -> torch.Tensor:
    h = t.shape[-1] // 2
    tau = torch.relu((t[..., :h] + t[..., h:]) / 2)
    return torch.cat([tau, tau], dim=-1)  # tt


def coca_slack_reference(q, t, v, *, positions=None, rope=None, causal=True, scale=None):
    """Paper eq. 10: ``a(m, n) = Σ_d q_m[d] · (R_n tt_n)[d] · (R_m q_m)[d]``, via the N×N×d product."""
    q_pos, k_pos, inv_freq, scaling = _setup(q, t, positions, rope)
    heads, d = q.shape[1], q.shape[-1]
    tt = _tie(t).repeat_interleave(heads // t.shape[1], dim=1)
    rq = rotate_planes(q, q_pos, inv_freq, scaling)  # R_m q_m
    rt = rotate_planes(tt, k_pos, inv_freq, scaling)  # R_n tt_n
    triple = q[:, :, :, None, :] * rt[:, :, None, :, :] * rq[:, :, :, None, :]  # [B, H, M, N, d]
    scores = triple.sum(-1) * _scale(scale, d)
    return _finish(scores, v, q_pos, k_pos, causal)


def coca_strict_reference(q, t, v, *, positions=None, rope=None, causal=True, scale=None):
    """Paper eq. 7–9: the key for query m is ``k_{m,n} = q_m ⊙ tt_n`` (collinear with q_m in every
    plane), and ``a(m, n) = (R_m q_m)ᵀ (R_n k_{m,n})``, via the N×N×d tensor of keys."""
    q_pos, k_pos, inv_freq, scaling = _setup(q, t, positions, rope)
    heads, d = q.shape[1], q.shape[-1]
    tt = _tie(t).repeat_interleave(heads // t.shape[1], dim=1)
    keys = q[:, :, :, None, :] * tt[:, :, None, :, :]  # [B, H, M, N, d]
    b, h, m, n, _ = keys.shape
    rk = rotate_planes(keys.permute(0, 1, 2, 3, 4).reshape(b * h * m, n, d), k_pos, inv_freq, scaling).reshape(
        b, h, m, n, d
    )
    rq = rotate_planes(q, q_pos, inv_freq, scaling)
    scores = (rq[:, :, :, None, :] * rk).sum(-1) * _scale(scale, d)
    return _finish(scores, v, q_pos, k_pos, causal)


def rope_reference(q, k, v, *, positions=None, rope=None, causal=True, scale=None):
    """RoFormer: ``a(m, n) = (R_m q_m)ᵀ (R_n k_n)``."""
    q_pos, k_pos, inv_freq, scaling = _setup(q, k, positions, rope)
    heads, d = q.shape[1], q.shape[-1]
    kk = k.repeat_interleave(heads // k.shape[1], dim=1)
    rq = rotate_planes(q, q_pos, inv_freq, scaling)
    rk = rotate_planes(kk, k_pos, inv_freq, scaling)
    scores = torch.einsum("bhmd,bhnd->bhmn", rq, rk) * _scale(scale, d)
    return _finish(scores, v, q_pos, k_pos, causal)


def alibi_reference(q, k, v, *, positions=None, causal=True, scale=None, **_):
    """ALiBi (Press et al.): ``a(m, n) = q_m·k_n / sqrt(d) − slope_h (m − n)``."""
    q_pos, k_pos = _positions(q, k, positions)
    scores = _dot_scores(q, k, scale)
    slopes = alibi_slopes(q.shape[1]).to(q.dtype)
    dist = (q_pos[:, None] - k_pos[None, :]).to(q.dtype)
    scores = scores - slopes[None, :, None, None] * dist[None, None]
    return _finish(scores, v, q_pos, k_pos, causal)


def nope_reference(q, k, v, *, positions=None, causal=True, scale=None, **_):
    """No positions: ``a(m, n) = q_m·k_n / sqrt(d)`` with the causal mask."""
    q_pos, k_pos = _positions(q, k, positions)
    return _finish(_dot_scores(q, k, scale), v, q_pos, k_pos, causal)


def coca_slack_einsum(q, t, v, *, positions=None, rope=None, causal=True, scale=None):
    """The paper's "efficient" form (released code, opt_einsum): the three-way product contracted
    as ``(q ⊙ R_m q) · (R_n tt)ᵀ``, which still materialises the N×N score matrix. Kept as the
    memory/time baseline of ``cocattn bench attention``; works in any dtype."""
    q_pos, k_pos, inv_freq, scaling = _setup(q, t, positions, rope)
    heads, d = q.shape[1], q.shape[-1]
    tt = _tie(t).repeat_interleave(heads // t.shape[1], dim=1)
    rq = rotate_planes(q, q_pos.to(q.device), inv_freq.to(q.device), scaling)
    rt = rotate_planes(tt, k_pos.to(q.device), inv_freq.to(q.device), scaling)
    scores = torch.matmul(q * rq, rt.transpose(-1, -2)) * _scale(scale, d)
    heads_v = v.repeat_interleave(heads // v.shape[1], dim=1)
    if causal:
        allowed = k_pos.to(q.device)[None, :] <= q_pos.to(q.device)[:, None]
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ heads_v
