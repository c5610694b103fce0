"""What a lab model's attention looks like while it learns: the per-layer measurements that tell
CoCA's slow start apart from a lack of capacity (docs/LAB.md, "Why CoCA learns to retrieve late").
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch

from cocattn.attention import Attention
from cocattn.model import GPT
from cocattn.tasks.synthetic import Batch

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
    """The attention diagnostics of ``model`` on one ``batch`` of a lab task. The model's weights
    and optimizer are untouched: the gradients are computed, read and cleared.

    Returns:
        one dict per layer (first block first): ``layer`` (its index) and :data:`DIAGNOSTICS`:
        ``entropy``: the attention entropy ``-Σ p log p`` in nats, mean over heads and queries (a
        uniform row over ``n`` keys has ``log n``; a head that has found its key about 0);
        ``score_std``: the standard deviation of ``log p`` over each query's causal keys (that of
        the pre-softmax scores), mean over heads and queries;
        ``tau_zero``: CoCA with the ReLU only, else None: the share of tied T entries
        ``τ = relu((t1 + t2) / 2)`` that are exactly zero (planes without gradient through τ);
        ``grad_q`` / ``grad_k``: the norm of the loss's gradient on the Q projection and on the key
        projection (T for CoCA; None for a kind without one), NaN where there is no gradient.
    """
    layers = [cast(Attention, block.attn) for block in model.blocks]  # nn.Module attributes are untyped
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
