"""The :class:`~cocattn.evaluate.protocol.LanguageModel` adapter for Hugging Face causal LMs.
transformers caches rotated keys, so a length-dependent scaling (dynamic NTK, longrope) decodes
without a cache (exact, slower: ``generation_mode``), and the stateful dynamic RoPE module is reset
before every forward pass (docs/EVAL.md). transformers is imported only inside :func:`load_hf`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, cast

import torch

from cocattn._checks import bad_value, check
from cocattn.attention.kinds import coca_kind
from cocattn.evaluate.protocol import LanguageModel
from cocattn.rope import is_length_dependent

__all__ = ["HFLanguageModel", "load_hf"]


class HFLanguageModel(LanguageModel):
    """A transformers causal LM (LLaMA-style rotary embedding at ``model.model.rotary_emb``)."""

    kind = "hf"
    module: Any
    """A transformers ``PreTrainedModel``: its submodules and config fields depend on the architecture."""
    config: Any

    def __init__(self, model: torch.nn.Module, tokenizer: Any, name: str = "hf", training_length: int | None = None):
        self.module = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config
        self.base_rope = dict(
            getattr(self.config, "rope_parameters", None) or {"rope_type": "default", "rope_theta": 10000.0}
        )
        if getattr(self.config, "model_type", None) == "coca_llama":
            self.attention = coca_kind(getattr(self.config, "coca_variant", "slack"))
        else:
            self.attention = "rope" if self._rotary() is not None else str(getattr(self.config, "model_type", "hf"))
        l0 = (
            training_length
            or self.base_rope.get("original_max_position_embeddings")
            or self.config.max_position_embeddings
        )
        self.training_length = int(l0)
        self.scaling = None

    def _rotary(self) -> torch.nn.Module | None:
        inner = getattr(self.module, "model", self.module)
        return getattr(inner, "rotary_emb", None)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def begin_ids(self) -> list[int]:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        if bos is None:
            return []
        adds = self.tokenizer.encode("a", add_special_tokens=True)  # does the tokenizer prepend BOS?
        return [int(bos)] if adds and adds[0] == bos else []

    @property
    def eos_id(self) -> int | None:
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return None if eos is None else int(eos)

    def _reset_rotary(self) -> None:
        rotary = self._rotary()
        if rotary is not None and hasattr(rotary, "original_inv_freq") and hasattr(rotary, "max_seq_len_cached"):
            rotary.inv_freq = cast(torch.Tensor, rotary.original_inv_freq).clone()  # a buffer: Module types it loosely
            rotary.max_seq_len_cached = rotary.original_max_seq_len

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, start: int | None = None) -> torch.Tensor:
        self._reset_rotary()
        out = self.module(input_ids=ids.to(self.device), use_cache=False)
        return (out.logits if start is None else out.logits[:, start:]).float()

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        self._reset_rotary()
        if hasattr(self.module, "set_attn_implementation"):
            self.module.set_attn_implementation("eager")  # only eager returns probabilities
        out = self.module(input_ids=ids.to(self.device), use_cache=False, output_attentions=True)
        return [a.float() for a in out.attentions]

    @torch.no_grad()
    def query_key_states(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        check(self.attention == "rope", "model", self.name, "a model with a rotary embedding")
        c = self.config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        layers = getattr(self.module, "model", self.module).layers
        states: list[list[torch.Tensor]] = [[] for _ in layers]

        def grab(i: int) -> Callable[[torch.nn.Module, Any, torch.Tensor], None]:
            def hook(module: torch.nn.Module, args: Any, output: torch.Tensor) -> None:
                b, t, _ = output.shape
                states[i].append(output.float().view(b, t, -1, head_dim).transpose(1, 2))

            return hook

        handles = []
        for i, layer in enumerate(layers):
            handles.append(layer.self_attn.q_proj.register_forward_hook(grab(i)))
            handles.append(layer.self_attn.k_proj.register_forward_hook(grab(i)))
        try:
            self.logits(ids)
        finally:
            for h in handles:
                h.remove()
        return [(q, k) for q, k in states]

    def cache_is_exact(self) -> bool:
        return not (self.scaling and is_length_dependent(self.scaling))

    @torch.no_grad()
    def _generate_cached(
        self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool
    ) -> tuple[list[int], list[torch.Tensor]]:
        self._reset_rotary()
        out: list[int] = []
        steps: list[torch.Tensor] = []
        past = None
        step_in = idx
        for _ in range(max_new_tokens):
            result = self.module(input_ids=step_in, cache=past, use_cache=True)
            past = result.cache
            last = result.logits[0, -1].float()
            token = int(last.argmax())
            out.append(token)
            steps.append(last)
            if stop_at_eos and token == self.eos_id:
                break
            step_in = idx.new_tensor([[token]])
        return out, steps

    def _apply_scaling(self, params: dict[str, Any] | None) -> None:
        rotary = self._rotary()
        if rotary is None:
            if params:
                raise bad_value("rope", params, "no RoPE scaling: this model has no rotary embedding")
            return
        merged = dict(self.base_rope)
        if params:
            merged = {"rope_theta": self.base_rope.get("rope_theta", 10000.0), **params}
            if merged["rope_type"] == "ntk":  # static NTK-aware: a base change transformers has no name for
                dim = (
                    getattr(self.config, "head_dim", None) or self.config.hidden_size // self.config.num_attention_heads
                )
                merged = {
                    "rope_type": "default",
                    "rope_theta": merged["rope_theta"] * merged["factor"] ** (dim / (dim - 2)),
                }
            elif merged["rope_type"] != "linear":
                merged.setdefault("original_max_position_embeddings", self.training_length)
        self.config.rope_parameters = merged
        device = next(rotary.buffers()).device
        new = type(rotary)(config=self.config).to(device)
        inner = getattr(self.module, "model", self.module)
        inner.rotary_emb = new
        self.scaling = params

    def _config_sizes(self) -> dict[str, int]:
        c = self.config
        return {
            "vocab": int(c.vocab_size),
            "hidden": int(c.hidden_size),
            "layers": int(c.num_hidden_layers),
            "heads": int(c.num_attention_heads),
            "ffn": int(getattr(c, "intermediate_size", 4 * c.hidden_size)),
        }


def load_hf(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    name: str = "hf",
    training_length: int | None = None,
) -> HFLanguageModel:
    """A Hugging Face causal-LM directory (safetensors weights, no custom code) as an
    :class:`HFLanguageModel`; ``dtype`` converts the weights (float32 unless given)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    from cocattn.files import refuse_pickles
    from cocattn.hf.load import refuse_remote_code

    path = Path(path)
    refuse_pickles(path)
    refuse_remote_code(path)
    import cocattn.hf  # noqa: F401  registers the coca_llama model type with the Auto classes

    from cocattn.hf.load import from_pretrained_checked

    model = from_pretrained_checked(
        AutoModelForCausalLM,
        path,
        name="checkpoint",
        dtype=dtype or torch.float32,
        expected="a loadable Hugging Face causal-LM directory with safetensors weights",
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError):
        if not (path / "tokenizer.json").is_file():
            raise bad_value("checkpoint", str(path), "a Hugging Face model directory with a tokenizer") from None
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
    return HFLanguageModel(model.to(device), tokenizer, name=name, training_length=training_length)
