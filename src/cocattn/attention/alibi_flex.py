"""ALiBi on FlexAttention: the bias ``−slope_h · (m − n)`` as a ``score_mod`` inside a fused,
block-sparse causal kernel, so no bias tensor is built. It applies to self-attention on the
default positions of at least :data:`MIN_LENGTH` tokens, without ``need_weights``, outside an
enclosing ``torch.compile``, on CUDA (``"auto"``) or anywhere (``"flex"``, forward only on CPU);
everything else, and any device where it failed once, takes the SDPA path
(docs/ARCHITECTURE.md, "Attention core").
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

from cocattn._lru import LRU
from cocattn.attention import backends
from cocattn.attention.backends import ALIBI_BACKENDS, set_alibi_backend

__all__ = ["ALIBI_BACKENDS", "MIN_LENGTH", "set_alibi_backend", "applies", "alibi_flex"]

MIN_LENGTH = 128
"""Shorter sequences (decoding steps, short prompts) keep the SDPA path: their bias is small."""

_COMPILED: dict[str, Callable] = backends.register_cache({}, compiled=True)  # "flex": flex_attention, compiled
_MASKS: LRU[object] = backends.register_cache(LRU(16))
_SCORE_MODS: dict[int, Callable] = backends.register_cache({}, compiled=True)


def __getattr__(name: str) -> str | None:
    if name == "_BROKEN":  # the reason FlexAttention was disabled; kept in backends.flex_failure()
        return backends.flex_failure()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _flex_module():
    try:
        from torch.nn.attention import flex_attention as flex
    except ImportError:  # torch < 2.5
        return None
    return flex


def applies(q: torch.Tensor, k: torch.Tensor, *, default_layout: bool, causal: bool, need_weights: bool) -> bool:
    """Whether :func:`alibi_flex` runs this call (see the module docstring)."""
    backend = backends.alibi_backend()
    if backend == "sdpa" or backends.flex_failure() is not None or need_weights or not default_layout:
        return False
    n, s, d = q.shape[2], k.shape[2], q.shape[-1]
    if n != s or n < MIN_LENGTH or d < 16 or d & (d - 1) or q.dtype == torch.float64:
        return False
    if getattr(torch.compiler, "is_compiling", lambda: False)():
        return False
    if q.is_cuda:
        return _flex_module() is not None
    if backend != "flex" or q.device.type != "cpu":
        return False
    grads = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k))
    return not grads and _flex_module() is not None


def _score_mod(slopes: torch.Tensor) -> Callable:
    """``score − slope_h · (m − n)``; one function per slopes tensor (what compiled code is keyed on)."""
    key = id(slopes)
    if key not in _SCORE_MODS:

        def alibi(score, b, h, q_idx, kv_idx):
            return score + slopes[h] * (kv_idx - q_idx)

        _SCORE_MODS[key] = alibi
    return _SCORE_MODS[key]


def _causal(b, h, q_idx, kv_idx):
    return q_idx >= kv_idx


def _block_mask(n: int, device: torch.device) -> object:
    return _MASKS.get(
        (n, str(device)), lambda: _flex_module().create_block_mask(_causal, None, None, n, n, device=device)
    )


def alibi_flex(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor, *, scale: float, causal: bool
) -> torch.Tensor | None:
    """ALiBi attention through FlexAttention, or ``None`` when it failed (warned once; the caller
    then takes the SDPA path, as every later call will)."""
    flex = _flex_module()
    if "flex" not in _COMPILED:
        _COMPILED["flex"] = torch.compile(flex.flex_attention, dynamic=True)  # one compilation for every length
    try:
        return _COMPILED["flex"](
            q,
            k,
            v,
            score_mod=_score_mod(slopes),
            block_mask=_block_mask(q.shape[2], q.device) if causal else None,
            scale=scale,
            enable_gqa=k.shape[1] != q.shape[1],
        )
    except Exception as err:  # a device or version FlexAttention does not support: keep working
        reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
        backends.record_flex_failure(reason)
        warnings.warn(
            f"ALiBi: FlexAttention failed on {q.device} ({reason}); using the SDPA path (a float "
            "bias per block of queries: correct, slower on a GPU) from now on. COCATTN_ALIBI=sdpa "
            "selects it from the start.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
