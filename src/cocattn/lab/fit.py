"""Training one small GPT on a lab task with what ``cocattn train`` uses (:class:`cocattn.model.GPT`,
AdamW over :func:`cocattn.train.schedule.param_groups`, warm-up then cosine), without its data and
run directories: a new seeded batch every step (:func:`cocattn.tasks.synthetic.generate`), the
loss the mean cross-entropy over the answer tokens only.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from cocattn._checks import check
from cocattn.errors import NonFiniteLossError
from cocattn.lab.diagnostics import diagnose
from cocattn.lab.score import model_predictions, score_predictions
from cocattn.tasks.synthetic import TaskSpec, generate
from cocattn.model import GPT, GPTConfig
from cocattn.train.schedule import group_lr, learning_rate, param_groups

__all__ = ["Recipe", "Fitted", "fit", "batch_seed"]


@dataclass(frozen=True)
class Recipe:
    """How a lab model trains. ``steps`` optimizer steps of ``batch_size`` rows at the task's
    training length; AdamW ``lr`` with ``warmup`` linear steps then cosine to ``min_lr``."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    schedule: str = "cosine"
    curve_every: int = 100
    """Score the in-window task every this many steps (0: never) for the learning curve."""
    curve_cases: int = 128

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "curve_cases"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, f"recipe.{name}", value, "a positive integer")
        for name in ("warmup", "curve_every"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 0, f"recipe.{name}", value, "an integer >= 0")
        for name in ("lr", "min_lr"):
            value = getattr(self, name)
            check(
                isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                f"recipe.{name}",
                value,
                "a positive number",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def batch_seed(seed: int, stream: int, index: int) -> int:
    """The generator seed of batch ``index`` of ``stream`` (0 training, 1 curve, 2+ evaluation)
    for model ``seed``: distinct streams never share a batch."""
    return (seed * 1_000_003 + stream) * 10_000_019 + index


@dataclass
class Fitted:
    """A trained lab model and how it got there."""

    model: GPT
    curve: list[dict[str, Any]]
    final_loss: float
    seconds: float
    steps: int


DIAGNOSTIC_ROWS = 32
"""Rows of the batch :func:`cocattn.lab.diagnostics.diagnose` measures at each curve check."""


def _curve_point(model: GPT, task: TaskSpec, recipe: Recipe, seed: int, step: int, diagnostics: bool) -> dict[str, Any]:
    batch = generate(task, task.train_length, recipe.curve_cases, batch_seed(seed, 1, 0))
    scored = score_predictions(batch, model_predictions(model, batch))
    point: dict[str, Any] = {
        "step": step,
        "accuracy": scored["correct"] / scored["cases"],
        "token_accuracy": scored["tokens_correct"] / scored["tokens"],
    }
    if diagnostics:
        point["layers"] = diagnose(model, generate(task, task.train_length, DIAGNOSTIC_ROWS, batch_seed(seed, 1, 1)))
    return point


def fit(
    config: GPTConfig,
    task: TaskSpec,
    recipe: Recipe,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
    diagnostics: bool = False,
) -> Fitted:
    """Train a fresh ``GPT(config)`` (initialised from ``seed``) on ``task`` with ``recipe``.
    ``on_step(step, loss)`` is called after every step (progress). ``diagnostics``: each curve
    check also records :func:`cocattn.lab.diagnostics.diagnose` (``"layers"``); training is unchanged."""
    torch.manual_seed(seed)
    model = GPT(config)
    optimizer = torch.optim.AdamW(param_groups(model, recipe.weight_decay), lr=recipe.lr, betas=recipe.betas)
    curve: list[dict[str, Any]] = []
    start = time.perf_counter()
    loss_value = float("nan")
    model.train()
    for step in range(recipe.steps):
        if recipe.curve_every and step % recipe.curve_every == 0:
            curve.append(_curve_point(model, task, recipe, seed, step, diagnostics))
        for group in optimizer.param_groups:
            group["lr"] = group_lr(group, learning_rate(step, recipe))
        batch = generate(task, task.train_length, recipe.batch_size, batch_seed(seed, 0, step))
        _, loss = model(batch.inputs, batch.targets)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(f"the lab model's loss became {loss_value} at step {step + 1}; lower recipe.lr")
        if on_step is not None:
            on_step(step + 1, loss_value)
    if recipe.curve_every:
        curve.append(_curve_point(model, task, recipe, seed, recipe.steps, diagnostics))
    return Fitted(model, curve, loss_value, time.perf_counter() - start, recipe.steps)
