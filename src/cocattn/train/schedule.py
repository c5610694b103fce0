"""The optimizer's schedule and groups: the learning rate of each step (warm-up, then cosine,
linear or constant) and AdamW's weight-decay groups."""

from __future__ import annotations

import math
from typing import Any

import torch


def learning_rate(step: int, train_cfg) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then decay to min_lr."""
    lr, min_lr, warmup, total = train_cfg.lr, train_cfg.min_lr, train_cfg.warmup, train_cfg.steps
    if step < warmup:
        return lr * (step + 1) / warmup
    if train_cfg.schedule == "constant" or total <= warmup:
        return lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup - 1))  # the last step uses min_lr
    if train_cfg.schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - progress)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices of linear layers only; norms, biases, embeddings
    (and the head tied to them) are not decayed."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        is_norm = "norm" in type(module).__name__.lower()
        if isinstance(module, torch.nn.Embedding) or is_norm:
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for _name, param in model.named_parameters():  # shared (tied) parameters appear once
        if not param.requires_grad:
            continue
        (no_decay if param.dim() < 2 or id(param) in no_decay_ids else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
