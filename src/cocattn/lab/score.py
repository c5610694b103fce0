"""Scoring a model on a lab task: greedy predictions at the answers, cases right or wrong.

A case is right when every one of its answer tokens is the argmax of the model's next-token
distribution at that position (:mod:`cocattn.tasks.synthetic`). :func:`score_predictions` takes
predictions from anything (a model, or a scripted predictor in the tests), so the counting is
checked apart from any model.
"""

from __future__ import annotations

from typing import Any

import torch

from cocattn.tasks.synthetic import Batch

__all__ = ["score_predictions", "model_predictions"]


def score_predictions(batch: Batch, predictions: torch.Tensor) -> dict[str, Any]:
    """``{"cases", "correct", "tokens", "tokens_correct", "case_correct"}`` for ``predictions``
    ``[n, length]`` (token ids) against ``batch``'s answers; ``case_correct`` is one bool per case
    in the batch's numbering."""
    if tuple(predictions.shape) != tuple(batch.targets.shape):
        raise ValueError(f"predictions of shape {tuple(predictions.shape)} for targets {tuple(batch.targets.shape)}")
    answer = batch.case >= 0
    right = (predictions == batch.targets) & answer
    cases = batch.cases
    wrong_per_case = torch.zeros(cases, dtype=torch.int64)
    wrong_per_case.index_add_(0, batch.case[answer], (~right[answer]).long())
    case_correct = (wrong_per_case == 0).tolist()
    return {
        "cases": cases,
        "correct": int(sum(case_correct)),
        "tokens": int(answer.sum()),
        "tokens_correct": int(right.sum()),
        "case_correct": case_correct,
    }


@torch.no_grad()
def model_predictions(model: torch.nn.Module, batch: Batch, rows_per_forward: int = 64) -> torch.Tensor:
    """The model's argmax next token at every position with an answer (0 elsewhere)."""
    was_training = model.training
    model.eval()
    preds = torch.zeros_like(batch.targets)
    for lo in range(0, batch.inputs.shape[0], rows_per_forward):
        hi = lo + rows_per_forward
        logits, _ = model(batch.inputs[lo:hi])
        preds[lo:hi] = logits.argmax(-1)
    model.train(was_training)
    return preds
