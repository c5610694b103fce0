"""Processes and devices: the process group under ``torchrun``, the device and autocast of each
process, the DDP / FSDP2 wrapping, and the collectives the trainer needs (the mean of a value over
ranks, gradient synchronisation across micro-batches, the full model state)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ContextManager, cast

import torch

from cocattn import checkpoint as ckpt
from cocattn.config import TrainConfig

if TYPE_CHECKING:
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel


@dataclass
class Dist:
    """This process's place in the run (one process: rank 0 of 1, mode ``none``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp
    owns_group: bool = False  # train() created the process group and destroys it at the end

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(train_cfg: TrainConfig) -> Dist:
    """The process group of a ``torchrun`` run (``WORLD_SIZE`` > 1), created unless it exists."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if train_cfg.distributed == "none":
        raise ValueError(
            f"train.distributed='none' is not valid under torchrun (WORLD_SIZE={world}): expected 'ddp' or 'fsdp'"
        )
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = train_cfg.device != "cpu" and torch.cuda.is_available()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank, mode=train_cfg.distributed, owns_group=owns)


def close_distributed(dist_info: Dist) -> None:
    """Wait for every rank, then destroy the process group if this run created it."""
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        if dist_info.owns_group:
            dist.destroy_process_group()


def device_for(train_cfg: TrainConfig, dist_info: Dist) -> torch.device:
    """The device of ``train.device`` (``auto``: CUDA when there is one), per local rank on CUDA."""
    name = train_cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist_info.world > 1:
        name = f"cuda:{dist_info.local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())  # set_device needs an index
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={train_cfg.device!r} is not valid: expected cpu (no CUDA device here)")
        torch.cuda.set_device(device)
    return device


def autocast_dtype(train_cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.dtype`` (``auto``: bf16 on CUDA, fp32 elsewhere); None for fp32."""
    if train_cfg.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return None if train_cfg.dtype == "float32" else getattr(torch, train_cfg.dtype)


def autocast_for(train_cfg: TrainConfig, device: torch.device) -> Callable[[], ContextManager]:
    """A function returning the context of each forward pass: autocast, or nothing in fp32."""
    amp_dtype = autocast_dtype(train_cfg, device)

    def autocast() -> ContextManager:
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=amp_dtype)

    return autocast


def all_reduce_mean(value: torch.Tensor, dist_info: Dist) -> torch.Tensor:
    """The mean of ``value`` over ranks (``value`` itself in one process)."""
    if dist_info.world > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist_info.world
    return value


def block_list(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (the largest ModuleList), sharded one by one under FSDP."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        return []
    longest = max(lists, key=len)  # alone: inside list(...) mypy would infer max's type from the list's
    return list(longest)


def wrap(model: torch.nn.Module, dist_info: Dist, device: torch.device) -> torch.nn.Module:
    """``model`` under DDP, sharded with FSDP2 (each block, then the whole), or as it is."""
    if dist_info.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if dist_info.mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in block_list(model):
            fully_shard(block)
        fully_shard(model)
    return model


def gradient_sync(model: torch.nn.Module, raw_model: torch.nn.Module, dist_info: Dist, last: bool) -> ContextManager:
    """The context of one micro-batch's backward: gradients are synchronised on the ``last`` only."""
    if dist_info.mode == "ddp" and not last:
        return cast("DistributedDataParallel", model).no_sync()  # wrapped by wrap() in this mode
    if dist_info.mode == "fsdp" and hasattr(raw_model, "set_requires_gradient_sync"):
        cast("FSDPModule", raw_model).set_requires_gradient_sync(last)  # sharded by wrap() in this mode
    return contextlib.nullcontext()


def full_model_state(model: torch.nn.Module, dist_info: Dist) -> dict[str, torch.Tensor] | None:
    """Full (unsharded) model state on rank 0 (None elsewhere); a collective under FSDP."""
    if dist_info.mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return cast("dict[str, torch.Tensor]", state) if dist_info.main else None  # full: tensors only
    return ckpt.unwrap(model).state_dict() if dist_info.main else None
