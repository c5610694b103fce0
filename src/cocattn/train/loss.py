"""The language-modelling loss of a native or Hugging Face model, and the validation loss."""

from __future__ import annotations

from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

from cocattn.config import RunConfig
from cocattn.train.batches import Batches
from cocattn.train.distributed import all_reduce_mean


def lm_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, hf: bool, chunked: bool = False) -> torch.Tensor:
    """Mean next-token cross-entropy; ``y`` is already shifted (targets of -100 are ignored).
    ``chunked`` (a native model): the loss without the full logits (``train.chunked_loss``)."""
    if not hf:
        return model(x, y, return_logits=not chunked)[1]
    logits = model(input_ids=x, use_cache=False).logits  # no labels=: transformers would shift again
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module, batches: Batches, run: RunConfig, autocast: Callable[[], ContextManager], hf: bool = False
) -> float:
    """Mean loss over ``train.eval_iters`` validation batches, the same batches every time."""
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(run.train.seed + 2)  # the same batches every time
    total = torch.zeros((), dtype=torch.float64)
    for _ in range(run.train.eval_iters):
        x, y = batches.global_batch(batches.val, run.train.batch_size, generator, retrieval=False)
        parts = batches.local_micro_batches(x, y, run.train.grad_accum)
        for xm, ym in parts:
            with autocast():
                loss = lm_loss(model, xm, ym, hf, run.train.chunked_loss)
            total += loss.detach().double().cpu()
    total = all_reduce_mean(total / (run.train.eval_iters * len(parts)), batches.dist)
    model.train(was_training)
    return float(total)
