"""Collinear Constrained Attention (CoCA, arXiv 2309.08646): the tie, the feature maps and the
attention functions. Both variants are ordinary dot-product attention on per-token feature maps,
so one fused SDPA call runs them and no N×N tensor is ever built.

Notation: ``q [B, H, N, d]``, ``t``/``v [B, Hkv, S, d]``, ``h = d / 2``, plane ``j`` pairs dims
``j`` and ``j + h``, ``φ_j(p) = p θ_j``; ``rope(x, p)`` rotates every plane of ``x`` by ``φ(p)``.

The equations of the paper, in the one place they live:

* tied T (released code): ``τ = relu((t[:h] + t[h:]) / 2)``, ``tt = concat(τ, τ)`` (softplus in
  place of relu is an option, a deviation: :mod:`cocattn.attention.coca_options`)
* CoCA-Slack (eq. 10):  ``a(m, n) = Σ_d q_m[d] · rope(tt_n, n)[d] · rope(q_m, m)[d]``
  computed as ``Q' = q ⊙ rope(q, m)``, ``K' = rope(tt, n)``, ``a = Q'·K'``.
* CoCA-Strict (eq. 9):  ``a(m, n) = Σ_j τ_{n,j} (q_{m,j}² + q_{m,j+h}²) cos((m − n) θ_j)``
  computed as ``s = q[:h]² + q[h:]²``, ``Q' = concat(s cos φ(m), s sin φ(m))``,
  ``K' = concat(τ cos φ(n), τ sin φ(n))``.
* scores ``a / sqrt(d)``, causal mask, softmax, times ``V``.

Feature maps are formed in float32 (float64 for float64 inputs) and cast back to the input dtype.
Every production path (:func:`coca_attention`, :func:`coca_attention_tied`, the transformers
model in :mod:`cocattn.hf.modeling`) computes them with ONE autograd op, :func:`coca_feature_maps`
(:class:`CocaFeatures`, or its Triton kernels when :mod:`.backends` selects them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, cast

import torch

from cocattn._checks import bad_value, check, check_choice
from cocattn.attention import backends
from cocattn.attention.coca_options import tau_activation
from cocattn.attention.kinds import VARIANTS
from cocattn.attention.sdpa import (
    Attended,
    AttentionOptions,
    Call,
    SelfAttentionOptions,
    attend,
    compute_dtype,
    fit_fp16,
    opening,
    rope_tables,
)
from cocattn.rope import TableDerivation, apply_rope

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "tie_t",
    "coca_features",
    "CocaFeatures",
    "TableSource",
    "given_tables",
    "coca_feature_maps",
    "coca_attention",
    "coca_attention_tied",
]

TableSource = Callable[[TableDerivation | None], tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]]
"""``source(derive)``: the queries' and the keys' RoPE tables, ``(cos, sin)`` each (``derive=None``)
or ``derive(cos, sin)`` each; see :func:`cocattn.attention.sdpa.rope_tables` and :func:`given_tables`."""


def tie_t(t: torch.Tensor, activation: str = "relu") -> torch.Tensor:
    """Plane-tied, non-negative T: ``τ = relu((t[..., :h] + t[..., h:]) / 2)``.

    Args:
        t: the raw T projection ``[..., d]`` (``d = 2h``, one pair of dims per RoPE plane).
        activation: ``"relu"`` (the paper) or ``"softplus"`` (a deviation, :mod:`.coca_options`).

    Returns:
        τ ``[..., h]``, non-negative, in t's dtype.
    """
    h = t.shape[-1] // 2
    return tau_activation(activation)((t[..., :h] + t[..., h:]) / 2)


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

    ``q [..., d]`` and ``tau [..., d/2]`` must already be in the compute dtype of the tables
    (``cos``/``sin`` ``[..., d]`` each, queries' and keys').

    Returns:
        ``(q_feat, k_feat)``, each ``[..., d]``: ``q_feat · k_feat`` is the paper's score (Slack:
        eq. 10; Strict: eq. 9).
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


class CocaFeatures(torch.autograd.Function):
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
    def forward(
        ctx: Any,
        q: torch.Tensor,
        t: torch.Tensor,
        q_a: torch.Tensor,
        q_b: torch.Tensor,
        k_table: torch.Tensor,
        variant: str,
        out_dtype: torch.dtype,
        raw: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
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
        grad_q = CocaFeatures._query_grad(q, _planes(g_q), q_a, q_b, ctx.variant) if ctx.needs_input_grad[0] else None
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
    def _query_grad(
        q: torch.Tensor, gp: torch.Tensor, q_a: torch.Tensor, q_b: torch.Tensor, variant: str
    ) -> torch.Tensor:
        qp = _planes(q)
        grad = torch.empty(qp.shape, dtype=q.dtype, device=q.device)
        if variant == "slack":  # 2 C g ⊙ q + σq d, the last op writing q's dtype
            d = _plane_sum(gp * q_b).unsqueeze(-2)
            torch.addcmul(qp.flip(-2) * d, qp * q_a, gp, value=2, out=grad)
        else:
            torch.mul(qp, _plane_sum(gp * q_b).unsqueeze(-2), out=grad)
        return grad.flatten(-2)


class _FusedCocaFeatures(torch.autograd.Function):
    """:class:`CocaFeatures` as four Triton kernels (:mod:`cocattn.attention.triton_features`),
    on the half tables ``C, S`` of queries and keys; returns ``K'`` itself (no factor 2)."""

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        t: torch.Tensor,
        qc: torch.Tensor,
        qs: torch.Tensor,
        kc: torch.Tensor,
        ks: torch.Tensor,
        variant: str,
        out_dtype: torch.dtype,
        raw: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        from cocattn.attention import triton_features as TF

        ctx.strict, ctx.raw = variant == "strict", raw
        ctx.save_for_backward(q, t, qc, qs, kc, ks)
        return TF.query_features(q, qc, qs, ctx.strict, out_dtype), TF.key_features(
            t, kc, ks, ctx.strict, raw, out_dtype
        )

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


def given_tables(q_cos: torch.Tensor, q_sin: torch.Tensor, k_cos: torch.Tensor, k_sin: torch.Tensor) -> TableSource:
    """A :data:`TableSource` for tables already computed, full width ``[B or 1, 1, N, d]`` (what the
    transformers model's rotary module gives); derived tables are formed at each call."""

    def source(derive: TableDerivation | None) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        if derive is None:
            return (q_cos, q_sin), (k_cos, k_sin)
        return tuple(derive(q_cos, q_sin)), tuple(derive(k_cos, k_sin))

    return source


def coca_feature_maps(
    q: torch.Tensor, t: torch.Tensor, tables: TableSource, *, variant: str, raw: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CoCA's ``(Q', K', scale)`` in q's dtype, ready for one SDPA call: the one autograd op behind
    every CoCA path (native model, functional API and the transformers model alike).

    ``t`` is the raw T projection ``[..., d]`` (``raw=True``; tied inside the op, and only a
    half-width mask saved for the backward) or the tied ``τ [..., d/2]``. ``tables`` gives the RoPE
    tables of queries and keys in the compute dtype (float32; float64 for float64 inputs). The
    returned ``scale`` is the one to use with these features: the raw tie returns ``2 K'`` and
    halves it, and float16 features are rescaled into it (:func:`~cocattn.attention.sdpa.fit_fp16`).

    Returns:
        ``(q_feat [..., d], k_feat [..., d], scale)`` in q's dtype: SDPA on ``(q_feat, k_feat, v)``
        with ``scale`` gives CoCA's output.
    """
    cd = compute_dtype(q.dtype)
    out_dtype = cd if q.dtype == torch.float16 else q.dtype  # float16 is rescaled below first
    if backends.use_triton(q) and cd == torch.float32:
        h = q.shape[-1] // 2
        (qc, qs), (kc, ks) = tables(None)
        halves = qc[..., :h], qs[..., :h], kc[..., :h], ks[..., :h]
        q_feat, k_feat = _FusedCocaFeatures.apply(q, t, *halves, variant, out_dtype, raw)
    else:
        q_tabs, k_tabs = tables(_slack_tables if variant == "slack" else _strict_tables)
        q_feat, k_feat = CocaFeatures.apply(q, t, q_tabs[0], q_tabs[1], k_tabs[2], variant, out_dtype, raw)
        if raw:  # the map returned 2 K' (see CocaFeatures)
            scale = scale / 2
    if q.dtype == torch.float16:
        q_feat, k_feat, scale = fit_fp16(q_feat, k_feat, scale)
    return q_feat.to(q.dtype), k_feat.to(q.dtype), scale


def coca_attention_tied(
    q: torch.Tensor, tau: torch.Tensor, v: torch.Tensor, *, variant: str = "slack", **options: Unpack[AttentionOptions]
) -> Attended:
    """:func:`coca_attention` on an already tied ``tau [B, Hkv, S, d/2]`` (what the KV cache holds).

    ``positions`` are the queries' (default ``S − N … S − 1``), ``key_positions`` the keys'
    (default ``0 … S − 1``); the options are :class:`~cocattn.attention.sdpa.AttentionOptions`.
    Returns:
        out: ``[batch, heads, N, head_dim]`` in q's dtype; with ``need_weights=True`` the tuple
        ``(out, probs)``, ``probs [batch, heads, N, S]`` (the eager path).
    """
    check_choice("variant", variant, VARIANTS)
    if not isinstance(tau, torch.Tensor) or tau.dim() != 4:
        raise bad_value("t.shape", tuple(getattr(tau, "shape", ())), "4 dims [batch, kv_heads, seq, head_dim]")
    call = opening(q, tau, v, options, caller="coca_attention_tied", k_name="t", k_dim=q.shape[-1] // 2)
    return _coca(q, tau, v, variant, call, raw=False)


def _coca(q: torch.Tensor, t: torch.Tensor, v: torch.Tensor, variant: str, call: Call, raw: bool) -> Attended:
    """CoCA on checked inputs; ``t`` raw (``[..., d]``, tied inside) or already tied (``[..., d/2]``)."""
    d, cd = q.shape[-1], compute_dtype(q.dtype)
    q_feat, k_feat, scale = coca_feature_maps(
        q,
        t,
        lambda derive: rope_tables(call.rope, d, call.where, cd, derive),
        variant=variant,
        raw=raw,
        scale=call.scale,
    )
    return attend(q_feat, k_feat, v, call._replace(scale=scale))


def coca_attention(
    q: torch.Tensor,
    t: torch.Tensor,
    v: torch.Tensor,
    *,
    variant: str = "slack",
    **options: Unpack[SelfAttentionOptions],
) -> Attended:
    """Collinear Constrained Attention, one fused SDPA call, no N×N tensor.

    Args:
        q: queries ``[batch, heads, seq, head_dim]``.
        t: the raw T projection ``[batch, kv_heads, seq, head_dim]`` (tied here: average of the
           two halves of each plane, ReLU).
        v: values ``[batch, kv_heads, seq, head_dim]``.
        variant: ``"slack"`` (paper eq. 10, the released code, default) or ``"strict"`` (eq. 9,
           purely relative in m − n).
        options: :class:`~cocattn.attention.sdpa.SelfAttentionOptions`:
           ``positions``: integer positions ``[seq]`` or ``[batch, seq]`` (default ``0 … seq − 1``);
           ``rope``: RoPE parameters (dict in transformers' ``rope_parameters`` form), default base
           10,000; ``causal``: causal mask (default on); ``scale``: score multiplier, default
           ``1 / sqrt(head_dim)``; ``need_weights``: also return the attention probabilities
           (eager path).
    Returns:
        out: ``[batch, heads, seq, head_dim]`` in q's dtype; with ``need_weights=True`` the tuple
        ``(out, probs)``, ``probs [batch, heads, seq, key_seq]`` (the eager path).
    """
    # keys at the queries' positions: opening rejects key_positions (coca_attention_tied takes them)
    call = opening(q, t, v, cast(AttentionOptions, options), caller="coca_attention", k_name="t", self_attention=True)
    check(t.shape[2] == q.shape[2], "t.shape[2]", t.shape[2], f"q's seq length {q.shape[2]} (self-attention)")
    check_choice("variant", variant, VARIANTS)
    return _coca(q, t, v, variant, call, raw=True)
