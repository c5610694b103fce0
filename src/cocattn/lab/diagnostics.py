"""What a lab model's attention looks like while it learns: the measurements that tell CoCA's
slow start apart from a lack of capacity (docs/LAB.md, "Why CoCA learns to retrieve late").

:func:`diagnose` takes one model and one batch of a task and returns, per layer:

- ``entropy``: the attention entropy ``-Σ p log p`` in nats, mean over heads and queries (a
  uniform row over ``n`` keys has ``log n``; a head that has found its key has about 0);
- ``score_std``: the spread of the pre-softmax scores over each query's keys (the standard
  deviation of ``log p`` over the causal keys, which equals that of the scores), mean over heads
  and queries: how far the scores are from flat;
- ``tau_zero``: CoCA only, the share of tied T entries ``τ = relu((t1 + t2) / 2)`` that are
  exactly zero (planes that get no gradient through τ);
- ``grad_q`` / ``grad_k``: the norm of the task loss's gradient on the Q projection and on the
  key projection (T for CoCA), on this batch.

The model's weights and its optimizer are untouched: the gradients are computed, read and cleared.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cocattn.tasks.synthetic import Batch
from cocattn.model import GPT

__all__ = ["diagnose", "DIAGNOSTICS"]

DIAGNOSTICS = ("entropy", "score_std", "tau_zero", "grad_q", "grad_k")
"""The per-layer measurements of :func:`diagnose`, in report order."""


def _row_statistics(probs: torch.Tensor) -> tuple[float, float]:
    """Mean entropy and mean score spread of ``[B, H, T, T]`` causal probabilities."""
    t = probs.shape[-1]
    causal = torch.ones(t, t, dtype=torch.bool, device=probs.device).tril()
    p = probs.double()
    logp = p.clamp_min(1e-300).log()
    entropy = -(p * logp).masked_fill(~causal, 0.0).sum(-1)
    counts = causal.sum(-1).double()
    mean = logp.masked_fill(~causal, 0.0).sum(-1) / counts
    var = ((logp - mean[..., None]) ** 2).masked_fill(~causal, 0.0).sum(-1) / counts
    keep = counts > 1  # one key: no spread to measure
    return float(entropy.mean()), float(var[..., keep].sqrt().mean())


def diagnose(model: GPT, batch: Batch) -> list[dict[str, Any]]:
    """Per layer (first block first): :data:`DIAGNOSTICS` on ``batch`` (module docstring)."""
    layers = [block.attn for block in model.blocks]
    tied: list[torch.Tensor] = []
    hooks = [
        attn.t_proj.register_forward_hook(lambda _m, _i, out: tied.append(out.detach()))
        for attn in layers
        if attn.is_coca
    ]
    was_training = model.training
    model.eval()
    try:
        maps = model.attention_maps(batch.inputs)
    finally:
        for hook in hooks:
            hook.remove()
    model.zero_grad(set_to_none=True)
    _, loss = model(batch.inputs, batch.targets)
    loss.backward()
    rows = []
    for i, (attn, probs) in enumerate(zip(layers, maps)):
        entropy, spread = _row_statistics(probs)
        key = attn.t_proj if attn.is_coca else getattr(attn, "k_proj", None)
        row = {
            "layer": i,
            "entropy": entropy,
            "score_std": spread,
            "tau_zero": _tau_zero(tied.pop(0), attn.head_dim, attn.coca.tau) if attn.is_coca else None,
            "grad_q": _grad_norm(attn.q_proj.weight),
            "grad_k": None if key is None else _grad_norm(key.weight),
        }
        rows.append(row)
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return rows


def _tau_zero(t: torch.Tensor, head_dim: int, activation: str) -> float | None:
    """Share of tied entries of the T projection's output ``t [B, T, Hkv · d]`` that the ReLU
    zeroes (``None`` for softplus, which zeroes none)."""
    if activation != "relu":
        return None
    planes = t.unflatten(-1, (-1, 2, head_dim // 2))  # [B, T, Hkv, 2, d/2]: the halves of each plane
    return float((planes.sum(-2) <= 0).double().mean())


def _grad_norm(p: torch.Tensor) -> float:
    return float(p.grad.norm()) if p.grad is not None else math.nan
