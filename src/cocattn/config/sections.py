"""The ``data`` and ``train`` sections of a run configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cocattn._checks import check, check_choice
from cocattn.config.choices import DISTRIBUTED, DTYPES, SCHEDULES

__all__ = ["DataConfig", "TrainConfig"]


@dataclass
class DataConfig:
    """Where the tokens come from (``cocattn data build`` output) and how rows are drawn."""

    dir: str | None = None
    """Data directory written by ``cocattn data build`` (``--data`` on the command line)."""
    retrieval_fraction: float = 0.0
    """Fraction of training rows replaced by synthetic retrieval rows (0 = off)."""
    retrieval_tasks: list[str] = field(default_factory=lambda: ["passkey"])
    """What those rows are, each drawn uniformly: ``passkey`` (the paper's key line) and tasks of the
    retrieval suite with their options (``niah_multikey``, ``vt:hops=2``, ...; docs/RETRIEVAL.md)."""

    def validate(self) -> None:
        from cocattn.tasks.warmup import check_retrieval_tasks

        check(
            0.0 <= self.retrieval_fraction <= 1.0,
            "data.retrieval_fraction",
            self.retrieval_fraction,
            "a number between 0 and 1",
        )
        check_retrieval_tasks(self.retrieval_tasks)


@dataclass
class TrainConfig:
    """Optimisation, logging, checkpointing and hardware settings of a training run."""

    batch_size: int = 32
    """Rows per optimizer step, the global batch (split over ranks and grad_accum micro-steps)."""
    grad_accum: int = 1
    """Micro-steps per optimizer step; batch_size must be divisible by grad_accum × world size."""
    steps: int = 1000
    """Optimizer steps."""
    lr: float = 1e-3
    """Peak learning rate (after warm-up)."""
    min_lr: float = 1e-4
    """Learning rate at the end of the decay."""
    warmup: int = 100
    """Linear warm-up steps (from lr/warmup to lr)."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine | linear | constant."""
    weight_decay: float = 0.1
    """AdamW weight decay for matrices (norms, biases and embeddings are not decayed)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW betas."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    eval_interval: int = 100
    """Validation loss every this many steps (and at the end; 0 disables)."""
    eval_iters: int = 10
    """Validation batches per validation loss."""
    log_interval: int = 10
    """Write a metrics line every this many steps."""
    checkpoint_interval: int = 200
    """Atomic trainer checkpoint every this many steps (0: only the final model)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    seed: int = 1337
    """Seed of the model initialisation, the data sampler and dropout."""
    dtype: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on CPU) | float32 | bfloat16 | float16 (autocast dtype)."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    chunked_loss: bool = False
    """Compute the loss of a native model a chunk of positions at a time (``cocattn.chunked_loss``):
    the full [batch, length, vocab] logits never exist. The same loss and gradients to float32
    rounding, not bit for bit; float32 without autocast only (otherwise the full logits)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N (under torchrun, cuda means cuda:LOCAL_RANK)."""
    distributed: str = "ddp"
    """Under torchrun: ddp | fsdp (FSDP2 fully_shard) | none (refuse to run distributed)."""
    threads: int | None = None
    """CPU threads for torch (None: torch's default)."""
    progress: bool = True
    """Show a progress bar (only when stderr is a terminal)."""
    tensorboard: bool = False
    """Also write TensorBoard scalars to run_dir/tensorboard (needs the tensorboard package)."""
    init_from: str | None = None
    """Continue training a saved model instead of a new one (``--init-from``): a Hugging Face
    causal-LM directory (e.g. the output of ``cocattn convert llama``; the final model is then
    saved with ``save_pretrained``) or a cocattn model directory (its architecture is kept). Only
    ``model.max_seq_len`` (the training length) is read from the model section. The data
    directory's tokenizer must be the model's: same vocabulary (``tokenizer.json`` of the model
    directory compared token by token; without one, the same number of tokens)."""
    stage: int | None = None
    """Staged continued training (paper §3.2), with ``init_from`` only: 1, the T projections only;
    2, the Q, T and V projections; 3 or null, every weight. Stages 1-2 need a CoCA model."""

    def validate(self) -> None:
        positive_ints = ("batch_size", "grad_accum", "steps", "eval_iters", "log_interval", "keep_checkpoints")
        for name in positive_ints:
            value = getattr(self, name)
            check(value >= 1, f"train.{name}", value, "an integer >= 1")
        for name in ("warmup", "eval_interval", "checkpoint_interval", "seed"):
            value = getattr(self, name)
            check(value >= 0, f"train.{name}", value, "an integer >= 0")
        check(
            self.batch_size % self.grad_accum == 0,
            "train.batch_size",
            self.batch_size,
            f"a multiple of train.grad_accum={self.grad_accum}",
        )
        check(self.warmup <= self.steps, "train.warmup", self.warmup, f"at most train.steps={self.steps}")
        check(self.lr > 0 and math.isfinite(self.lr), "train.lr", self.lr, "a positive number")
        check(0 <= self.min_lr <= self.lr, "train.min_lr", self.min_lr, f"between 0 and train.lr={self.lr}")
        check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a number >= 0")
        check(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "train.betas",
            self.betas,
            "two numbers in [0, 1), e.g. [0.9, 0.95]",
        )
        check(self.eps > 0, "train.eps", self.eps, "a positive number")
        check(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "a number >= 0 (0 disables clipping)")
        check_choice("train.schedule", self.schedule, SCHEDULES)
        check_choice("train.dtype", self.dtype, DTYPES)
        check_choice("train.distributed", self.distributed, DISTRIBUTED)
        check(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps",
            "train.device",
            self.device,
            "auto, cpu, cuda, cuda:N or mps",
        )
        check(self.threads is None or self.threads >= 1, "train.threads", self.threads, "null or an integer >= 1")
        check(
            self.init_from is None or self.init_from.strip() != "",
            "train.init_from",
            self.init_from,
            "null or a model directory",
        )
        check(self.stage is None or self.stage in (1, 2, 3), "train.stage", self.stage, "null, 1, 2 or 3")
        check(
            self.stage is None or self.init_from is not None,
            "train.stage",
            self.stage,
            "null when train.init_from is null (stages continue training a saved model; pass --init-from DIR)",
        )
