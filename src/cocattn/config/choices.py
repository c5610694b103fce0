"""The fixed choices of run-configuration settings, each listed once."""

from __future__ import annotations

SCHEDULES = ("cosine", "linear", "constant")
"""``train.schedule``: the learning-rate decay after warm-up."""
AUTOCAST_DTYPES = ("float32", "bfloat16", "float16")
"""The precisions a model computes in: float32, or autocast to bfloat16 / float16 (float32 weights)."""
DTYPES = ("auto", *AUTOCAST_DTYPES)
"""``train.dtype`` and ``eval.dtype``: ``auto`` (bfloat16 autocast on CUDA, float32 on CPU) or one of
:data:`AUTOCAST_DTYPES`."""
DISTRIBUTED = ("none", "ddp", "fsdp")
"""``train.distributed`` under torchrun."""
