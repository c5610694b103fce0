"""Attention kinds as functions shaped like ``F.scaled_dot_product_attention``: the public API.

The key fact (docs/ARCHITECTURE.md): both CoCA variants are ordinary dot-product attention on
per-token feature maps, so one fused SDPA call runs them and no N×N tensor is ever built.

Where each part lives:

* :mod:`.kinds` — the kinds and their properties (rotary, CoCA variant, bias, positional-free);
* :mod:`.coca` — CoCA: the tie, the feature maps as one autograd op, the paper's equations;
* :mod:`.baselines` — RoPE, ALiBi, NoPE;
* :mod:`.sdpa` — input checks, positions and tables, masks, the SDPA call, the float16 guard;
* :mod:`.backends` — the Triton and FlexAttention backends and every cache (``clear_caches``).

This module gathers their public names, so ``from cocattn.attention.functional import …`` keeps
working for everything it has exported.
"""

from __future__ import annotations

from cocattn.attention.backends import FEATURE_BACKENDS, clear_caches, set_feature_backend
from cocattn.attention.baselines import (
    ALIBI_BLOCK_ELEMENTS,
    alibi_attention,
    alibi_slopes,
    nope_attention,
    rope_attention,
)
from cocattn.attention.coca import coca_attention, coca_attention_tied, coca_feature_maps, coca_features, tie_t
from cocattn.attention.kinds import KINDS, VARIANTS
from cocattn.attention.sdpa import RopeLike, default_positions, dot_product_attention, fit_fp16

__all__ = [
    "KINDS",
    "VARIANTS",
    "tie_t",
    "coca_features",
    "coca_feature_maps",
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
    "clear_caches",
    "FEATURE_BACKENDS",
    "ALIBI_BLOCK_ELEMENTS",
    "RopeLike",
]
