"""CoCA's feature maps and their gradients as four fused Triton kernels (opt-in:
``COCATTN_FEATURES=triton`` or :func:`cocattn.attention.set_feature_backend`). Each map reads q (or
τ) and the cos/sin tables once and writes the features once, in float32, with the formulas of
:class:`cocattn.attention.coca.CocaFeatures`; the backward kernels write ``∂q`` and ``∂t`` (through
the tie when the raw T was given). CUDA tensors of float32 / bfloat16 / float16; CPU tensors too
under ``TRITON_INTERPRET=1`` set before import (how the tests run them without a GPU).
"""

from __future__ import annotations

from typing import Any

import torch

try:  # Triton is optional: without it the PyTorch path is used
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None
    tl = None

__all__ = ["available", "query_features", "key_features", "query_grad", "key_grad"]

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def available(x: torch.Tensor) -> bool:
    """True when the kernels can run on ``x`` (Triton installed; CUDA, or kernels built for the
    interpreter, which runs them on CPU tensors too)."""
    if triton is None or x.dtype not in _DTYPES:
        return False
    return x.is_cuda or _interpreted()


def _interpreted() -> bool:
    """Whether Triton built the kernels for its interpreter. Triton reads ``TRITON_INTERPRET`` when
    a kernel is defined (on importing this module), so the kernels themselves say it: the variable
    set or cleared later changes nothing they do."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_query_features_kernel, InterpretedFunction)


if triton is not None:

    @triton.jit
    def _rows(pid_bh, pid_n, H, N, h, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
        b = pid_bh // H
        hh = pid_bh % H
        n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        j = tl.arange(0, BLOCK_H)
        mask = (n[:, None] < N) & (j[None, :] < h)
        return b, hh, n, j, mask

    @triton.jit
    def _load_halves(x, b, hh, n, j, mask, h, s_b, s_h, s_n, s_d):
        """The two halves (planes j and j + h) of a [B, H, N, 2h] tensor's rows, as float32."""
        p = x + b * s_b + hh * s_h + n[:, None] * s_n + j[None, :] * s_d
        return tl.load(p, mask=mask, other=0.0).to(tl.float32), tl.load(p + h * s_d, mask=mask, other=0.0).to(
            tl.float32
        )

    @triton.jit
    def _load_tables(cos, sin, b, n, j, mask, sc_b, sc_n):
        p = b * sc_b + n[:, None] * sc_n + j[None, :]
        return tl.load(cos + p, mask=mask, other=0.0), tl.load(sin + p, mask=mask, other=0.0)

    @triton.jit
    def _store_halves(out, first, second, b, hh, n, j, mask, h, so_b, so_h, so_n):
        p = out + b * so_b + hh * so_h + n[:, None] * so_n + j[None, :]
        tl.store(p, first.to(out.dtype.element_ty), mask=mask)
        tl.store(p + h, second.to(out.dtype.element_ty), mask=mask)

    @triton.jit
    def _query_features_kernel(
        q,
        out,
        cos,
        sin,
        H,
        N,
        h,
        sq_b,
        sq_h,
        sq_n,
        sq_d,
        so_b,
        so_h,
        so_n,
        sc_b,
        sc_n,
        STRICT: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_H: tl.constexpr,
    ):
        b, hh, n, j, mask = _rows(tl.program_id(0), tl.program_id(1), H, N, h, BLOCK_N, BLOCK_H)
        q1, q2 = _load_halves(q, b, hh, n, j, mask, h, sq_b, sq_h, sq_n, sq_d)
        c, s = _load_tables(cos, sin, b, n, j, mask, sc_b, sc_n)
        if STRICT:
            sq = q1 * q1 + q2 * q2
            f1 = sq * c
            f2 = sq * s
        else:
            cross = q1 * q2 * s
            f1 = q1 * q1 * c - cross
            f2 = q2 * q2 * c + cross
        _store_halves(out, f1, f2, b, hh, n, j, mask, h, so_b, so_h, so_n)

    @triton.jit
    def _tau(t, b, hh, n, j, mask, h, st_b, st_h, st_n, st_d, RAW: tl.constexpr):
        """τ as float32: loaded, or with ``RAW`` tied from t (``(t1 + t2) / 2`` in float32, as the
        PyTorch path computes it; the ReLU is left to the caller)."""
        if RAW:
            t1, t2 = _load_halves(t, b, hh, n, j, mask, h, st_b, st_h, st_n, st_d)
            tau = (t1 + t2) * 0.5
        else:
            p = t + b * st_b + hh * st_h + n[:, None] * st_n + j[None, :] * st_d
            tau = tl.load(p, mask=mask, other=0.0).to(tl.float32)
        return tau

    @triton.jit
    def _key_features_kernel(
        t,
        out,
        cos,
        sin,
        H,
        N,
        h,
        st_b,
        st_h,
        st_n,
        st_d,
        so_b,
        so_h,
        so_n,
        sc_b,
        sc_n,
        RAW: tl.constexpr,
        STRICT: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_H: tl.constexpr,
    ):
        b, hh, n, j, mask = _rows(tl.program_id(0), tl.program_id(1), H, N, h, BLOCK_N, BLOCK_H)
        tau = tl.maximum(_tau(t, b, hh, n, j, mask, h, st_b, st_h, st_n, st_d, RAW), 0.0)
        c, s = _load_tables(cos, sin, b, n, j, mask, sc_b, sc_n)
        if STRICT:
            f1 = tau * c
            f2 = tau * s
        else:
            f1 = tau * (c - s)
            f2 = tau * (c + s)
        _store_halves(out, f1, f2, b, hh, n, j, mask, h, so_b, so_h, so_n)

    @triton.jit
    def _query_grad_kernel(
        q,
        g,
        out,
        cos,
        sin,
        H,
        N,
        h,
        sq_b,
        sq_h,
        sq_n,
        sq_d,
        sg_b,
        sg_h,
        sg_n,
        sg_d,
        so_b,
        so_h,
        so_n,
        sc_b,
        sc_n,
        STRICT: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_H: tl.constexpr,
    ):
        b, hh, n, j, mask = _rows(tl.program_id(0), tl.program_id(1), H, N, h, BLOCK_N, BLOCK_H)
        q1, q2 = _load_halves(q, b, hh, n, j, mask, h, sq_b, sq_h, sq_n, sq_d)
        g1, g2 = _load_halves(g, b, hh, n, j, mask, h, sg_b, sg_h, sg_n, sg_d)
        c, s = _load_tables(cos, sin, b, n, j, mask, sc_b, sc_n)
        if STRICT:  # ∂q_i = 2 q_i (g1 C + g2 S)
            gs = 2.0 * (g1 * c + g2 * s)
            d1 = q1 * gs
            d2 = q2 * gs
        else:  # ∂q1 = 2 C g1 q1 + S q2 (g2 − g1), ∂q2 = 2 C g2 q2 + S q1 (g2 − g1)
            diff = (g2 - g1) * s
            d1 = 2.0 * c * g1 * q1 + q2 * diff
            d2 = 2.0 * c * g2 * q2 + q1 * diff
        _store_halves(out, d1, d2, b, hh, n, j, mask, h, so_b, so_h, so_n)

    @triton.jit
    def _key_grad_kernel(
        t,
        g,
        out,
        cos,
        sin,
        H,
        N,
        h,
        st_b,
        st_h,
        st_n,
        st_d,
        sg_b,
        sg_h,
        sg_n,
        sg_d,
        so_b,
        so_h,
        so_n,
        sc_b,
        sc_n,
        RAW: tl.constexpr,
        STRICT: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_H: tl.constexpr,
    ):
        b, hh, n, j, mask = _rows(tl.program_id(0), tl.program_id(1), H, N, h, BLOCK_N, BLOCK_H)
        g1, g2 = _load_halves(g, b, hh, n, j, mask, h, sg_b, sg_h, sg_n, sg_d)
        c, s = _load_tables(cos, sin, b, n, j, mask, sc_b, sc_n)
        if STRICT:
            gt = g1 * c + g2 * s
        else:
            gt = g1 * (c - s) + g2 * (c + s)
        if RAW:  # through relu((t1 + t2) / 2): half to each half of t where τ > 0
            tau = _tau(t, b, hh, n, j, mask, h, st_b, st_h, st_n, st_d, RAW)
            gt = tl.where(tau > 0.0, gt * 0.5, 0.0)
            _store_halves(out, gt, gt, b, hh, n, j, mask, h, so_b, so_h, so_n)
        else:
            p = out + b * so_b + hh * so_h + n[:, None] * so_n + j[None, :]
            tl.store(p, gt.to(out.dtype.element_ty), mask=mask)


def _launch_shape(x: torch.Tensor, h: int) -> tuple[tuple[int, int], dict[str, int]]:
    b, heads, n, _ = x.shape
    block_h = triton.next_power_of_2(h)
    block_n = max(1, min(64, 4096 // block_h))
    return (b * heads, triton.cdiv(n, block_n)), {"BLOCK_N": block_n, "BLOCK_H": block_h}


def _table_strides(table: torch.Tensor) -> tuple[int, int]:
    """Strides (batch, position) of a ``[B or 1, 1, N, h]`` table whose last dim is contiguous."""
    return (table.stride(0) if table.shape[0] > 1 else 0), table.stride(2)


def _tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The half tables with unit stride in the last dim and one shared layout (what the kernels read)."""
    if cos.stride(-1) != 1 or sin.stride() != cos.stride():
        cos, sin = cos.contiguous(), sin.contiguous()
    return cos, sin


def _launch(
    kernel: Any,
    inputs: tuple[torch.Tensor, ...],
    out: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    h: int,
    **flags: bool,
) -> torch.Tensor:
    """Run ``kernel`` over the rows of ``inputs[0]`` ``[B, H, N, *]`` (``h`` planes a row) with the
    arguments every kernel here takes in this order: the input tensors, ``out``, the half tables,
    ``H, N, h``, each input's four strides, ``out``'s first three, the tables' two; then ``flags``."""
    x = inputs[0]
    cos, sin = _tables(cos, sin)
    grid, meta = _launch_shape(x, h)
    strides = [stride for tensor in inputs for stride in tensor.stride()]
    kernel[grid](
        *inputs,
        out,
        cos,
        sin,
        x.shape[1],
        x.shape[2],
        h,
        *strides,
        *out.stride()[:3],
        *_table_strides(cos),
        **flags,
        **meta,
    )
    return out


def query_features(
    q: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, strict: bool, out_dtype: torch.dtype
) -> torch.Tensor:
    """``Q'`` ``[B, H, N, d]`` in ``out_dtype`` from ``q`` and the half tables ``[B|1, 1, N, d/2]``."""
    out = torch.empty(q.shape, dtype=out_dtype, device=q.device)
    return _launch(_query_features_kernel, (q,), out, cos, sin, q.shape[-1] // 2, STRICT=strict)


def key_features(
    t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, strict: bool, raw: bool, out_dtype: torch.dtype
) -> torch.Tensor:
    """``K'`` ``[B, Hkv, N, d]`` from τ ``[..., d/2]`` or, with ``raw``, the raw T ``[..., d]``."""
    b, heads, n, width = t.shape
    h = width // 2 if raw else width
    out = torch.empty((b, heads, n, 2 * h), dtype=out_dtype, device=t.device)
    return _launch(_key_features_kernel, (t,), out, cos, sin, h, RAW=raw, STRICT=strict)


def query_grad(q: torch.Tensor, g: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, strict: bool) -> torch.Tensor:
    """``∂L/∂q`` in q's dtype from ``g = ∂L/∂Q'``."""
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    return _launch(_query_grad_kernel, (q, g), out, cos, sin, q.shape[-1] // 2, STRICT=strict)


def key_grad(
    t: torch.Tensor, g: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, strict: bool, raw: bool
) -> torch.Tensor:
    """``∂L/∂t`` (raw T, through the tie) or ``∂L/∂τ`` in t's dtype from ``g = ∂L/∂K'``."""
    h = t.shape[-1] // 2 if raw else t.shape[-1]
    out = torch.empty(t.shape, dtype=t.dtype, device=t.device)
    return _launch(_key_grad_kernel, (t, g), out, cos, sin, h, RAW=raw, STRICT=strict)
