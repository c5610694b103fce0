"""The output layer and the next-token cross-entropy in one op, a chunk of positions at a time.

:func:`linear_cross_entropy` computes the mean loss of ``hidden @ weight.T`` and, in the same
pass, its gradients with respect to ``hidden`` and ``weight`` (the fused linear + cross-entropy of
Liger-Kernel and others), ``chunk_rows`` positions at a time, so no block larger than
[chunk_rows, vocab] exists; backward only scales the stored gradients. Values and gradients equal
the full loss's within float32 rounding (the summation order differs).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["linear_cross_entropy", "DEFAULT_CHUNK_BYTES"]

DEFAULT_CHUNK_BYTES = 4 * 2**20
"""The float32 logits of one chunk: 4 MiB (256 positions of a 4,096-token vocabulary), below
glibc's mmap threshold once it has adapted, and cache-sized."""

IGNORE_INDEX = -100


def _chunk_rows(rows: int, vocab: int, chunk_rows: int | None) -> int:
    if chunk_rows is None:
        chunk_rows = max(1, DEFAULT_CHUNK_BYTES // (4 * vocab))
    return max(1, min(int(chunk_rows), rows))


def _chunk_loss_and_grad(
    h: torch.Tensor, weight: torch.Tensor, t: torch.Tensor, buf: torch.Tensor, masked: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum of the chunk's losses, d(sum)/d(logits))`` of the rows ``h`` with targets ``t``;
    the gradient is written into ``buf`` (the chunk's logits, reused). One pass of ``exp`` and no
    temporaries of the chunk's size: shift by the row maximum, exponentiate and normalise in place.
    ``masked``: some targets are -100 (their rows count zero)."""
    logits = torch.mm(h, weight.t(), out=buf)
    valid = t != IGNORE_INDEX if masked else None
    safe = torch.where(valid, t, 0)[:, None] if valid is not None else t[:, None]
    logits.sub_(logits.amax(dim=1, keepdim=True))
    picked = logits.gather(1, safe).squeeze(1)
    total = logits.exp_().sum(dim=1, keepdim=True)
    rows = total.squeeze(1).log() - picked  # log-sum-exp minus the target's logit, both shifted
    grad = logits.div_(total)  # the softmax
    grad.scatter_add_(1, safe, torch.full_like(picked[:, None], -1.0))
    if valid is not None:
        rows = rows * valid
        grad.mul_(valid[:, None])
    return rows.sum(dtype=torch.float64), grad


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int
    ) -> torch.Tensor:
        rows, vocab = hidden.shape[0], weight.shape[0]
        n_valid = int((targets != IGNORE_INDEX).sum())
        scale = 1.0 / n_valid if n_valid else float("nan")
        masked = n_valid < rows
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight) if need_w else None
        buf = torch.empty(chunk_rows, vocab, dtype=hidden.dtype, device=hidden.device)
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        for start in range(0, rows, chunk_rows):
            stop = min(start + chunk_rows, rows)
            h = hidden[start:stop]
            loss_sum, g = _chunk_loss_and_grad(h, weight, targets[start:stop], buf[: stop - start], masked)
            total += loss_sum
            g.mul_(scale)
            if grad_h is not None:
                torch.mm(g, weight, out=grad_h[start:stop])
            if grad_w is not None:
                grad_w.addmm_(g.t(), h)
        ctx.save_for_backward(grad_h, grad_w)
        return (total * scale).to(torch.float32)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        grad_h, grad_w = ctx.saved_tensors
        dh = None if grad_h is None else grad_h * grad_out.to(grad_h.dtype)
        dw = None if grad_w is None else grad_w * grad_out
        return dh, dw, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_rows: int | None = None
) -> torch.Tensor:
    """``F.cross_entropy((hidden @ weight.T).float(), targets, ignore_index=-100)`` (the mean over
    the targets that are not -100), computed ``chunk_rows`` positions at a time (default: 4 MiB of
    float32 logits per chunk) so the full logits never exist. ``hidden [N, D]``, ``weight [V, D]``,
    ``targets [N]``. Without gradients (``torch.no_grad``, or no input needing one) only the loss
    is computed, chunk by chunk."""
    if hidden.dim() != 2 or weight.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)}, targets {tuple(targets.shape)} are not "
            "valid: expected [N, D], [V, D] and [N]"
        )
    if hidden.dtype != torch.float32 or weight.dtype != torch.float32:
        raise ValueError(f"hidden {hidden.dtype}, weight {weight.dtype} are not valid: expected float32 (no autocast)")
    rows = _chunk_rows(hidden.shape[0], weight.shape[0], chunk_rows)
    hidden = hidden.contiguous()
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, rows)
    total = torch.zeros((), dtype=torch.float64, device=hidden.device)
    for start in range(0, hidden.shape[0], rows):
        t = targets[start : start + rows]
        logits = torch.mm(hidden[start : start + rows], weight.t()).float()
        valid = t != IGNORE_INDEX
        picked = logits.gather(1, torch.where(valid, t, 0)[:, None]).squeeze(1)
        total += ((torch.logsumexp(logits, dim=1) - picked) * valid).sum(dtype=torch.float64)
    n_valid = int((targets != IGNORE_INDEX).sum())
    return (total / n_valid if n_valid else total * float("nan")).to(torch.float32)
