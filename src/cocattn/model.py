"""A small GPT family whose attention is any cocattn kind (nanoGPT-style, pre-norm)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cocattn._checks import bad_value, check, check_choice, unknown_key
from cocattn.attention import KINDS, Attention, KVCache, LayerCache
from cocattn.attention.coca_options import CocaOptions, init_coca_projections
from cocattn.attention.kinds import is_rope_free
from cocattn.attention.sdpa import Attended
from cocattn.chunked_loss import linear_cross_entropy
from cocattn.rope import RopeParameters, rope_parameters

__all__ = ["GPTConfig", "GPT"]


@dataclass
class GPTConfig:
    """Model shape and attention. Every field can be set from YAML/JSON (see ``configs/``)."""

    vocab_size: int = 4096
    """Tokenizer vocabulary size (rows of the embedding)."""
    n_layer: int = 4
    """Transformer blocks."""
    n_head: int = 4
    """Query heads."""
    n_kv_head: int | None = None
    """Key/value heads (GQA); ``None`` means ``n_head``."""
    n_embd: int = 128
    """Hidden size; head_dim = n_embd / n_head (must be even)."""
    max_seq_len: int = 128
    """Training length L0; the default ``original_max_position_embeddings`` for RoPE scaling."""
    attention: str = "rope"
    """rope | coca | coca-strict | alibi | nope."""
    rope_parameters: dict = field(default_factory=lambda: {"rope_type": "default", "rope_theta": 10000.0})
    """RoPE settings in transformers' ``rope_parameters`` form (ignored by alibi and nope)."""
    mlp_ratio: float = 4.0
    """MLP hidden size / n_embd."""
    activation: str = "gelu"
    """gelu | relu | silu (plain two-layer MLP)."""
    norm: str = "layernorm"
    """layernorm | rmsnorm."""
    bias: bool = False
    """Biases in linear layers and norms."""
    tie_embeddings: bool = True
    """Share the input embedding with the output layer."""
    dropout: float = 0.0
    """Dropout on residual branches (training only)."""
    parallel_residual: bool = False
    """GPT-NeoX block: x + attn(ln1(x)) + mlp(ln2(x)) instead of sequential."""
    init_std: float = 0.02
    """Standard deviation of the weight initialisation."""
    coca_tau: str = "relu"
    """CoCA only: ``relu`` (paper) or ``softplus`` (deviation). See :mod:`cocattn.attention.coca_options`."""
    coca_t_init_std: float | None = None
    """CoCA only: init std of the T projection (``None``: ``init_std``). Same function class."""
    coca_q_init_std: float | None = None
    """CoCA only: init std of the Q projection (``None``: ``init_std``). Same function class."""
    coca_t_bias: float | None = None
    """CoCA only: a bias on T initialised to this value (deviation unless ``bias``)."""
    coca_score_scale: float | None = None
    """CoCA only: a learnable per-head score multiplier starting here (``None``: none). Same function class."""
    coca_t_lr_mult: float = 1.0
    """CoCA only: learning-rate multiplier of the T projection. Same function class."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "max_seq_len"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and not isinstance(value, bool) and value > 0,
                f"model.{name}",
                value,
                "a positive integer",
            )
        check_choice("model.attention", self.attention, KINDS)
        check_choice("model.activation", self.activation, ("gelu", "relu", "silu"))
        check_choice("model.norm", self.norm, ("layernorm", "rmsnorm"))
        kv = self.n_head if self.n_kv_head is None else self.n_kv_head
        check(
            isinstance(kv, int) and kv > 0 and self.n_head % kv == 0,
            "model.n_kv_head",
            self.n_kv_head,
            f"a positive divisor of n_head={self.n_head}",
        )
        check(self.n_embd % self.n_head == 0, "model.n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        check(
            (self.n_embd // self.n_head) % 2 == 0,
            "model.n_embd / model.n_head (head_dim)",
            self.n_embd // self.n_head,
            "an even number (RoPE planes and CoCA's tied T pair dims)",
        )
        check(self.mlp_ratio > 0, "model.mlp_ratio", self.mlp_ratio, "a positive number")
        check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "a number in [0, 1)")
        self.rope_parameters = rope_parameters(self.rope_parameters).to_dict()
        CocaOptions.from_prefixed(self)  # checks the coca_* fields

    @property
    def coca_options(self) -> CocaOptions:
        """The ``coca_*`` fields as :class:`~cocattn.attention.coca_options.CocaOptions`."""
        return CocaOptions.from_prefixed(self)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GPTConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in names:
                raise unknown_key("model config", key, names)
        return cls(**dict(data))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def _norm(cfg: GPTConfig) -> nn.Module:
    return nn.LayerNorm(cfg.n_embd, bias=cfg.bias) if cfg.norm == "layernorm" else RMSNorm(cfg.n_embd)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        hidden = int(cfg.mlp_ratio * cfg.n_embd)
        self.up = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.act = {"gelu": nn.GELU(), "relu": nn.ReLU(), "silu": nn.SiLU()}[cfg.activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = _norm(cfg), _norm(cfg)
        self.attn = Attention(
            cfg.n_embd,
            cfg.n_head,
            cfg.n_kv_head,
            kind=cfg.attention,
            rope=cfg.rope_parameters,
            training_length=cfg.max_seq_len,
            bias=cfg.bias,
            coca=cfg.coca_options,
        )
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.parallel = cfg.parallel_residual

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None, need_weights: bool = False) -> Attended:
        res = self.attn(self.ln1(x), cache=cache, need_weights=need_weights)
        a, probs = res if isinstance(res, tuple) else (res, None)
        if self.parallel:
            x = x + self.drop(a) + self.drop(self.mlp(self.ln2(x)))
        else:
            x = x + self.drop(a)
            x = x + self.drop(self.mlp(self.ln2(x)))
        return x if probs is None else (x, probs)


class GPT(nn.Module):
    """Decoder-only transformer. ``logits, loss = model(idx, targets)``."""

    def __init__(self, config: GPTConfig | Mapping[str, Any]) -> None:
        super().__init__()
        if isinstance(config, Mapping):
            config = GPTConfig.from_dict(config)
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = _norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("o_proj.weight") or name.endswith("down.weight"):
                nn.init.normal_(p, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layer))
        for attn in self._attention_layers():
            if attn.is_coca:
                init_coca_projections(attn.q_proj, attn.t_proj, attn.coca, config.init_std)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)

    def num_parameters(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.wte.weight.numel() if non_embedding and not self.config.tie_embeddings else n

    # -- inference-time RoPE scaling -------------------------------------------------------------

    @property
    def rope(self) -> RopeParameters:
        """The RoPE parameters in force (all layers share them)."""
        return self._attention_layers()[0].rope

    def set_rope_parameters(self, rope: RopeParameters | Mapping[str, Any] | None) -> None:
        """Use these RoPE parameters in every layer from now on (``None``: the trained ones).
        ``original_max_position_embeddings`` defaults to the training length."""
        if is_rope_free(self.config.attention) and rope is not None and rope_parameters(rope).rope_type != "default":
            raise bad_value(
                "rope", rope, f"no RoPE scaling: attention {self.config.attention!r} has no rotary embedding"
            )
        rope = self.config.rope_parameters if rope is None else rope
        for attn in self._attention_layers():
            attn.set_rope(rope)

    def _attention_layers(self) -> list[Attention]:
        """Every block's attention module, first block first."""
        return [m for m in self.modules() if isinstance(m, Attention)]

    # -- forward ---------------------------------------------------------------------------------

    def new_cache(self, batch_size: int = 1) -> KVCache:
        """An empty KV cache (un-rotated keys; tied T for CoCA)."""
        return KVCache(len(self.blocks))

    def _check_idx(self, idx: torch.Tensor) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            raise bad_value("idx", getattr(idx, "shape", type(idx).__name__), "a 2-D [batch, seq] tensor of token ids")
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise bad_value("idx.dtype", idx.dtype, "an integer dtype")

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        logits_from: int | None = None,
        return_logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Logits ``[B, T, vocab]`` and, with ``targets [B, T]``, the mean cross-entropy
        (targets of -100 are ignored). With a cache, ``idx`` continues the cached sequence.
        ``logits_from``: logits only for positions ``logits_from:`` (``-1``: the last one, what
        generation needs; a 32K-token prompt's full logits are 2 GB in float32).
        ``return_logits=False`` (with ``targets``): ``(None, loss)``, the loss computed by
        :func:`cocattn.chunked_loss.linear_cross_entropy` a chunk of positions at a time, so the
        full logits never exist (what training uses; under autocast the full logits as before)."""
        self._check_idx(idx)
        if logits_from is not None:
            check(targets is None, "targets", "given with logits_from", "targets only with every position's logits")
            check(
                isinstance(logits_from, int) and -idx.shape[1] <= logits_from < max(idx.shape[1], 1),
                "logits_from",
                logits_from,
                f"an integer position in [-{idx.shape[1]}, {idx.shape[1]})",
            )
        x = self.drop(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = block(x, cache=cache.layers[i] if cache is not None else None)
        if logits_from is not None:
            x = x[:, logits_from:]
        if targets is not None and not return_logits and self._chunked_loss_applies(x):
            h = self.ln_f(x)
            return None, linear_cross_entropy(h.reshape(-1, h.size(-1)), self.lm_head.weight, targets.reshape(-1))
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def _chunked_loss_applies(self, x: torch.Tensor) -> bool:
        """The chunked loss computes in float32: float32 hidden states and output weight, no autocast."""
        w = self.lm_head.weight
        return x.dtype == w.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type)

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities ``[B, H, T, T]`` of every layer (eager path; short inputs)."""
        self._check_idx(idx)
        x = self.wte(idx)
        maps = []
        for block in self.blocks:
            x, probs = block(x, need_weights=True)
            maps.append(probs)
        return maps

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue ``idx [B, T]`` by up to ``max_new_tokens`` tokens with the KV cache.
        ``temperature=0`` is greedy; ``top_k`` keeps the k most likely tokens. Stops early when
        every row has produced ``eos_token_id``."""
        self._check_idx(idx)
        check(
            isinstance(max_new_tokens, int) and max_new_tokens >= 0,
            "max_new_tokens",
            max_new_tokens,
            "a non-negative integer",
        )
        check(temperature >= 0, "temperature", temperature, "a number >= 0")
        check(top_k is None or (isinstance(top_k, int) and top_k > 0), "top_k", top_k, "None or a positive integer")
        cache = self.new_cache(idx.shape[0])
        logits, _ = self(idx, cache=cache, logits_from=-1)
        out = idx
        done = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
        for _ in range(max_new_tokens):
            last = logits[:, -1, :].float()
            if temperature == 0:
                nxt = last.argmax(-1, keepdim=True)
            else:
                last = last / temperature
                if top_k is not None:
                    kth = torch.topk(last, min(top_k, last.size(-1))).values[:, -1:]
                    last = last.masked_fill(last < kth, float("-inf"))
                nxt = torch.multinomial(torch.softmax(last, -1), 1, generator=generator)
            out = torch.cat([out, nxt], dim=1)
            if eos_token_id is not None:
                done |= nxt.squeeze(1) == eos_token_id
                if bool(done.all()):
                    break
            logits, _ = self(nxt, cache=cache, logits_from=-1)
        return out
