"""What every attention kind shares: its keyword options (:class:`AttentionOptions`) and its
opening (:func:`opening`: the options and input checks, the positions' layout, the score scale),
the RoPE tables for the layout, the causal masks, the one SDPA call (with GQA and an eager path
that returns probabilities) and the float16 guard for feature maps.

Notation: ``q [B, H, N, d]``, ``k``/``v [B, Hkv, S, d]``; queries sit at ``S − N … S − 1`` and keys
at ``0 … S − 1`` unless positions are given (the default layout, known on the host).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, NamedTuple, TypedDict

import torch
import torch.nn.functional as F

from cocattn._checks import bad_value, check
from cocattn.rope import (
    RopeParameters,
    TableDerivation,
    arange_tables,
    inv_freq_and_scaling,
    is_length_dependent,
    rope_cos_sin,
    rope_parameters,
)

__all__ = [
    "RopeLike",
    "Attended",
    "SelfAttentionOptions",
    "AttentionOptions",
    "Layout",
    "Call",
    "check_qkv",
    "default_positions",
    "layout",
    "current_length",
    "rope_tables",
    "compute_dtype",
    "default_scale",
    "opening",
    "attend",
    "dot_product_attention",
    "fit_fp16",
]

FP16_LIMIT = 2.0**14  # feature magnitude above which float16 features are rescaled

RopeLike = RopeParameters | Mapping[str, Any] | None

Attended = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
"""An attention kind's result: the output ``[B, H, N, d]``, and with ``need_weights`` the
probabilities ``[B, H, N, S]`` too."""


class SelfAttentionOptions(TypedDict, total=False):
    """The keyword options every attention kind takes (shaped like ``F.scaled_dot_product_attention``;
    the defaults in brackets)."""

    positions: torch.Tensor | None
    """The queries' integer positions ``[N]`` or ``[B, N]`` (``None``: ``S − N … S − 1``)."""
    rope: RopeLike
    """RoPE parameters in transformers' ``rope_parameters`` form (``None``: base 10,000); ALiBi
    and NoPE ignore them."""
    causal: bool
    """Apply the causal mask (``True``)."""
    scale: float | None
    """The score multiplier (``None``: ``1 / sqrt(head_dim)``)."""
    need_weights: bool
    """Also return the attention probabilities, from the eager path (``False``)."""


class AttentionOptions(SelfAttentionOptions, total=False):
    """:class:`SelfAttentionOptions` plus the keys' own positions (attention over cached keys)."""

    key_positions: torch.Tensor | None
    """The keys' integer positions ``[S]`` or ``[B, S]`` (``None``: ``0 … S − 1``)."""


_SELF_OPTIONS: frozenset[str] = SelfAttentionOptions.__optional_keys__
_OPTIONS: frozenset[str] = AttentionOptions.__optional_keys__


def check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_name: str, k_dim: int | None = None) -> None:
    """Shapes and dtypes of queries, keys (called ``k_name``; last dim ``k_dim``, default q's) and
    values; a ``ValueError`` naming the argument otherwise."""
    for name, x in (("q", q), (k_name, k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise bad_value(name, type(x).__name__, "a torch.Tensor")
        check(x.dim() == 4, f"{name}.shape", tuple(x.shape), "4 dims [batch, heads, seq, head_dim]")
    b, h, n, d = q.shape
    check(d % 2 == 0 and d > 0, "q.shape[-1] (head_dim)", d, "a positive even number (RoPE planes pair dims)")
    expect = d if k_dim is None else k_dim
    check(k.shape[-1] == expect, f"{k_name}.shape[-1]", k.shape[-1], f"{expect} (from q's head_dim {d})")
    check(k.shape[0] == b, f"{k_name}.shape[0] (batch)", k.shape[0], f"{b}, q's batch")
    check(
        v.shape[:3] == k.shape[:3],
        "v.shape",
        tuple(v.shape),
        f"batch, kv_heads and seq equal to {k_name}'s {tuple(k.shape[:3])}",
    )
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
    check(
        positions.dim() in (1, 2) and positions.shape[-1] == n,
        f"{name}.shape",
        tuple(positions.shape),
        f"[{n}] or [batch, {n}]",
    )
    if positions.dim() == 2:
        check(positions.shape[0] in (1, batch), f"{name}.shape[0]", positions.shape[0], f"1 or the batch size {batch}")
    check(n == 0 or int(positions.min()) >= 0, name, "negative values", "non-negative positions")
    return positions.to(device=device, dtype=torch.int64)


class Layout(NamedTuple):
    """Query and key positions, and whether they are the default layout (queries at
    ``S − N … S − 1``, keys at ``0 … S − 1``): then the current length and the causal mask's
    shape are known on the host, with no device synchronisation (and no graph break under
    ``torch.compile``)."""

    q_pos: torch.Tensor
    k_pos: torch.Tensor
    default: bool


def layout(
    positions: torch.Tensor | None, key_positions: torch.Tensor | None, n: int, s: int, batch: int, device: torch.device
) -> Layout:
    if positions is None and key_positions is None:
        k_pos = default_positions(s, device)
        q_pos = k_pos[s - n :] if n <= s else default_positions(n, device, s - n)
        return Layout(q_pos, k_pos, True)
    k_pos = _positions(key_positions, "key_positions", s, batch, device)
    q_pos = (
        _positions(positions, "positions", n, batch, device)
        if positions is not None
        else default_positions(n, device, s - n)
    )
    if key_positions is None and positions is not None and n == s:
        k_pos = q_pos
    return Layout(q_pos, k_pos, False)


def current_length(layout: Layout) -> int:
    """Largest position + 1 (what dynamic scaling calls the current length)."""
    if layout.default:
        return max(layout.k_pos.shape[-1], 1)
    if not layout.k_pos.numel():
        return 1
    return int(torch.maximum(layout.q_pos.max(), layout.k_pos.max())) + 1


def rope_tables(
    rope: RopeLike, head_dim: int, layout: Layout, dtype: torch.dtype, derive: TableDerivation | None = None
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The queries' and the keys' tables: ``(cos, sin)`` shaped ``[B or 1, 1, N, d]``, or
    ``derive(cos, sin)`` (cached with the tables on the default layout), whose ``[..., N, 2, d/2]``
    tables get a head axis only for batched positions."""
    params = rope if isinstance(rope, RopeParameters) else rope_parameters(rope)
    seq_len = current_length(layout) if is_length_dependent(params) else None
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


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype feature maps and tables are computed in: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def default_scale(scale: float | None, head_dim: int) -> float:
    """The score multiplier: ``scale``, or ``1 / sqrt(head_dim)``."""
    return 1.0 / math.sqrt(head_dim) if scale is None else float(scale)


class Call(NamedTuple):
    """One attention call after its opening: where queries and keys sit, and its options."""

    where: Layout
    scale: float
    rope: RopeLike
    causal: bool
    need_weights: bool


def _check_option_names(options: Mapping[str, Any], accepted: frozenset[str], caller: str) -> None:
    """A ``TypeError`` for a keyword the attention function does not take, as Python raises for
    any function (``**options`` receives every keyword)."""
    for key in options:
        if key not in accepted:
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r} (it takes {sorted(accepted)})")


def opening(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    options: AttentionOptions,
    *,
    caller: str,
    k_name: str = "k",
    k_dim: int | None = None,
    self_attention: bool = False,
) -> Call:
    """What every kind does first: check the keyword options and the inputs, lay out the
    positions, fix the score scale. ``self_attention``: the kind takes no ``key_positions``
    (:class:`SelfAttentionOptions`; keys sit at the queries' positions)."""
    _check_option_names(options, _SELF_OPTIONS if self_attention else _OPTIONS, caller)
    check_qkv(q, k, v, k_name, k_dim)
    positions, key_positions = options.get("positions"), options.get("key_positions")
    where = layout(positions, key_positions, q.shape[2], k.shape[2], q.shape[0], q.device)
    return Call(
        where,
        default_scale(options.get("scale"), q.shape[-1]),
        options.get("rope"),
        options.get("causal", True),
        options.get("need_weights", False),
    )


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, call: Call) -> Attended:
    """:func:`dot_product_attention` at the positions and with the options of ``call``."""
    return dot_product_attention(
        q,
        k,
        v,
        q_pos=call.where.q_pos,
        k_pos=call.where.k_pos,
        causal=call.causal,
        scale=call.scale,
        need_weights=call.need_weights,
        default_layout=call.where.default,
    )


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
) -> Attended:
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
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale, enable_gqa=True
        )
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
        if amax > FP16_LIMIT:
            c = 2.0 ** math.ceil(math.log2(amax / FP16_LIMIT))
            x = x / c
            scale = scale * c
            if i == 0:
                qf = x
            else:
                kf = x
    return qf, kf, scale
