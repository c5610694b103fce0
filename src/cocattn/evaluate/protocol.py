"""The one interface every evaluator uses, :class:`LanguageModel` (text and token ids, logits,
greedy decoding, RoPE scaling, sizes), and what scoring shares. Adapters: :mod:`.lm_native`
(cocattn checkpoints) and :mod:`.lm_hf` (transformers causal LMs); :func:`cocattn.evaluate.lm.load_lm`
picks one for a model directory.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F

from cocattn._checks import check

__all__ = ["LanguageModel", "token_nll", "PREFIX_MARGIN"]

PREFIX_MARGIN = 16
"""Tokens :meth:`LanguageModel.encode_prefix` tokenises beyond those it returns (the cut's)."""
_PREFIX_CHARS_PER_TOKEN = 4


class LanguageModel:
    """The interface the evaluators use: ``encode`` / ``decode`` (no special tokens), ``begin_ids``
    (LLaMA-style BOS, ``[]`` for cocattn models), ``logits``, greedy decoding with a KV cache,
    ``rope_scaling``, ``dims``; ``training_length`` (L0), ``name``, ``kind`` (``"cocattn"`` or
    ``"hf"``), ``attention``. Subclasses fill it in."""

    name: str = "model"
    kind: str = "?"
    attention: str = "rope"
    training_length: int = 0
    training_mix: dict[str, Any] | None = None
    """The retrieval warm-up the model was trained with (``data.retrieval_fraction`` and
    ``data.retrieval_tasks``), when its directory records it; every result record repeats it."""

    # --- text ---------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``."""
        raise NotImplementedError

    def encode_prefix(self, text: str, max_tokens: int) -> list[int]:
        """``begin_ids`` and the first token ids of ``text``, ``max_tokens`` in all (fewer for a
        shorter text), without tokenising the whole text: a prefix is tokenised, doubled until it
        yields :data:`PREFIX_MARGIN` tokens more than needed (the last ones, which the cut may
        split differently, are dropped). So a document of any size costs the evaluation what
        ``max_tokens`` need (:func:`prefix_chars_bound` characters), not the document's size."""
        chars = _PREFIX_CHARS_PER_TOKEN * (max_tokens + PREFIX_MARGIN) + 64
        while True:
            if chars >= len(text):
                return (self.begin_ids + self.encode(text))[:max_tokens]
            ids = self.begin_ids + self.encode(text[:chars])
            if len(ids) >= max_tokens + PREFIX_MARGIN:
                return ids[:max_tokens]
            chars *= 2

    @property
    def begin_ids(self) -> list[int]:
        """Tokens every sequence starts with (BOS for LLaMA-style tokenizers)."""
        return []

    @property
    def eos_id(self) -> int | None:
        return None

    # --- model --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    module: torch.nn.Module

    def logits(self, ids: torch.Tensor, start: int | None = None) -> torch.Tensor:
        """``[B, T] -> [B, T, V]`` float32 logits of the whole sequence (no cache, no grad);
        with ``start``, only those of positions ``start:`` (what scoring a continuation needs)."""
        raise NotImplementedError

    def generate_greedy_batch(
        self, rows: Sequence[Sequence[int]], max_new_tokens: int, *, stop_at_eos: bool = True
    ) -> list[list[int]]:
        """Greedy continuations of prompts of one length: what :meth:`generate_greedy` gives for
        each row (up to floating-point ties), batched where the model can (one decoding step
        for all rows instead of one per row)."""
        check(len({len(r) for r in rows}) <= 1, "rows", sorted({len(r) for r in rows}), "prompts of one length")
        return [self.generate_greedy(list(r), max_new_tokens, stop_at_eos=stop_at_eos) for r in rows]

    def generate_greedy(
        self, ids: list[int] | torch.Tensor, max_new_tokens: int, *, use_cache: bool = True, stop_at_eos: bool = True
    ) -> list[int]:
        """Greedy continuation of ``ids`` (new tokens only)."""
        tokens, _ = self.generate_greedy_with_logits(ids, max_new_tokens, use_cache=use_cache, stop_at_eos=stop_at_eos)
        return tokens

    def generate_greedy_with_logits(
        self, ids: list[int] | torch.Tensor, max_new_tokens: int, *, use_cache: bool = True, stop_at_eos: bool = True
    ) -> tuple[list[int], list[torch.Tensor]]:
        """Greedy continuation of ``ids`` (a list, ``[T]`` or ``[1, T]``).

        Returns:
            tuple[list[int], list[torch.Tensor]]: the new token ids (up to ``max_new_tokens``,
            ending at end-of-text with ``stop_at_eos``) and the float32 next-token logits ``[V]``
            of every step.
        """
        check(
            isinstance(max_new_tokens, int) and max_new_tokens >= 0, "max_new_tokens", max_new_tokens, "an integer >= 0"
        )
        idx = _as_batch(ids, self.device)
        if not use_cache or not self.cache_is_exact():
            return self._generate_no_cache(idx, max_new_tokens, stop_at_eos)
        return self._generate_cached(idx, max_new_tokens, stop_at_eos)

    @torch.no_grad()
    def _generate_no_cache(
        self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool
    ) -> tuple[list[int], list[torch.Tensor]]:
        out: list[int] = []
        steps: list[torch.Tensor] = []
        for _ in range(max_new_tokens):
            last = self.logits(idx, start=-1)[0, -1]
            token = int(last.argmax())
            out.append(token)
            steps.append(last)
            if stop_at_eos and token == self.eos_id:
                break
            idx = torch.cat([idx, idx.new_tensor([[token]])], dim=1)
        return out, steps

    def _generate_cached(
        self, idx: torch.Tensor, max_new_tokens: int, stop_at_eos: bool
    ) -> tuple[list[int], list[torch.Tensor]]:
        raise NotImplementedError

    # --- RoPE scaling -------------------------------------------------------------------------
    scaling: dict[str, Any] | None = None

    def cache_is_exact(self) -> bool:
        """Whether cached decoding equals recomputation under the current scaling."""
        return True

    @property
    def generation_mode(self) -> str:
        return "kv-cache" if self.cache_is_exact() else "no-cache recomputation (cached keys would be stale)"

    @contextlib.contextmanager
    def rope_scaling(self, params: Mapping[str, Any] | None) -> Iterator["LanguageModel"]:
        """Apply inference-time RoPE scaling (``None``: as trained) inside the ``with`` block."""
        previous = self.scaling
        self._apply_scaling(dict(params) if params else None)
        try:
            yield self
        finally:
            self._apply_scaling(previous)

    def _apply_scaling(self, params: dict[str, Any] | None) -> None:
        raise NotImplementedError

    # --- internals, for the analyses ----------------------------------------------------------
    def attention_maps(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """Attention probabilities ``[B, H, T, T]`` of every layer (eager path)."""
        raise NotImplementedError

    def query_key_states(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the un-rotated query ``[B, H, T, d]`` and key ``[B, Hkv, T, d]`` (RoPE models)."""
        raise NotImplementedError

    # --- sizes, for memory estimates ----------------------------------------------------------
    def dims(self) -> dict[str, int]:
        """The model's sizes, for memory estimates (:func:`cocattn.evaluate.memory.check_fits`).

        Returns:
            dict[str, int]: ``params``, ``vocab``, ``hidden``, ``layers``, ``heads``, ``ffn`` and
            ``bytes_per_value`` (of the weights).
        """
        sizes = self._config_sizes()
        return {
            "params": sum(p.numel() for p in self.module.parameters()),
            **sizes,
            "bytes_per_value": next(self.module.parameters()).element_size(),
        }

    def _config_sizes(self) -> dict[str, int]:
        """``vocab``, ``hidden``, ``layers``, ``heads``, ``ffn``: where the model's configuration keeps them."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What a result file records about the model."""
        out = {
            "model": self.name,
            "kind": self.kind,
            "attention": self.attention,
            "training_length": self.training_length,
        }
        if self.training_mix is not None:
            out["training_mix"] = self.training_mix
        return out


def _as_batch(ids: list[int] | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        idx = ids if ids.dim() == 2 else ids.view(1, -1)
    else:
        idx = torch.tensor([list(ids)], dtype=torch.long)
    check(idx.shape[0] == 1 and idx.shape[1] > 0, "ids", tuple(idx.shape), "one non-empty sequence ([1, T])")
    return idx.to(device=device, dtype=torch.long)


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token negative log-likelihood (float32) of ``targets [T]`` under ``logits [T, V]``."""
    return F.cross_entropy(logits.float(), targets.to(logits.device), reduction="none")
