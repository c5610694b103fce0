"""``CocaLlamaModel`` / ``CocaLlamaForCausalLM``: transformers' LLaMA with CoCA attention.

LLaMA's own parts (norms, MLP, decoder layer, head, masks, ``generate``) around an attention whose
``k_proj`` is CoCA's ``t_proj``; the KV cache holds the un-rotated tied τ, rotated at use with the
RoPE of the current length. docs/HF.md, "The model", gives the cache, position and RoPE rules."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, cast

import torch
from torch import nn
from transformers import GenerationMixin
from transformers import initialization as hf_init
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs
from transformers.models.llama.modeling_llama import (
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaMLP,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    eager_attention_forward,
)

from cocattn._checks import bad_value
from cocattn.attention.coca import coca_feature_maps, given_tables, tie_t
from cocattn.attention.coca_options import score_scale_parameter, scale_queries, t_lr_multipliers
from cocattn.hf.config import CocaLlamaConfig
from cocattn.rope import RopeParameters, inv_freq_and_scaling, rope_cos_sin, rope_parameters

__all__ = [
    "CocaRotaryEmbedding",
    "CocaLlamaAttention",
    "CocaLlamaDecoderLayer",
    "CocaLlamaModel",
    "CocaLlamaForCausalLM",
    "coca_rope_parameters",
]


def coca_rope_parameters(config: CocaLlamaConfig) -> RopeParameters:
    """The config's ``rope_parameters`` as cocattn :class:`~cocattn.rope.RopeParameters`.

    As in transformers, the training length L0 of ``dynamic`` (and the other types that use one)
    defaults to ``max_position_embeddings``; fields cocattn does not model are rejected.
    """
    params = dict(config.rope_parameters or {"rope_type": "default", "rope_theta": 10000.0})
    partial = params.pop("partial_rotary_factor", 1.0)
    if partial not in (None, 1.0):
        raise bad_value("rope_parameters.partial_rotary_factor", partial, "1.0 (CoCA rotates every dim)")
    return rope_parameters(params).with_training_length(config.max_position_embeddings)


class CocaRotary(NamedTuple):
    """cos/sin tables (float32, ``[B or 1, 1, N, d]``) for the queries and for all keys."""

    q_cos: torch.Tensor
    q_sin: torch.Tensor
    k_cos: torch.Tensor
    k_sin: torch.Tensor


class CocaRotaryEmbedding(nn.Module):
    """RoPE tables for CoCA from ``config.rope_parameters``, for the current length.

    Unlike LLaMA's rotary module it keeps no state between calls: the tables (queries and every
    key, cached ones included) are computed for the current length ``max position + 1`` of each
    batch row, so a length-dependent scaling (dynamic NTK) rotates every cached τ with the base of
    the current length, and a left-padded row gets the base it would get alone. Rebuild it
    (``type(m)(config)``) after changing ``config.rope_parameters``.
    """

    inv_freq: torch.Tensor

    def __init__(self, config: CocaLlamaConfig):
        super().__init__()
        self.head_dim = cast(int, config.head_dim)  # LlamaConfig.__post_init__ sets it
        self.rope = coca_rope_parameters(config)
        with torch.device("cpu"):  # not meta under from_pretrained: the LRU of rope.py would keep a meta tensor
            inv_freq, _ = inv_freq_and_scaling(self.rope, self.head_dim, None)
        # base frequencies, informative and to follow the model's device; never used stale
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(
        self, query_positions: torch.Tensor, key_positions: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> CocaRotary:
        """Tables for ``query_positions [B|1, N]`` and ``key_positions [B|1, S]``."""
        lengths = torch.maximum(query_positions.amax(-1), key_positions.amax(-1)) + 1  # per row
        tables: dict[int, tuple[torch.Tensor, float]] = {}
        for length in lengths.unique().tolist():
            tables[length] = inv_freq_and_scaling(self.rope, self.head_dim, int(length))
        if len(tables) == 1:  # one length for the batch: one broadcast table
            inv_freq, scaling = next(iter(tables.values()))
            q_cos, q_sin = rope_cos_sin(query_positions, inv_freq, scaling, dtype)
            k_cos, k_sin = rope_cos_sin(key_positions, inv_freq, scaling, dtype)
        else:
            rows = lengths.shape[0]
            qp = query_positions.expand(rows, -1)
            kp = key_positions.expand(rows, -1)
            parts = [
                (
                    *rope_cos_sin(qp[i], *tables[int(lengths[i])], dtype),
                    *rope_cos_sin(kp[i], *tables[int(lengths[i])], dtype),
                )
                for i in range(rows)
            ]
            q_cos, q_sin, k_cos, k_sin = (torch.stack([p[j] for p in parts]) for j in range(4))
        return CocaRotary(q_cos.unsqueeze(1), q_sin.unsqueeze(1), k_cos.unsqueeze(1), k_sin.unsqueeze(1))


class CocaLlamaAttention(nn.Module):
    """LLaMA attention with ``k_proj`` replaced by CoCA's ``t_proj``."""

    def __init__(self, config: CocaLlamaConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = cast(int, config.head_dim)  # LlamaConfig.__post_init__ sets it and num_key_value_heads
        kv_heads = cast(int, config.num_key_value_heads)
        self.num_key_value_groups = config.num_attention_heads // kv_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        self.variant = config.coca_variant
        self.coca = config.coca_options
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=bias)
        t_bias = bias or self.coca.t_bias is not None
        self.t_proj = nn.Linear(config.hidden_size, kv_heads * self.head_dim, bias=t_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(config.num_attention_heads * self.head_dim, config.hidden_size, bias=bias)
        self.score_log_scale = score_scale_parameter(self.coca, config.num_attention_heads)

    def lr_multipliers(self) -> dict[str, float]:
        """``coca_t_lr_mult`` on the T projection (read by :func:`cocattn.train.schedule.param_groups`)."""
        return t_lr_multipliers(self.coca, self.t_proj)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: CocaRotary,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        q = scale_queries(self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2), self.score_log_scale)
        t = self.t_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        v = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        raw = cache is None and self.coca.tau == "relu"  # the fused op ties with relu only
        keys = t if raw else tie_t(t, self.coca.tau)  # raw: tied inside the feature op as in cocattn's GPT
        if cache is not None:  # the cache keeps the un-rotated tied τ [B, Hkv, N, d/2]
            keys, v = cache.update(keys, v, self.layer_idx)
        rot = position_embeddings
        if keys.shape[2] != rot.k_cos.shape[-2]:
            raise bad_value(
                "cache",
                f"{type(cache).__name__} holding {keys.shape[2]} key slots for {rot.k_cos.shape[-2]} positions",
                "a DynamicCache (CoCA keeps un-rotated τ; preallocated caches such as StaticCache are not supported)",
            )
        q_feat, k_feat, scaling = coca_feature_maps(  # the same autograd op as the native model
            q, keys, given_tables(*rot), variant=self.variant, raw=raw, scale=self.scaling
        )

        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            q_feat,
            k_feat,
            v,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


class CocaLlamaDecoderLayer(LlamaDecoderLayer):
    """LLaMA's decoder layer (same forward) around :class:`CocaLlamaAttention`."""

    def __init__(self, config: CocaLlamaConfig, layer_idx: int):
        nn.Module.__init__(self)
        self.hidden_size = config.hidden_size
        # LLaMA's forward calls it as it calls LlamaAttention (same arguments), which it does not subclass
        self.self_attn = CocaLlamaAttention(config=config, layer_idx=layer_idx)  # type: ignore[assignment]
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class CocaLlamaPreTrainedModel(LlamaPreTrainedModel):
    """Weight initialisation and loading as LLaMA's; sdpa and eager attention."""

    config: CocaLlamaConfig
    config_class = CocaLlamaConfig
    _no_split_modules = ["CocaLlamaDecoderLayer"]
    _supports_flash_attn = False
    _supports_flex_attn = False
    _can_compile_fullgraph = False  # dynamic RoPE scaling depends on the current length
    _supports_attention_backend = False
    _can_record_outputs = {"hidden_states": CocaLlamaDecoderLayer, "attentions": CocaLlamaAttention}

    def _init_weights(self, module: nn.Module) -> None:
        """LLaMA's initialisation, and the RoPE base frequencies of :class:`CocaRotaryEmbedding`:
        ``from_pretrained`` builds the model on the meta device and materialises this
        non-persistent buffer uninitialised, so it is refilled here from the config."""
        super()._init_weights(module)
        if isinstance(module, CocaLlamaAttention):
            _init_coca_attention(module)
        if isinstance(module, CocaRotaryEmbedding):
            inv_freq, _ = inv_freq_and_scaling(module.rope, module.head_dim, None)
            hf_init.copy_(module.inv_freq, inv_freq.float())


def _init_coca_attention(module: "CocaLlamaAttention") -> None:
    """The CoCA init options of a fresh attention (``coca_t_init_std``, ``coca_q_init_std``,
    ``coca_t_bias``, ``coca_score_scale``); LLaMA's initialisation otherwise."""
    options = module.coca
    for proj, proj_std in ((module.t_proj, options.t_init_std), (module.q_proj, options.q_init_std)):
        if proj_std is not None:
            hf_init.normal_(proj.weight, mean=0.0, std=proj_std)
    if options.t_bias is not None:
        hf_init.constant_(module.t_proj.bias, options.t_bias)
    if module.score_log_scale is not None:
        # a score_log_scale parameter exists only when score_scale is set
        hf_init.constant_(module.score_log_scale, math.log(cast(float, options.score_scale)))


def _key_positions(
    attention_mask: torch.Tensor | None, position_ids: torch.Tensor, past: int, batch: int
) -> torch.Tensor:
    """Positions of every key (cached ones, then the new tokens), ``[B or 1, past + N]``."""
    if past == 0:
        return position_ids
    device = position_ids.device
    if (
        attention_mask is not None
        and attention_mask.dim() == 2
        and attention_mask.shape[-1] == past + position_ids.shape[-1]
    ):
        mask = attention_mask[:, :past].long()
        cached = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    else:
        cached = torch.arange(past, device=device).unsqueeze(0)
    rows = max(cached.shape[0], position_ids.shape[0])
    return torch.cat([cached.expand(rows, -1), position_ids.expand(rows, -1)], dim=-1)


class CocaLlamaModel(CocaLlamaPreTrainedModel):
    """The decoder stack (embeddings, CoCA decoder layers, final norm)."""

    def __init__(self, config: CocaLlamaConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [CocaLlamaDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = CocaRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def set_rope_parameters(self, rope_parameters: dict | None) -> None:
        """Use these RoPE parameters from now on (inference-time scaling such as
        ``{"rope_type": "dynamic", "factor": 4.0}``); ``rope_theta`` defaults to the current one,
        ``original_max_position_embeddings`` to ``max_position_embeddings``. ``None`` restores the
        plain RoPE of the current base."""
        theta = (self.config.rope_parameters or {}).get("rope_theta", 10000.0)
        new = {"rope_type": "default", "rope_theta": theta, **(dict(rope_parameters) if rope_parameters else {})}
        old = self.config.rope_parameters
        self.config.rope_parameters = new
        try:
            rotary = CocaRotaryEmbedding(self.config)
        except ValueError:
            self.config.rope_parameters = old
            raise
        self.rotary_emb = rotary.to(self.embed_tokens.weight.device)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        """As :meth:`transformers.LlamaModel.forward`."""
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        n = inputs_embeds.shape[1]
        if position_ids is None:
            position_ids = torch.arange(past, past + n, device=inputs_embeds.device).unsqueeze(0)
        key_positions = _key_positions(attention_mask, position_ids, past, inputs_embeds.shape[0])

        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        dtype = torch.float64 if inputs_embeds.dtype == torch.float64 else torch.float32
        rotary = self.rotary_emb(position_ids, key_positions, dtype)
        hidden_states = inputs_embeds
        for decoder_layer in self.layers[: self.config.num_hidden_layers]:
            hidden_states = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=rotary,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache)


class CocaLlamaForCausalLM(CocaLlamaPreTrainedModel, LlamaForCausalLM, GenerationMixin):
    """Causal LM with CoCA attention; forward, loss and ``generate`` are LLaMA's."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: CocaLlamaConfig):
        CocaLlamaPreTrainedModel.__init__(self, config)
        self.model = CocaLlamaModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def set_rope_parameters(self, rope_parameters: dict | None) -> None:
        """See :meth:`CocaLlamaModel.set_rope_parameters`."""
        self.model.set_rope_parameters(rope_parameters)
