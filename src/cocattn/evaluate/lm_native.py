"""The :class:`~cocattn.evaluate.protocol.LanguageModel` adapter for cocattn checkpoints. The KV
cache keeps un-rotated keys, so cached generation is exact under every scaling, dynamic NTK
included. Nothing here imports transformers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Sequence, cast

import torch

from cocattn._checks import bad_value, check
from cocattn.attention.kinds import is_rope_free
from cocattn.checkpoint import load_model
from cocattn.evaluate.protocol import LanguageModel
from cocattn.model import GPT, Block
from cocattn.rope import rope_parameters

__all__ = ["CocattnLanguageModel", "load_native"]


class CocattnLanguageModel(LanguageModel):
    """A :class:`cocattn.model.GPT` with its ``tokenizers.Tokenizer``."""

    kind = "cocattn"
    module: GPT

    def __init__(self, model: GPT, tokenizer: Any, name: str = "cocattn"):
        self.module = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.config = model.config
        self.attention = str(getattr(self.config, "attention", "rope"))
        self.training_length = int(self.config.max_seq_len)
        self.base_rope = dict(getattr(self.config, "rope_parameters", None) or {"rope_type": "default"})
        self.scaling = None
        self.autocast: torch.dtype | None = None  # e.g. torch.bfloat16: forward passes under autocast

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @property
    def eos_id(self) -> int | None:
        for name in ("<|endoftext|>", "</s>", "<eos>"):
            token = self.tokenizer.token_to_id(name)
            if token is not None:
                return int(token)
        return None

    @torch.no_grad()
    def logits(self, ids: torch.Tensor, start: int | None = None) -> torch.Tensor:
        with self._autocast():
            logits, _ = self.module(ids.to(self.device), logits_from=start)
        return logits.float()

    def generate_greedy_batch(
        self, rows: Sequence[Sequence[int]], max_new_tokens: int, *, stop_at_eos: bool = True
    ) -> list[list[int]]:
        if len(rows) <= 1 or not self.cache_is_exact():
            return super().generate_greedy_batch(rows, max_new_tokens, stop_at_eos=stop_at_eos)
        check(len({len(r) for r in rows}) == 1, "rows", sorted({len(r) for r in rows}), "prompts of one length")
        check(
            isinstance(max_new_tokens, int) and max_new_tokens >= 0, "max_new_tokens", max_new_tokens, "an integer >= 0"
        )
        idx = torch.tensor([list(r) for r in rows], dtype=torch.long, device=self.device)
        return self._decode(idx, max_new_tokens, stop_at_eos)[0]

    def _generate_cached(
        self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool
    ) -> tuple[list[int], list[torch.Tensor]]:
        out, steps = self._decode(idx, max_new_tokens, stop_at_eos)
        return out[0], [last[0] for last in steps]

    @torch.no_grad()
    def _decode(
        self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool
    ) -> tuple[list[list[int]], list[torch.Tensor]]:
        """Greedy decoding of the rows of ``idx [B, T]`` on one KV cache: each row's new tokens (up
        to its end-of-text), and the float32 next-token logits ``[B, V]`` of every step."""
        cache = self.module.new_cache(idx.shape[0])
        out: list[list[int]] = [[] for _ in range(idx.shape[0])]
        done = [False] * idx.shape[0]
        steps: list[torch.Tensor] = []
        step_in = idx
        for _ in range(max_new_tokens):
            with self._autocast():
                logits, _ = self.module(step_in, cache=cache, logits_from=-1)
            last = logits[:, -1].float()
            steps.append(last)
            tokens = last.argmax(-1)
            for row, token in enumerate(tokens.tolist()):
                if not done[row]:
                    out[row].append(token)
                    done[row] = stop_at_eos and token == self.eos_id
            if all(done):
                break
            step_in = tokens[:, None]
        return out, steps

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        return [p.float() for p in self.module.attention_maps(ids.to(self.device))]

    @torch.no_grad()
    def query_key_states(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        check(self.attention == "rope", "model", self.name, "a RoPE model (attention 'rope') for query/key angles")
        states: list[tuple[torch.Tensor, torch.Tensor]] = []

        def grab(module, args, kwargs):
            q, k, _ = module.project(args[0] if args else kwargs["x"])
            states.append((q.float(), k.float()))

        blocks = cast("list[Block]", list(self.module.blocks))  # a ModuleList does not keep its items' type
        handles = [b.attn.register_forward_pre_hook(grab, with_kwargs=True) for b in blocks]
        try:
            self.module(ids.to(self.device))
        finally:
            for h in handles:
                h.remove()
        return states

    def _apply_scaling(self, params: dict[str, Any] | None) -> None:
        if is_rope_free(self.attention) and params:
            raise bad_value("rope", params, f"no RoPE scaling: a {self.attention!r} model has no rotary embedding")
        if not is_rope_free(self.attention):
            merged = {"rope_theta": self.base_rope.get("rope_theta", 10000.0), **params} if params else None
            if merged is not None:  # the scaling's L0 is this adapter's training_length (--training-length)
                merged = rope_parameters(merged).with_training_length(self.training_length).to_dict()
            self.module.set_rope_parameters(merged)  # None: the trained parameters
        self.scaling = params

    def _config_sizes(self) -> dict[str, int]:
        c = self.config
        return {
            "vocab": int(c.vocab_size),
            "hidden": int(c.n_embd),
            "layers": int(c.n_layer),
            "heads": int(c.n_head),
            "ffn": int(c.n_embd * getattr(c, "mlp_ratio", 4.0)),
        }


def load_native(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    name: str = "cocattn",
    autocast: torch.dtype | None = None,
) -> CocattnLanguageModel:
    """A cocattn checkpoint directory as a :class:`CocattnLanguageModel` (``dtype`` converts the
    weights; ``autocast`` keeps them and runs every forward pass under ``torch.autocast``)."""
    model, tokenizer = load_model(path, map_location=device)
    if tokenizer is None:
        raise bad_value("checkpoint", str(path), "a cocattn checkpoint with tokenizer.json")
    if dtype is not None:
        model = model.to(dtype)
    lm = CocattnLanguageModel(model.to(device), tokenizer, name=name)
    lm.autocast = autocast
    return lm
