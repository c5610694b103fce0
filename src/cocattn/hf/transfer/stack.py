"""The original model's residual stream over the transfer set, one layer at a time: each layer's
teacher (the original attention output) and student (the CoCA attention on the same input)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.func import functional_call
from transformers import LlamaForCausalLM
from transformers.masking_utils import create_causal_mask

from cocattn._checks import bad_value, check
from cocattn.hf.modeling import CocaLlamaForCausalLM

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask


def _check_pair(source: LlamaForCausalLM, coca: CocaLlamaForCausalLM) -> None:
    if not isinstance(source, LlamaForCausalLM) or getattr(source.config, "model_type", None) != "llama":
        kind = getattr(getattr(source, "config", None), "model_type", None) or type(source).__name__
        raise bad_value("source", kind, "a LlamaForCausalLM (model_type 'llama'), the model CoCA was converted from")
    if not isinstance(coca, CocaLlamaForCausalLM):
        raise bad_value("coca", type(coca).__name__, "a CocaLlamaForCausalLM (cocattn.hf.convert_llama)")
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim"):
        a, b = getattr(source.config, key), getattr(coca.config, key)
        check(a == b, f"coca.config.{key}", b, f"{a}, as in the source model")


class _Stack:
    """The original model's residual stream over the transfer set, advanced one layer at a time."""

    def __init__(self, source: LlamaForCausalLM, coca: CocaLlamaForCausalLM, input_ids: torch.Tensor, chunk: int):
        self.source, self.coca, self.chunk = source, coca, chunk
        device = source.model.embed_tokens.weight.device
        self.input_ids = input_ids.to(device)
        n, length = self.input_ids.shape
        self.positions = torch.arange(length, device=device).unsqueeze(0)
        with torch.no_grad():
            self.hidden = torch.cat(
                [source.model.embed_tokens(self.input_ids[i : i + chunk]) for i in range(0, n, chunk)]
            )
            self.llama_rot = source.model.rotary_emb(self.hidden[:1], self.positions)
            self.coca_rot = coca.model.rotary_emb(self.positions, self.positions, torch.float32)
        self.layer = 0

    def mask(self, model: LlamaForCausalLM | CocaLlamaForCausalLM, x: torch.Tensor) -> torch.Tensor | BlockMask | None:
        return create_causal_mask(
            config=model.config, inputs_embeds=x, attention_mask=None, cache=None, position_ids=self.positions
        )

    def teacher(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(normalised input, original attention output)`` of the current layer, no grad."""
        layer = self.source.model.layers[self.layer]
        xs, ys = [], []
        with torch.no_grad():
            for i in range(0, self.hidden.shape[0], self.chunk):
                x = layer.input_layernorm(self.hidden[i : i + self.chunk])
                y, _ = layer.self_attn(x, position_embeddings=self.llama_rot, attention_mask=self.mask(self.source, x))
                xs.append(x)
                ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def student(self, attn: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out, _ = functional_call(
            attn, params, (x,), {"position_embeddings": self.coca_rot, "attention_mask": self.mask(self.coca, x)}
        )
        return out

    def advance(self) -> None:
        layer = self.source.model.layers[self.layer]
        with torch.no_grad():
            for i in range(0, self.hidden.shape[0], self.chunk):
                h = self.hidden[i : i + self.chunk]
                self.hidden[i : i + self.chunk] = layer(
                    h,
                    attention_mask=self.mask(self.source, h),
                    position_ids=self.positions,
                    position_embeddings=self.llama_rot,
                )
        self.layer += 1


def _relative_error(
    stack: _Stack,
    attn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: dict[str, torch.Tensor] | None = None,
) -> float:
    """``sum (student - teacher)^2 / sum teacher^2`` over the whole transfer set."""
    params = params if params is not None else {}
    err = ref = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], stack.chunk):
            out = stack.student(attn, params, x[i : i + stack.chunk])
            err += float((out - y[i : i + stack.chunk]).double().pow(2).sum())
            ref += float(y[i : i + stack.chunk].double().pow(2).sum())
    return err / max(ref, 1e-30)
