"""Attention kinds as functions shaped like ``F.scaled_dot_product_attention``.

The key fact (docs/ARCHITECTURE.md): both CoCA variants are ordinary dot-product attention on
per-token feature maps, so one fused SDPA call runs them and no N×N tensor is ever built.

Notation: ``q [B, H, N, d]``, ``t``/``k``/``v [B, Hkv, S, d]``, ``h = d / 2``, plane ``j`` pairs
dims ``j`` and ``j + h``, ``φ_j(p) = p θ_j``; ``rope(x, p)`` rotates every plane of ``x`` by ``φ(p)``.

The equations of the paper (arXiv 2309.08646), in the one place they live:

* tied T (released code): ``τ = relu((t[:h] + t[h:]) / 2)``, ``tt = concat(τ, τ)``
* CoCA-Slack (eq. 10):  ``a(m, n) = Σ_d q_m[d] · rope(tt_n, n)[d] · rope(q_m, m)[d]``
  computed as ``Q' = q ⊙ rope(q, m)``, ``K' = rope(tt, n)``, ``a = Q'·K'``.
* CoCA-Strict (eq. 9):  ``a(m, n) = Σ_j τ_{n,j} (q_{m,j}² + q_{m,j+h}²) cos((m − n) θ_j)``
  computed as ``s = q[:h]² + q[h:]²``, ``Q' = concat(s cos φ(m), s sin φ(m))``,
  ``K' = concat(τ cos φ(n), τ sin φ(n))``.
* scores ``a / sqrt(d)``, causal mask, softmax, times ``V``.

Feature maps are formed in float32 (float64 for float64 inputs) and cast back to the input dtype.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F

from cocattn._checks import bad_value, check, check_choice
from cocattn.attention import alibi_flex
from cocattn.rope import (
    RopeParameters,
    apply_rope,
    TableDerivation,
    arange_tables,
    inv_freq_and_scaling,
    is_length_dependent,
    rope_cos_sin,
    rope_parameters,
)

__all__ = [
    "KINDS",
    "VARIANTS",
    "tie_t",
    "coca_features",
    "coca_attention",
    "coca_attention_tied",
    "rope_attention",
    "alibi_attention",
    "alibi_slopes",
    "nope_attention",
    "dot_product_attention",
    "default_positions",
    "fit_fp16",
    "set_feature_backend",
    "FEATURE_BACKENDS",
]

KINDS = ("rope", "coca", "coca-strict", "alibi", "nope")
VARIANTS = ("slack", "strict")
_FP16_LIMIT = 2.0**14  # feature magnitude above which float16 features are rescaled

RopeLike = RopeParameters | Mapping[str, Any] | None


# ---------------------------------------------------------------------------------------------
# input checks


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_name: str, k_dim: int | None = None) -> None:
    for name, x in (("q", q), (k_name, k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise bad_value(name, type(x).__name__, "a torch.Tensor")
        check(x.dim() == 4, f"{name}.shape", tuple(x.shape), "4 dims [batch, heads, seq, head_dim]")
    b, h, n, d = q.shape
    check(d % 2 == 0 and d > 0, "q.shape[-1] (head_dim)", d, "a positive even number (RoPE planes pair dims)")
    expect = d if k_dim is None else k_dim
    check(k.shape[-1] == expect, f"{k_name}.shape[-1]", k.shape[-1], f"{expect} (from q's head_dim {d})")
    check(k.shape[0] == b, f"{k_name}.shape[0] (batch)", k.shape[0], f"{b}, q's batch")
    check(v.shape[:3] == k.shape[:3], "v.shape", tuple(v.shape), f"batch, kv_heads and seq equal to {k_name}'s {tuple(k.shape[:3])}")
    hkv = k.shape[1]
    check(hkv > 0 and h % hkv == 0, f"{k_name}.shape[1] (kv_heads)", hkv, f"a divisor of q's {h} heads")
    check(q.dtype == k.dtype == v.dtype, "dtypes", (q.dtype, k.dtype, v.dtype), "one dtype for q, keys and v")
    check(q.dtype.is_floating_point, "q.dtype", q.dtype, "a floating-point dtype (float16, bfloat16, float32, float64)")


def default_positions(n: int, device: torch.device, offset: int = 0) -> torch.Tensor:
    """``offset, offset + 1, …`` as int64."""
    return torch.arange(offset, offset + n, device=device, dtype=torch.int64)


def _positions(positions: torch.Tensor | None, name: str, n: int, batch: int, device: torch.device) -> torch.Tensor:
    if positions is None:
        return default_positions(n, device)
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(positions)
    if positions.dtype.is_floating_point or positions.dtype.is_complex or positions.dtype == torch.bool:
        raise bad_value(name, f"tensor of dtype {positions.dtype}", "integer positions (int32/int64)")
    check(positions.dim() in (1, 2) and positions.shape[-1] == n, f"{name}.shape", tuple(positions.shape), f"[{n}] or [batch, {n}]")
    if positions.dim() == 2:
        check(positions.shape[0] in (1, batch), f"{name}.shape[0]", positions.shape[0], f"1 or the batch size {batch}")
    check(n == 0 or int(positions.min()) >= 0, name, "negative values", "non-negative positions")
    return positions.to(device=device, dtype=torch.int64)


class _Layout(NamedTuple):
    """Query and key positions, and whether they are the default layout (queries at
    ``S − N … S − 1``, keys at ``0 … S − 1``): then the current length and the causal mask's
    shape are known on the host, with no device synchronisation (and no graph break under
    ``torch.compile``)."""

    q_pos: torch.Tensor
    k_pos: torch.Tensor
    default: bool


def _layout(
    positions: torch.Tensor | None, key_positions: torch.Tensor | None, n: int, s: int, batch: int, device: torch.device
) -> _Layout:
    if positions is None and key_positions is None:
        k_pos = default_positions(s, device)
        q_pos = k_pos[s - n :] if n <= s else default_positions(n, device, s - n)
        return _Layout(q_pos, k_pos, True)
    k_pos = _positions(key_positions, "key_positions", s, batch, device)
    q_pos = _positions(positions, "positions", n, batch, device) if positions is not None else default_positions(n, device, s - n)
    if key_positions is None and positions is not None and n == s:
        k_pos = q_pos
    return _Layout(q_pos, k_pos, False)


def _current_length(layout: _Layout) -> int:
    """Largest position + 1 (what dynamic scaling calls the current length)."""
    if layout.default:
        return max(layout.k_pos.shape[-1], 1)
    if not layout.k_pos.numel():
        return 1
    return int(torch.maximum(layout.q_pos.max(), layout.k_pos.max())) + 1


def _tables(
    rope: RopeLike, head_dim: int, layout: _Layout, dtype: torch.dtype, derive: TableDerivation | None = None
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The queries' and the keys' tables: ``(cos, sin)`` shaped ``[B or 1, 1, N, d]``, or
    ``derive(cos, sin)`` (cached with the tables on the default layout), whose ``[..., N, 2, d/2]``
    tables get a head axis only for batched positions."""
    params = rope if isinstance(rope, RopeParameters) else rope_parameters(rope)
    seq_len = _current_length(layout) if is_length_dependent(params) else None
    inv_freq, scaling = inv_freq_and_scaling(params, head_dim, seq_len)
    q_pos, k_pos = layout.q_pos, layout.k_pos

    def at(positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tables = rope_cos_sin(positions, inv_freq, scaling, dtype)
        return tables if derive is None else tuple(derive(*tables))

    if layout.default:
        s, n = k_pos.shape[-1], q_pos.shape[-1]
        k_tabs = arange_tables(s, inv_freq, scaling, dtype, k_pos.device, derive)
        q_tabs = tuple(x[s - n :] for x in k_tabs) if n <= s else at(q_pos)
    else:
        q_tabs = at(q_pos)
        k_tabs = q_tabs if k_pos is q_pos else at(k_pos)

    def shape(x: torch.Tensor) -> torch.Tensor:
        if derive is not None:  # [S, 2, h] broadcasts as it is; [B, S, 2, h] gets its head axis
            return x.unsqueeze(1) if x.dim() == 4 else x
        return x.unsqueeze(0).unsqueeze(0) if x.dim() == 2 else x.unsqueeze(1)

    return tuple(shape(x) for x in q_tabs), tuple(shape(x) for x in k_tabs)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------------------------------
# the shared SDPA call


def _causal_mask(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """Boolean mask, True where key position ≤ query position (bottom-right aligned)."""
    qp = q_pos.unsqueeze(-1)
    kp = k_pos.unsqueeze(-2)
    mask = kp <= qp  # [..., N, S]
    return mask.unsqueeze(0).unsqueeze(0) if mask.dim() == 2 else mask.unsqueeze(1)


def _is_plain_causal(q_pos: torch.Tensor, k_pos: torch.Tensor) -> bool:
    """True when the top-left aligned ``is_causal`` mask of SDPA is the right one."""
    if q_pos.shape[-1] != k_pos.shape[-1]:
        return False
    return bool(torch.equal(q_pos, k_pos)) and bool((q_pos.diff(dim=-1) > 0).all()) if q_pos.shape[-1] > 1 else True


def _supports_enable_gqa() -> bool:
    import inspect

    try:
        return "enable_gqa" in inspect.signature(F.scaled_dot_product_attention).parameters
    except (TypeError, ValueError):  # builtins without a signature on some builds
        return tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 5)


_ENABLE_GQA = _supports_enable_gqa()


def _expand_kv(x: torch.Tensor, heads: int) -> torch.Tensor:
    rep = heads // x.shape[1]
    return x if rep == 1 else x.repeat_interleave(rep, dim=1)


def dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    q_pos: torch.Tensor,
    k_pos: torch.Tensor,
    causal: bool = True,
    scale: float,
    bias: torch.Tensor | None = None,
    need_weights: bool = False,
    default_layout: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``softmax(scale · q kᵀ + bias + causal mask) v`` with GQA.

    The default path is one ``F.scaled_dot_product_attention`` call (fused kernels where the
    device has them). ``need_weights=True`` takes the eager path and also returns the
    probabilities ``[B, H, N, S]``. ``default_layout``: the positions are the default ones
    (queries last), so the mask's shape is decided without looking at their values.
    """
    heads = q.shape[1]
    n, s = q.shape[2], k.shape[2]
    mask: torch.Tensor | None = None
    is_causal = False
    if causal:
        if bias is None and not need_weights and (n == s if default_layout else _is_plain_causal(q_pos, k_pos)):
            is_causal = n > 1
        elif default_layout:
            if not (n == 1 and s >= 1):  # one last query sees every key: no mask
                mask = _causal_mask(q_pos, k_pos)
        elif not (n == 1 and bool((k_pos.max(-1).values <= q_pos.max(-1).values).all())):
            mask = _causal_mask(q_pos, k_pos)
    if bias is not None:
        float_bias = bias.to(q.dtype)
        if mask is not None:
            float_bias = float_bias.masked_fill(~mask, float("-inf"))
        mask = float_bias
    if need_weights:
        kk, vv = _expand_kv(k, heads), _expand_kv(v, heads)
        scores = torch.matmul(q, kk.transpose(-1, -2)).float() * scale
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
        elif is_causal:
            scores = scores.masked_fill(~_causal_mask(q_pos, k_pos), float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(q.dtype)
        return torch.matmul(probs, vv), probs
    if _ENABLE_GQA and k.shape[1] != heads:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=True)
    return F.scaled_dot_product_attention(
        q, _expand_kv(k, heads), _expand_kv(v, heads), attn_mask=mask, is_causal=is_causal, scale=scale
    )


def fit_fp16(qf: torch.Tensor, kf: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Keep float16 features finite: divide by a power of two and move it into ``scale``.

    CoCA's query features are quadratic in q, so ``|Q'|`` can pass float16's 65,504 where q does
    not. Scores are unchanged: ``(scale·c_q·c_k)·(Q'/c_q)·(K'/c_k) = scale·Q'·K'``.
    """
    for i, x in enumerate((qf, kf)):
        amax = float(x.abs().amax()) if x.numel() else 0.0
        if not math.isfinite(amax):
            raise bad_value("q/t", "values producing inf or nan features", "finite inputs")
        if amax > _FP16_LIMIT:
            c = 2.0 ** math.ceil(math.log2(amax / _FP16_LIMIT))
            x = x / c
            scale = scale * c
            if i == 0:
                qf = x
            else:
                kf = x
    return qf, kf, scale


# ---------------------------------------------------------------------------------------------
# CoCA


def tie_t(t: torch.Tensor) -> torch.Tensor:
    """Plane-tied, non-negative T: ``τ = relu((t[..., :h] + t[..., h:]) / 2)``, shape ``[..., h]``."""
    h = t.shape[-1] // 2
    return torch.relu((t[..., :h] + t[..., h:]) / 2)


def coca_features(
    q: torch.Tensor,
    tau: torch.Tensor,
    q_cos: torch.Tensor,
    q_sin: torch.Tensor,
    k_cos: torch.Tensor,
    k_sin: torch.Tensor,
    variant: str = "slack",
) -> tuple[torch.Tensor, torch.Tensor]:
    """CoCA's query and key feature maps ``(Q', K')`` so that ``Q'·K'`` is the paper's score.

    ``q [..., d]`` and ``tau [..., d/2]`` must already be in the compute dtype of the tables.
    """
    h = tau.shape[-1]
    if variant == "slack":
        q_feat = q * apply_rope(q, q_cos, q_sin)
        k_feat = apply_rope(torch.cat([tau, tau], dim=-1), k_cos, k_sin)
    elif variant == "strict":
        s = q[..., :h] ** 2 + q[..., h:] ** 2
        q_feat = torch.cat([s * q_cos[..., :h], s * q_sin[..., :h]], dim=-1)
        k_feat = torch.cat([tau * k_cos[..., :h], tau * k_sin[..., :h]], dim=-1)
    else:
        raise bad_value("variant", variant, f"one of {VARIANTS}")
    return q_feat, k_feat


FEATURE_BACKENDS = ("torch", "triton")
_FEATURE_BACKEND = os.environ.get("COCATTN_FEATURES", "torch")


def set_feature_backend(name: str) -> None:
    """How CoCA's feature maps run: ``"torch"`` (default; four to six PyTorch ops per map and
    per gradient, any device and dtype) or ``"triton"`` (one fused kernel per map and per gradient, for CUDA tensors of
    float32 / bfloat16 / float16 when Triton is installed; other inputs keep the PyTorch path).
    The environment variable ``COCATTN_FEATURES`` sets the initial value."""
    global _FEATURE_BACKEND
    check_choice("backend", name, FEATURE_BACKENDS)
    _FEATURE_BACKEND = name


def _use_triton(q: torch.Tensor) -> bool:
    if _FEATURE_BACKEND not in FEATURE_BACKENDS:
        raise bad_value("COCATTN_FEATURES", _FEATURE_BACKEND, f"one of {FEATURE_BACKENDS}")
    if _FEATURE_BACKEND != "triton" or getattr(torch.compiler, "is_compiling", lambda: False)():
        return False
    from cocattn.attention import triton_features

    return triton_features.available(q)


def _planes(x: torch.Tensor) -> torch.Tensor:
    """``[..., d]`` viewed as ``[..., 2, d/2]``: the two halves of every plane on their own axis."""
    return x.unflatten(-1, (2, x.shape[-1] // 2))


def _plane_sum(x: torch.Tensor) -> torch.Tensor:
    """``x1 + x2`` of a ``[..., 2, h]`` tensor: ``[..., h]``."""
    return torch.add(*x.unbind(-2))


def _slack_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slack's tables ``[..., 2, d/2]`` from the full-width ``cos = (C, C)``, ``sin = (S, S)``:
    the queries' ``C`` (one row, broadcast) and ``S± = (−S, S)``; the keys' ``(C − S, C + S)``."""
    c, s = _planes(cos)[..., :1, :], _planes(sin)[..., :1, :]
    return c, torch.cat([-s, s], dim=-2), torch.cat([c - s, c + s], dim=-2)


def _strict_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Strict's tables ``[..., 2, d/2]``: ``(C, S)`` for the keys and the queries' forward, and
    ``2 (C, S)`` for the queries' backward."""
    both = torch.cat([_planes(cos)[..., :1, :], _planes(sin)[..., :1, :]], dim=-2)
    return both, 2 * both, both


class _CocaFeatures(torch.autograd.Function):
    """CoCA's feature maps ``(Q', K')`` with a hand-written backward, every map and gradient in
    four to six elementwise ops on the ``[..., 2, d/2]`` plane view (short sequences on a GPU are
    launch-bound: each op is a kernel launch and some host time). Arithmetic is in the tables'
    dtype (float32, or float64): a bfloat16 ``q`` times a float32 table is exact in float32, and
    the last op of each map writes the output dtype directly. Saved for the backward: ``q``, the
    tables and (raw ``t``) a half-width boolean mask ``w > 0``, so CoCA trains in vanilla RoPE's memory.

    With ``(q1, q2)`` the halves of q, ``σq = (q2, q1)``, ``C, S`` the tables of each plane,
    ``S± = (−S, S)`` and ``T`` the keys' table (Slack ``(C − S, C + S)``, Strict ``(C, S)``):

    * Slack: ``Q' = q ⊙ (q C + σq ⊙ S±)`` (= ``q ⊙ rope(q)``);
      ``∂q = 2 C g ⊙ q + σq d`` with ``d = g ⊙ S± summed over the halves = S (g2 − g1)``.
    * Strict: ``Q' = (s C, s S)``, ``s = q1² + q2²``; ``∂q = q ⊙ 2 (g1 C + g2 S)``.
    * Keys, either variant: ``K' = τ T``, ``∂τ = g1 T1 + g2 T2``. From the raw projection the
      tie is ``w = relu(t1 + t2) = 2τ`` and the map returns ``w T = 2 K'`` (the caller halves the
      softmax scale, exact in floating point); ``∂t1 = ∂t2 = ∂w · [w > 0]``.
    """

    @staticmethod
    def forward(ctx, q, t, q_a, q_b, k_table, variant: str, out_dtype: torch.dtype, raw: bool):
        cd = k_table.dtype
        qp = _planes(q)
        q_feat = torch.empty(qp.shape, dtype=out_dtype, device=q.device)
        if variant == "slack":
            a = (qp * q_a).addcmul_(qp.flip(-2), q_b)  # rope(q)
            torch.mul(a, qp, out=q_feat)
        else:
            q1, q2 = qp.unbind(-2)
            sq = torch.mul(q1, q1.to(cd)).addcmul_(q2, q2)
            torch.mul(q_a, sq.unsqueeze(-2), out=q_feat)
        if raw:
            tau = _planes(t).sum(-2, keepdim=True, dtype=cd).relu_()  # 2τ
            mask = tau > 0
        else:
            tau, mask = t.unsqueeze(-2), None
        k_feat = torch.empty((*tau.shape[:-2], *k_table.shape[-2:]), dtype=out_dtype, device=t.device)
        torch.mul(k_table, tau, out=k_feat)
        ctx.variant, ctx.raw, ctx.t_shape, ctx.t_dtype = variant, raw, t.shape, t.dtype
        ctx.save_for_backward(q, mask, q_a, q_b, k_table)
        return q_feat.flatten(-2), k_feat.flatten(-2)

    @staticmethod
    def backward(ctx, g_q, g_k):
        q, mask, q_a, q_b, k_table = ctx.saved_tensors
        grad_q = _CocaFeatures._query_grad(q, _planes(g_q), q_a, q_b, ctx.variant) if ctx.needs_input_grad[0] else None
        grad_t = None
        if ctx.needs_input_grad[1]:
            u = _plane_sum(_planes(g_k) * k_table)  # ∂τ (or ∂w)
            if ctx.raw:  # ∂t1 = ∂t2 = ∂w · [w > 0]: one op writes both halves
                grad_t = torch.empty(ctx.t_shape, dtype=ctx.t_dtype, device=u.device)
                gp = _planes(grad_t)
                torch.mul(u.unsqueeze(-2).expand(gp.shape), mask, out=gp)
            else:
                grad_t = _sum_to(u, ctx.t_shape).to(ctx.t_dtype)
        return grad_q, grad_t, None, None, None, None, None, None

    @staticmethod
    def _query_grad(q: torch.Tensor, gp: torch.Tensor, q_a: torch.Tensor, q_b: torch.Tensor, variant: str) -> torch.Tensor:
        qp = _planes(q)
        grad = torch.empty(qp.shape, dtype=q.dtype, device=q.device)
        if variant == "slack":  # 2 C g ⊙ q + σq d, the last op writing q's dtype
            d = _plane_sum(gp * q_b).unsqueeze(-2)
            torch.addcmul(qp.flip(-2) * d, qp * q_a, gp, value=2, out=grad)
        else:
            torch.mul(qp, _plane_sum(gp * q_b).unsqueeze(-2), out=grad)
        return grad.flatten(-2)


class _FusedCocaFeatures(torch.autograd.Function):
    """:class:`_CocaFeatures` as four Triton kernels (:mod:`cocattn.attention.triton_features`),
    on the half tables ``C, S`` of queries and keys; returns ``K'`` itself (no factor 2)."""

    @staticmethod
    def forward(ctx, q, t, qc, qs, kc, ks, variant: str, out_dtype: torch.dtype, raw: bool):
        from cocattn.attention import triton_features as TF

        ctx.strict, ctx.raw = variant == "strict", raw
        ctx.save_for_backward(q, t, qc, qs, kc, ks)
        return TF.query_features(q, qc, qs, ctx.strict, out_dtype), TF.key_features(t, kc, ks, ctx.strict, raw, out_dtype)

    @staticmethod
    def backward(ctx, g_q, g_k):
        from cocattn.attention import triton_features as TF

        q, t, qc, qs, kc, ks = ctx.saved_tensors
        grad_q = TF.query_grad(q, g_q, qc, qs, ctx.strict) if ctx.needs_input_grad[0] else None
        grad_t = TF.key_grad(t, g_k, kc, ks, ctx.strict, ctx.raw) if ctx.needs_input_grad[1] else None
        return grad_q, grad_t, None, None, None, None, None, None, None


def _sum_to(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Reduce broadcast dims of ``x`` back to ``shape``."""
    return x if x.shape == shape else x.sum_to_size(shape)


def coca_attention_tied(
    q: torch.Tensor,
    tau: torch.Tensor,
    v: torch.Tensor,
    *,
    variant: str = "slack",
    positions: torch.Tensor | None = None,
    key_positions: torch.Tensor | None = None,
    rope: RopeLike = None,
    causal: bool = True,
    scale: float | None = None,
    need_weights: bool = False,
):
    """:func:`coca_attention` on an already tied ``tau [B, Hkv, S, d/2]`` (what the KV cache holds).

    ``positions`` are the queries' (default ``S − N … S − 1``), ``key_positions`` the keys'
    (default ``0 … S − 1``).
    """
    check_choice("variant", variant, VARIANTS)
    b, _, n, d = q.shape
    if not isinstance(tau, torch.Tensor) or tau.dim() != 4:
        raise bad_value("t.shape", tuple(getattr(tau, "shape", ())), "4 dims [batch, kv_heads, seq, head_dim]")
    _check_qkv(q, tau, v, "t", k_dim=d // 2)
    return _coca(q, tau, v, variant, positions, key_positions, rope, causal, scale, need_weights, raw=False)


def _coca(q, t, v, variant, positions, key_positions, rope, causal, scale, need_weights, raw: bool):
    """CoCA on checked inputs; ``t`` raw (``[..., d]``, tied inside) or already tied (``[..., d/2]``)."""
    b, _, n, d = q.shape
    s = t.shape[2]
    layout = _layout(positions, key_positions, n, s, b, q.device)
    cd = _compute_dtype(q.dtype)
    out_dtype = cd if q.dtype == torch.float16 else q.dtype  # float16 is rescaled below first
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if _use_triton(q) and cd == torch.float32:
        h = d // 2
        (qc, qs), (kc, ks) = _tables(rope, d, layout, cd)
        halves = qc[..., :h], qs[..., :h], kc[..., :h], ks[..., :h]
        q_feat, k_feat = _FusedCocaFeatures.apply(q, t, *halves, variant, out_dtype, raw)
    else:
        q_tabs, k_tabs = _tables(rope, d, layout, cd, _slack_tables if variant == "slack" else _strict_tables)
        q_feat, k_feat = _CocaFeatures.apply(q, t, q_tabs[0], q_tabs[1], k_tabs[2], variant, out_dtype, raw)
        if raw:  # the map returned 2 K' (see _CocaFeatures)
            scale = scale / 2
    if q.dtype == torch.float16:
        q_feat, k_feat, scale = fit_fp16(q_feat, k_feat, scale)
    return dot_product_attention(
        q_feat.to(q.dtype), k_feat.to(q.dtype), v, q_pos=layout.q_pos, k_pos=layout.k_pos, causal=causal, scale=scale,
        need_weights=need_weights, default_layout=layout.default,
    )


def coca_attention(
    q: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    *,
    variant: str = "slack",
    positions: torch.Tensor | None = None,
    rope: RopeLike = None,
    causal: bool = True,
    scale: float | None = None,
    need_weights: bool = False,
):
    """Collinear Constrained Attention, one fused SDPA call, no N×N tensor.

    Args:
        q: queries ``[batch, heads, seq, head_dim]``.
        t: the raw T projection ``[batch, kv_heads, seq, head_dim]`` (tied here: average of the
           two halves of each plane, ReLU).
        v: values ``[batch, kv_heads, seq, head_dim]``.
        variant: ``"slack"`` (paper eq. 10, the released code, default) or ``"strict"`` (eq. 9,
           purely relative in m − n).
        positions: integer positions ``[seq]`` or ``[batch, seq]`` (default ``0 … seq − 1``).
        rope: RoPE parameters (dict in transformers' ``rope_parameters`` form); default base 10,000.
        causal: causal mask.
        scale: score multiplier, default ``1 / sqrt(head_dim)``.
        need_weights: also return the attention probabilities (eager path).
    """
    _check_qkv(q, t, v, "t")
    check(t.shape[2] == q.shape[2], "t.shape[2]", t.shape[2], f"q's seq length {q.shape[2]} (self-attention)")
    check_choice("variant", variant, VARIANTS)
    return _coca(q, t, v, variant, positions, None, rope, causal, scale, need_weights, raw=True)  # keys at the queries' positions


# ---------------------------------------------------------------------------------------------
# baselines


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
    _check_qkv(q, k, v, "k")
    b, _, n, d = q.shape
    s = k.shape[2]
    layout = _layout(positions, key_positions, n, s, b, q.device)
    q_pos, k_pos = layout.q_pos, layout.k_pos
    cd = _compute_dtype(q.dtype)
    (qc, qs), (kc, ks) = _tables(rope, d, layout, cd)
    qr = apply_rope(q.to(cd), qc, qs).to(q.dtype)
    kr = apply_rope(k.to(cd), kc, ks).to(q.dtype)
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return dot_product_attention(
        qr, kr, v, q_pos=q_pos, k_pos=k_pos, causal=causal, scale=scale, need_weights=need_weights,
        default_layout=layout.default,
    )


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
    _check_qkv(q, k, v, "k")
    b, _, n, d = q.shape
    s = k.shape[2]
    layout = _layout(positions, key_positions, n, s, b, q.device)
    q_pos, k_pos = layout.q_pos, layout.k_pos
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    return dot_product_attention(
        q, k, v, q_pos=q_pos, k_pos=k_pos, causal=causal, scale=scale, need_weights=need_weights,
        default_layout=layout.default,
    )


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


_SLOPES: dict[tuple[int, str], torch.Tensor] = {}


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
    _check_qkv(q, k, v, "k")
    b, heads, n, d = q.shape
    s = k.shape[2]
    layout = _layout(positions, key_positions, n, s, b, q.device)
    q_pos, k_pos = layout.q_pos, layout.k_pos
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if alibi_flex.applies(q, k, default_layout=layout.default, causal=causal, need_weights=need_weights):
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
            q[:, :, start : start + block], k, v, q_pos=qp, k_pos=k_pos, causal=causal, scale=scale, bias=bias,
            need_weights=need_weights, default_layout=layout.default and start + block >= n,
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
