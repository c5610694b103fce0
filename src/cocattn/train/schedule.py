"""The optimizer's schedule and groups: the learning rate of each step (warm-up, then cosine,
linear or constant) and AdamW's weight-decay groups."""

from __future__ import annotations

import math
from typing import Any, Mapping, Protocol

import torch


class Schedule(Protocol):
    """What the schedule reads: ``train.*`` of a run config, or a lab recipe."""

    @property
    def lr(self) -> float: ...
    @property
    def min_lr(self) -> float: ...
    @property
    def warmup(self) -> int: ...
    @property
    def steps(self) -> int: ...
    @property
    def schedule(self) -> str: ...


def learning_rate(step: int, train_cfg: Schedule) -> float:
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
    (and the head tied to them) are not decayed. A module that declares ``lr_multipliers()``
    (``{own parameter name: multiplier}``, e.g. CoCA's ``coca_t_lr_mult``) gets its parameters
    in groups of their own with ``"lr_mult"``; every group carries one (1.0 by default), which the
    training loops multiply into the scheduled learning rate (:func:`group_lr`)."""
    no_decay_ids: set[int] = set()
    mults: dict[int, float] = {}
    for module in model.modules():
        is_norm = "norm" in type(module).__name__.lower()
        if isinstance(module, torch.nn.Embedding) or is_norm:
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
        declared = getattr(module, "lr_multipliers", None)
        if callable(declared):
            for name, mult in declared().items():
                mults[id(module.get_parameter(name))] = float(mult)
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    for _name, param in model.named_parameters():  # shared (tied) parameters appear once
        if not param.requires_grad:
            continue
        decayed = not (param.dim() < 2 or id(param) in no_decay_ids)
        groups.setdefault((decayed, mults.get(id(param), 1.0)), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr_mult": mult}
        for (decayed, mult), params in groups.items()
    ]


def group_lr(group: Mapping[str, Any], lr: float) -> float:
    """The learning rate of one optimizer group: the scheduled ``lr`` times its ``"lr_mult"``."""
    return lr * group.get("lr_mult", 1.0)
