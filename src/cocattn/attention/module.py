"""The attention module: projections, KV cache and the choice of kind. The math is in
:mod:`cocattn.attention.functional` (and the kinds' properties in :mod:`.kinds`); this file only wires it."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from cocattn._checks import check
from cocattn.attention import functional as AF
from cocattn.attention import kinds
from cocattn.attention.cache import LayerCache
from cocattn.attention.coca_options import CocaOptions, score_scale_parameter, scale_queries, t_lr_multipliers
from cocattn.attention.sdpa import Attended, AttentionOptions
from cocattn.rope import RopeParameters, rope_parameters

__all__ = ["Attention"]


class Attention(nn.Module):
    """Multi-head attention of one of :data:`~cocattn.attention.kinds.KINDS`, with GQA.

    Projections: ``q_proj``, ``k_proj`` (``t_proj`` for CoCA: the T projection that replaces the
    key), ``v_proj``, ``o_proj``. ``rope`` is the :class:`~cocattn.rope.RopeParameters` in force
    (change it for inference-time scaling); ``training_length`` fills
    ``original_max_position_embeddings`` where a scaling needs it. ``coca``: CoCA's training
    options (:class:`~cocattn.attention.coca_options.CocaOptions`; ignored by other kinds), which
    may add ``t_proj.bias`` and ``score_log_scale [n_head]``.
    """

    def __init__(
        self,
        dim: int,
        n_head: int,
        n_kv_head: int | None = None,
        kind: str = "coca",
        rope: RopeParameters | Mapping[str, Any] | None = None,
        training_length: int = 512,
        bias: bool = False,
        head_dim: int | None = None,
        coca: CocaOptions | None = None,
    ) -> None:
        super().__init__()
        kinds.get_kind(kind)  # unknown kinds: a ValueError naming "attention"
        n_kv_head = n_head if n_kv_head is None else n_kv_head
        check(
            n_head > 0 and n_kv_head > 0 and n_head % n_kv_head == 0,
            "n_kv_head",
            n_kv_head,
            f"a positive divisor of n_head={n_head}",
        )
        head_dim = dim // n_head if head_dim is None else head_dim
        check(head_dim > 0 and head_dim % 2 == 0, "head_dim", head_dim, "a positive even number (n_embd / n_head)")
        self.kind, self.n_head, self.n_kv_head, self.head_dim = kind, n_head, n_kv_head, head_dim
        self.training_length = int(training_length)
        self.rope = rope_parameters(rope).with_training_length(self.training_length)
        self.coca = (coca or CocaOptions()) if self.is_coca else CocaOptions()
        self.q_proj = nn.Linear(dim, n_head * head_dim, bias=bias)
        key = nn.Linear(dim, n_kv_head * head_dim, bias=bias or self.coca.t_bias is not None)
        if self.is_coca:
            self.t_proj = key
        else:
            self.k_proj = key
        self.score_log_scale = score_scale_parameter(self.coca, n_head)
        self.v_proj = nn.Linear(dim, n_kv_head * head_dim, bias=bias)
        self.o_proj = nn.Linear(n_head * head_dim, dim, bias=bias)

    @property
    def is_coca(self) -> bool:
        return kinds.is_coca(self.kind)

    @property
    def variant(self) -> str:
        return kinds.coca_variant(self.kind) or "slack"

    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multipliers of this module's own parameters (by name; read by
        :func:`cocattn.train.schedule.param_groups`)."""
        return t_lr_multipliers(self.coca, self.t_proj) if self.is_coca else {}

    def set_rope(self, rope: RopeParameters | Mapping[str, Any] | None) -> None:
        """Use these RoPE parameters from now on (inference-time scaling)."""
        self.rope = rope_parameters(rope).with_training_length(self.training_length)

    def project(self, x: torch.Tensor, tie: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q [B, H, T, d]``, key state (un-rotated ``k``, or tied ``τ [B, Hkv, T, d/2]`` for CoCA;
        the raw ``t [B, Hkv, T, d]`` with ``tie=False``) and ``v``: what the cache stores."""
        b, t, _ = x.shape
        q = scale_queries(self.q_proj(x).view(b, t, self.n_head, self.head_dim).transpose(1, 2), self.score_log_scale)
        key_layer = self.t_proj if self.is_coca else self.k_proj
        k = key_layer(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.is_coca and (tie or self.coca.tau != "relu"):  # the fused raw tie is relu's
            k = AF.tie_t(k, self.coca.tau)
        return q, k, v

    def attend(
        self,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        positions: torch.Tensor | None,
        key_positions: torch.Tensor | None,
        need_weights: bool = False,
    ) -> Attended:
        """Attention output ``[B, H, T, d]`` (and probabilities with ``need_weights``). ``keys``: un-rotated
        ``k``, tied ``τ``, or for CoCA without a cache the raw ``t`` (tied inside the fused function)."""
        if self.is_coca and keys.shape[-1] == q.shape[-1]:  # raw t (no cache): tied inside the fused function
            return AF.coca_attention(
                q, keys, values, variant=self.variant, rope=self.rope, positions=positions, need_weights=need_weights
            )
        options: AttentionOptions = {
            "positions": positions,
            "key_positions": key_positions,
            "rope": self.rope,  # ALiBi and NoPE ignore it
            "causal": True,
            "need_weights": need_weights,
        }
        if self.is_coca:
            return AF.coca_attention_tied(q, keys, values, variant=self.variant, **options)
        if self.kind == "rope":
            return AF.rope_attention(q, keys, values, **options)
        if self.kind == "alibi":
            return AF.alibi_attention(q, keys, values, **options)
        if self.kind == "nope":
            return AF.nope_attention(q, keys, values, **options)
        raise NotImplementedError(
            f"attention kind {self.kind!r} is registered but Attention.attend has no branch for it"
        )

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: LayerCache | None = None,
        positions: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> Attended:
        """``x [B, T, dim]`` → ``[B, T, dim]`` (and ``[B, H, T, S]`` probabilities with
        ``need_weights``). With a cache, new entries are appended and attention covers all of it."""
        b, t, _ = x.shape
        q, k, v = self.project(x, tie=cache is not None)
        if cache is not None:
            k, v = cache.append(k, v)
        if positions is None:
            # The default layout (queries at S − T … S − 1 after the cached keys 0 … S − 1): left to
            # the functions, which then know it on the host (no device sync, no graph break).
            key_positions = None
        else:
            key_positions = AF.default_positions(k.shape[2], x.device) if cache is not None else positions
        res = self.attend(q, k, v, positions, key_positions, need_weights)
        out, probs = res if isinstance(res, tuple) else (res, None)
        y = self.o_proj(out.transpose(1, 2).reshape(b, t, self.n_head * self.head_dim))
        return y if probs is None else (y, probs)
