"""Floating-point operations of a GPT shape: what ``cocattn reproduce --plan`` counts and
``cocattn bench train`` divides its measured time by.

Operation counts (forward, per sequence of ``W`` tokens, causal):

* dense: ``2 · P · W`` with ``P`` the weights of the blocks' matrix products (embeddings excluded);
* attention: ``2 · W² · d_model`` per layer (``Q Kᵀ`` and ``P V``, half of each under the causal mask);
* output layer: ``2 · d_model · V`` per token whose logits are computed (training: all of them;
  perplexity: the scored tokens; passkey: the last one of each decoding step);
* a training step is three forwards' worth (forward + backward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ModelShape"]


@dataclass(frozen=True)
class ModelShape:
    n_layer: int
    d_model: int
    vocab_size: int
    block_matmul_params: int
    """Weights of the blocks' matrix products (attention projections and MLP)."""
    parameters: int

    @classmethod
    def from_config(cls, model_config: dict[str, Any]) -> "ModelShape":
        import torch

        from cocattn.model import GPT, GPTConfig

        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = GPT(GPTConfig.from_dict(model_config))
        matmul = sum(
            m.weight.numel()
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and name.startswith("blocks.")
        )
        return cls(
            model_config["n_layer"],
            model_config["n_embd"],
            model_config["vocab_size"],
            matmul,
            sum(p.numel() for p in model.parameters()),
        )

    def forward_flops(self, window: int, logits: int) -> float:
        """One causal forward over ``window`` tokens, ``logits`` of them through the output layer."""
        return (
            2.0 * self.block_matmul_params * window
            + 2.0 * window * window * self.d_model * self.n_layer
            + 2.0 * self.d_model * self.vocab_size * logits
        )

    def decode_flops(self, context: int) -> float:
        """One cached decoding step at ``context`` tokens."""
        return (
            2.0 * self.block_matmul_params
            + 4.0 * context * self.d_model * self.n_layer
            + 2.0 * self.d_model * self.vocab_size
        )
