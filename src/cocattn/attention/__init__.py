"""Attention kinds: CoCA (Slack and Strict), RoPE, ALiBi, NoPE.

* :mod:`.functional` — the kinds as functions shaped like ``F.scaled_dot_product_attention``
  (the public API, gathered from :mod:`.coca`, whose docstring holds the paper's equations,
  :mod:`.baselines` and :mod:`.sdpa`);
* :mod:`.kinds` — the registry of kinds and their properties;
* :mod:`.backends` — backend choice (Triton feature maps, FlexAttention) and every cache;
* :mod:`.reference` — slow implementations straight from the definitions (ground truth);
* :mod:`.module` — the :class:`Attention` module with projections and KV cache;
* :mod:`.cache` — the KV cache (un-rotated keys; tied T for CoCA);
* :mod:`.triton_features` — CoCA's feature maps as fused Triton kernels (opt-in,
  :func:`set_feature_backend` or :func:`use_backends`);
* :mod:`.alibi_flex` — ALiBi on FlexAttention (default on CUDA, :func:`set_alibi_backend`).
"""

from cocattn.attention.backends import clear_caches, set_alibi_backend, use_backends
from cocattn.attention.cache import KVCache, LayerCache
from cocattn.attention.functional import (
    KINDS,
    VARIANTS,
    alibi_attention,
    alibi_slopes,
    coca_attention,
    coca_attention_tied,
    coca_features,
    nope_attention,
    rope_attention,
    set_feature_backend,
    tie_t,
)
from cocattn.attention.kinds import Kind, get_kind
from cocattn.attention.module import Attention

__all__ = [
    "KINDS",
    "VARIANTS",
    "Attention",
    "Kind",
    "use_backends",
    "clear_caches",
    "get_kind",
    "KVCache",
    "LayerCache",
    "alibi_attention",
    "alibi_slopes",
    "coca_attention",
    "coca_attention_tied",
    "coca_features",
    "nope_attention",
    "rope_attention",
    "set_alibi_backend",
    "set_feature_backend",
    "tie_t",
]
