"""The training loop: :func:`train` locks the run directory, sets the run up, runs its steps (one
step: the micro-batches' forward and backward, clipping, the NaN guard, the update; then the
logging, evaluation and checkpoint cadence) and finishes it (the model directory, the result)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn.config import RunConfig
from cocattn.train.distributed import all_reduce_mean, close_distributed, full_model_state, gradient_sync
from cocattn.train.loss import lm_loss, validation_loss
from cocattn.train.metrics import progress_bar
from cocattn.train.result import TrainResult, finished_run_figures, finite_dict
from cocattn.train.rundir import MODEL_DIR, RESULT_FILE, locked_run_dir
from cocattn.train.schedule import group_lr, learning_rate
from cocattn.train.session import Session
from cocattn.train.setup import set_up
from cocattn.train.state import write_checkpoint, write_model
from cocattn.errors import NonFiniteLossError


def train(
    config: RunConfig | str | os.PathLike | dict,
    run_dir: str | os.PathLike,
    resume: bool = False,
    data_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train the model of ``config`` into ``run_dir``; see docs/TRAINING.md.

    ``config`` is a :class:`RunConfig`, a preset name, a config file or a dict; ``data_dir``
    overrides ``data.dir``; ``progress`` overrides ``train.progress``.

    The run directory must be new, empty or a cocattn run directory; the process writing it
    holds an exclusive lock on it (``.cocattn.lock``), and a second writer is refused naming
    the holder's PID.
    """
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 owns the directory
        return _train(config, run_dir, resume, data_dir, progress)
    with locked_run_dir(run_dir):
        return _train(config, run_dir, resume, data_dir, progress)


@dataclass
class _Tally:
    """What the loop measures in this invocation (a resumed run starts a new tally)."""

    start_step: int
    start: float = field(default_factory=time.perf_counter)
    window_t: float = field(default_factory=time.perf_counter)  # the current logging window's start
    window_tokens: int = 0
    last_loss: float = float("nan")
    val_loss: float | None = None


def _train(
    config: RunConfig | str | os.PathLike | dict,
    run_dir: Path,
    resume: bool,
    data_dir: str | os.PathLike | None,
    progress: bool | None,
) -> TrainResult:
    s = set_up(config, Path(run_dir), resume, data_dir)
    s.model.train()
    enabled = s.tc.progress if progress is None else progress
    bar = progress_bar(s.tc.steps, s.step, enabled) if s.dist.main else None
    tally = _Tally(start_step=s.step)
    try:
        while s.step < s.tc.steps:
            lr, loss_value, grad_norm = _step(s)
            _after_step(s, tally, lr, loss_value, grad_norm)
            if bar is not None:
                _update_bar(bar, s, tally, loss_value, lr)
    finally:
        if bar is not None:
            bar.close()
        s.board.close()
    return _finish(s, tally)


def _step(s: Session) -> tuple[float, float, float | None]:
    """One optimizer step; ``(lr, loss, grad_norm)`` (grad_norm None without clipping)."""
    lr = learning_rate(s.step, s.tc)
    for group in s.optimizer.param_groups:
        group["lr"] = group_lr(group, lr)
    x, y = s.batches.global_batch(s.batches.train, s.tc.batch_size, s.sampler, retrieval=True)
    loss_value = _forward_backward(s, s.batches.local_micro_batches(x, y, s.tc.grad_accum))
    grad_norm = _clip_gradients(s.model, s.tc.grad_clip)
    _check_finite(s, loss_value, grad_norm)
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    s.step += 1
    s.tokens += s.tokens_per_step
    return lr, loss_value, grad_norm


def _forward_backward(s: Session, micro: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Accumulate the gradients of the micro-batches; the step's loss, averaged over ranks."""
    loss_sum = torch.zeros((), dtype=torch.float64)
    for i, (xm, ym) in enumerate(micro):
        with gradient_sync(s.model, s.raw_model, s.dist, last=i == len(micro) - 1):
            with s.autocast():
                loss = lm_loss(s.model, xm, ym, s.hf, s.tc.chunked_loss)
            (loss / s.tc.grad_accum).backward()
        loss_sum += loss.detach().double().cpu()
    return float(all_reduce_mean(loss_sum / s.tc.grad_accum, s.dist))


def _clip_gradients(model: torch.nn.Module, max_norm: float) -> float | None:
    """Clip the gradient norm to ``max_norm`` (when > 0); the norm before clipping."""
    if not max_norm > 0:
        return None
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    return float(norm)


def _check_finite(s: Session, loss_value: float, grad_norm: float | None) -> None:
    """The NaN guard: stop before applying an update whose loss or gradient norm is NaN / inf."""
    if math.isfinite(loss_value) and (grad_norm is None or math.isfinite(grad_norm)):
        return
    good = ckpt.latest_checkpoint(s.run_dir)
    what = "loss" if not math.isfinite(loss_value) else "gradient norm"
    raise NonFiniteLossError(
        f"the {what} became {loss_value if what == 'loss' else grad_norm} at step {s.step + 1}; "
        f"training stopped before applying that update. Last good checkpoint: "
        f"{good if good else 'none (no checkpoint was written yet)'}. Lower train.lr, raise "
        "train.warmup or enable train.grad_clip, then resume with --resume."
    )


def _after_step(s: Session, tally: _Tally, lr: float, loss_value: float, grad_norm: float | None) -> None:
    """The cadence after a step: the metrics record, the validation loss, the checkpoint."""
    tc = s.tc
    tally.window_tokens += s.tokens_per_step
    tally.last_loss = loss_value
    record: dict[str, Any] | None = None
    if s.step % tc.log_interval == 0 or s.step == tc.steps:
        record = _step_record(s, tally, lr, loss_value, grad_norm)
    if tc.eval_interval and (s.step % tc.eval_interval == 0 or s.step == tc.steps):
        tally.val_loss = validation_loss(s.model, s.batches, s.run, s.autocast, s.hf)
        record = record or {"step": s.step}
        record["val_loss"] = tally.val_loss
    if record is not None and s.dist.main:
        files.append_jsonl(s.metrics_path, record)
        s.board.log(record)
    if tc.checkpoint_interval and s.step % tc.checkpoint_interval == 0:
        write_checkpoint(s)


def _step_record(s: Session, tally: _Tally, lr: float, loss_value: float, grad_norm: float | None) -> dict[str, Any]:
    """The metrics record of this step; it closes the throughput window."""
    now = time.perf_counter()
    record = {
        "step": s.step,
        "loss": loss_value,
        "lr": lr,
        "tokens": s.tokens,
        "tok_per_s": tally.window_tokens / max(now - tally.window_t, 1e-9),
        "elapsed_s": now - tally.start,
    }
    if grad_norm is not None:
        record["grad_norm"] = grad_norm
    tally.window_t, tally.window_tokens = now, 0
    return record


def _update_bar(bar: Any, s: Session, tally: _Tally, loss_value: float, lr: float) -> None:
    elapsed = time.perf_counter() - tally.start
    bar.set_postfix(
        loss=f"{loss_value:.3f}",
        lr=f"{lr:.2e}",
        tok_s=f"{(s.step - tally.start_step) * s.tokens_per_step / max(elapsed, 1e-9):,.0f}",
        refresh=False,
    )
    bar.update(1)


def _finish(s: Session, tally: _Tally) -> TrainResult:
    """The result, the final model directory and ``train_result.json``; the process group ends."""
    seconds = time.perf_counter() - tally.start
    tokens_per_s = (s.step - tally.start_step) * s.tokens_per_step / max(seconds, 1e-9)
    last_loss, val_loss = tally.last_loss, tally.val_loss
    if s.step == tally.start_step and s.resumed_from is not None:
        # resumed a run whose newest checkpoint is its last step (killed after the final
        # checkpoint): nothing to train; keep the figures the run reached, never null them
        last_loss, val_loss, seconds, tokens_per_s = finished_run_figures(s.run_dir, s.step, s.tokens_per_step)
    full = full_model_state(s.model, s.dist)
    result = TrainResult(
        run_dir=str(s.run_dir),
        model_dir=str(s.run_dir / MODEL_DIR),
        steps=s.step,
        tokens=s.tokens,
        final_loss=last_loss,
        val_loss=val_loss,
        seconds=seconds,
        tokens_per_s=tokens_per_s,
        resumed_from=s.resumed_from,
        world_size=s.dist.world,
    )
    if s.dist.main:
        write_model(s, full, {"run": s.record, "train_result": finite_dict(result.to_dict())})
        files.write_json(s.run_dir / RESULT_FILE, finite_dict(result.to_dict()))
    close_distributed(s.dist)
    return result
