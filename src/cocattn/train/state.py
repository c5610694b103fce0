"""Trainer state: the checks and the restoring of a resumed checkpoint (same init_from, stage,
batch, length; optimizer, sampler and RNG state), the checkpoints a run writes, and its final
model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cocattn import checkpoint as ckpt
from cocattn._checks import bad_value
from cocattn.config import TrainConfig
from cocattn.model import GPTConfig
from cocattn.train.distributed import Dist, full_model_state
from cocattn.train.init_from import save_hf_model
from cocattn.train.rundir import MODEL_DIR
from cocattn.train.session import Session


def check_same_init(saved_run: dict[str, Any] | None, tc: TrainConfig, where: Path) -> None:
    """A run resumes with the init_from and stage it started with."""
    saved = (saved_run or {}).get("train") or {}
    for key in ("init_from", "stage"):
        old, new = saved.get(key), getattr(tc, key)
        same = old == new
        if key == "init_from" and old is not None and new is not None:
            same = Path(old).resolve() == Path(new).resolve()
        if not same:
            raise bad_value(f"train.{key}", new, f"{old!r}, the value of the run being resumed ({where})")
    # what the sampler, the schedule and the tokens seen depend on: a resume with another value
    # would silently continue a different run
    for key in ("batch_size", "grad_accum"):
        old, new = saved.get(key), getattr(tc, key)
        if old is not None and old != new:
            raise bad_value(f"train.{key}", new, f"{old!r}, the value of the run being resumed ({where})")


def check_same_length(saved_run: dict[str, Any] | None, seq_len: int, where: Path) -> None:
    """A run resumes with the training length it started with."""
    old = ((saved_run or {}).get("model") or {}).get("max_seq_len")
    if old is not None and int(old) != seq_len:
        raise bad_value("model.max_seq_len", seq_len, f"{old!r}, the value of the run being resumed ({where})")


def resume_state(
    latest: Path | None, model: torch.nn.Module, cfg: GPTConfig | None, tc: TrainConfig, seq_len: int
) -> dict[str, Any] | None:
    """The trainer state of checkpoint ``latest`` (None for a new run), checked against this run,
    with its weights loaded into ``model``."""
    if latest is None:
        return None
    state = ckpt.load_checkpoint(latest, None, expected_config=cfg)
    check_same_init(state.get("run"), tc, latest)
    check_same_length(state.get("run"), seq_len, latest)
    ckpt.load_weights(model, latest / ckpt.MODEL_FILE)
    return state


def restore_trainer_state(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: torch.Generator,
    dist_info: Dist,
    where: Path,
) -> tuple[int, int]:
    """Put the optimizer, sampler and RNG state of a checkpoint back; ``(step, tokens)`` it reached."""
    load_optimizer_state(model, optimizer, state["optimizer"], dist_info, where)
    sampler.set_state(state["sampler"].to(torch.uint8))
    ckpt.set_rng_state(state["rng"])
    return int(state["step"]), int(state["tokens"])


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, dist_info: Dist) -> dict[str, Any] | None:
    """The full optimizer state on rank 0 (None elsewhere); a collective under FSDP."""
    if dist_info.mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        state = get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        return {"kind": "fqn", "state": state} if dist_info.main else None
    return {"kind": "torch", "state": optimizer.state_dict()} if dist_info.main else None


def load_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any], dist_info: Dist, where: Path
) -> None:
    """Load :func:`optimizer_state`'s output; a state saved under another mode is refused."""
    expected = "fqn" if dist_info.mode == "fsdp" else "torch"
    if saved.get("kind") != expected:
        saved_by = "an FSDP run" if saved.get("kind") == "fqn" else "a single-process or DDP run"
        needed = (
            "under torchrun with train.distributed=fsdp"
            if saved.get("kind") == "fqn"
            else "in one process or under torchrun with train.distributed=ddp"
        )
        raise ValueError(f"{where}: the optimizer state was saved by {saved_by}; resume it {needed}")
    if expected == "fqn":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(
            model, optimizer, optim_state_dict=saved["state"], options=StateDictOptions(full_state_dict=True)
        )
    else:
        optimizer.load_state_dict(saved["state"])


def model_for_saving(
    model: torch.nn.Module, cfg: GPTConfig | None, state: dict[str, torch.Tensor] | None, dist_info: Dist
) -> torch.nn.Module:
    """The model to write: the model itself, or under FSDP a CPU copy holding the gathered state."""
    if dist_info.mode != "fsdp":
        return ckpt.unwrap(model)
    if cfg is None or state is None:  # FSDP shards cocattn models only; rank 0 holds the full state
        raise ValueError("under FSDP, only rank 0 saves a cocattn model (its GPTConfig and full state)")
    from cocattn.model import GPT

    shadow = GPT(cfg)
    shadow.load_state_dict(state)
    return shadow


def write_checkpoint(s: Session) -> None:
    """Checkpoint ``s`` at its step (rank 0 writes; every rank takes part in the gathering)."""
    full = full_model_state(s.model, s.dist)
    opt_state = optimizer_state(s.model, s.optimizer, s.dist)
    if not s.dist.main:
        return
    trainer_state = {
        "step": s.step,
        "tokens": s.tokens,
        "optimizer": opt_state,
        "sampler": s.sampler.get_state(),
        "rng": ckpt.rng_state(),
        "run": s.record,
        "world_size": s.dist.world,
    }
    ckpt.save_checkpoint(
        s.run_dir,
        s.step,
        model_for_saving(s.model, s.cfg, full, s.dist),
        trainer_state,
        tokenizer=Path(s.batches.data_dir) / "tokenizer.json",
        extra={"run": s.record},
        keep=s.tc.keep_checkpoints,
    )


def write_model(s: Session, full: dict[str, torch.Tensor] | None, info: dict[str, Any]) -> None:
    """The final model directory ``run_dir/model`` (rank 0): a cocattn model directory, or for a
    Hugging Face model ``save_pretrained`` with its tokenizer files; ``info`` is recorded with it."""
    if s.hf:
        save_hf_model(s.run_dir / MODEL_DIR, s.raw_model, Path(s.tc.init_from), s.batches.data_dir, info)
    else:
        ckpt.save_model(
            s.run_dir / MODEL_DIR,
            model_for_saving(s.model, s.cfg, full, s.dist),
            tokenizer=Path(s.batches.data_dir) / "tokenizer.json",
            extra=info,
        )
