"""ALiBi on FlexAttention: the bias ``−slope_h · (m − n)`` added inside a fused, block-sparse
causal kernel, so no bias tensor is ever built.

The portable path (:func:`cocattn.attention.functional.alibi_attention`) hands SDPA a float
bias a block of queries at a time: bounded memory, but no fused causal kernel takes a float bias,
so on a GPU it runs 1.3× to 27× slower than RoPE from 2K to 16K tokens (docs/RESULTS.md). Here
``flex_attention`` compiles the bias into the kernel as a ``score_mod`` and skips the blocks
above the diagonal with a block mask.

Backends (:func:`set_alibi_backend`, or the environment variable ``COCATTN_ALIBI``):

* ``"auto"`` (default): FlexAttention for CUDA tensors where it applies, else the SDPA path;
* ``"flex"``: FlexAttention wherever it applies, CPU included (forward only there: PyTorch has no
  FlexAttention backward on CPU);
* ``"sdpa"``: always the SDPA path.

It applies to self-attention on the default positions (queries and keys at ``0 … N − 1``: what
the model runs without a cache, or for a prompt) of at least :data:`MIN_LENGTH` tokens, without
``need_weights``, outside an enclosing ``torch.compile`` (a compiled model keeps the SDPA path,
which the compiler fuses). Anything else takes the SDPA path. If FlexAttention fails on a
device, a warning says so once and the SDPA path is used from then on.
"""

from __future__ import annotations

import os
import warnings
from typing import Callable

import torch

from cocattn._checks import bad_value, check_choice
from cocattn._lru import LRU

__all__ = ["ALIBI_BACKENDS", "MIN_LENGTH", "set_alibi_backend", "applies", "alibi_flex"]

ALIBI_BACKENDS = ("auto", "flex", "sdpa")
MIN_LENGTH = 128
"""Shorter sequences (decoding steps, short prompts) keep the SDPA path: their bias is small."""

_BACKEND = os.environ.get("COCATTN_ALIBI", "auto")
_BROKEN: str | None = None  # the error that disabled FlexAttention in this process, if any
_COMPILED: Callable | None = None
_MASKS: LRU[object] = LRU(16)
_SCORE_MODS: dict[int, Callable] = {}


def set_alibi_backend(name: str) -> None:
    """``"auto"`` (FlexAttention on CUDA), ``"flex"`` (also on CPU, forward only) or ``"sdpa"``."""
    global _BACKEND
    check_choice("backend", name, ALIBI_BACKENDS)
    _BACKEND = name


def _flex_module():
    try:
        from torch.nn.attention import flex_attention as flex
    except ImportError:  # torch < 2.5
        return None
    return flex


def applies(q: torch.Tensor, k: torch.Tensor, *, default_layout: bool, causal: bool, need_weights: bool) -> bool:
    """Whether :func:`alibi_flex` runs this call (see the module docstring)."""
    if _BACKEND not in ALIBI_BACKENDS:
        raise bad_value("COCATTN_ALIBI", _BACKEND, f"one of {ALIBI_BACKENDS}")
    if _BACKEND == "sdpa" or _BROKEN is not None or need_weights or not default_layout:
        return False
    n, s, d = q.shape[2], k.shape[2], q.shape[-1]
    if n != s or n < MIN_LENGTH or d < 16 or d & (d - 1) or q.dtype == torch.float64:
        return False
    if getattr(torch.compiler, "is_compiling", lambda: False)():
        return False
    if q.is_cuda:
        return _flex_module() is not None
    if _BACKEND != "flex" or q.device.type != "cpu":
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


def _block_mask(n: int, device: torch.device):
    return _MASKS.get((n, str(device)), lambda: _flex_module().create_block_mask(_causal, None, None, n, n, device=device))


def alibi_flex(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slopes: torch.Tensor, *, scale: float, causal: bool
) -> torch.Tensor | None:
    """ALiBi attention through FlexAttention, or ``None`` when it failed (warned once; the caller
    then takes the SDPA path, as every later call will)."""
    global _COMPILED, _BROKEN
    flex = _flex_module()
    if _COMPILED is None:
        _COMPILED = torch.compile(flex.flex_attention, dynamic=True)  # one compilation for every length
    try:
        return _COMPILED(
            q, k, v, score_mod=_score_mod(slopes), block_mask=_block_mask(q.shape[2], q.device) if causal else None,
            scale=scale, enable_gqa=k.shape[1] != q.shape[1],
        )
    except Exception as err:  # a device or version FlexAttention does not support: keep working
        _BROKEN = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
        warnings.warn(
            f"ALiBi: FlexAttention failed on {q.device} ({_BROKEN}); using the SDPA path (a float "
            "bias per block of queries: correct, slower on a GPU) from now on. COCATTN_ALIBI=sdpa "
            "selects it from the start.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
