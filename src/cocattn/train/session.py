"""What one run holds while it trains: its configuration and directory, processes and device,
data, model and optimizer, and the position the loop has reached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch

from cocattn.config import RunConfig
from cocattn.model import GPTConfig
from cocattn.train.batches import Batches
from cocattn.train.distributed import Dist
from cocattn.train.metrics import TensorBoard
from cocattn.train.rundir import METRICS_FILE


@dataclass
class Session:
    """One run in progress; :func:`cocattn.train.setup.set_up` builds it, the loop advances it."""

    run: RunConfig  # ``model``: the GPTConfig of the model trained (for a Hugging Face model, as loaded)
    run_dir: Path
    dist: Dist
    device: torch.device
    autocast: Callable[[], ContextManager]  # the context of each forward pass
    batches: Batches
    model: torch.nn.Module  # wrapped (DDP / FSDP) and compiled as configured
    raw_model: torch.nn.Module  # the model under the DDP / compile wrappers
    cfg: GPTConfig | None  # None for a Hugging Face model
    hf: bool  # a Hugging Face model (train.init_from)
    optimizer: torch.optim.Optimizer
    sampler: torch.Generator  # draws the global batches; identical on every rank
    board: TensorBoard
    seq_len: int
    step: int = 0  # optimizer steps done
    tokens: int = 0  # training tokens seen
    resumed_from: int | None = None  # the checkpoint's step when the run resumed

    @property
    def record(self) -> dict[str, Any]:
        """The run configuration as the run directory records it (``config.json``, checkpoints, the
        model): for a Hugging Face model the model section holds only the training length it reads."""
        record = self.run.to_dict()
        if self.hf:
            record["model"] = {"max_seq_len": self.seq_len}
        return record

    @property
    def tc(self):
        """The training settings (``run.train``)."""
        return self.run.train

    @property
    def tokens_per_step(self) -> int:
        return self.tc.batch_size * self.seq_len

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE
