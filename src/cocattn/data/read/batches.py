"""Random training batches from a flat token array, reproducible from a ``torch.Generator``.

The trainer resumes exactly by saving and restoring ``generator.get_state()``: the same state
gives the same next batch.
"""

from __future__ import annotations

import numpy as np
import torch

from cocattn._checks import check


def sample_batch(
    tokens: np.ndarray, batch_size: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` windows of ``seq_len + 1`` tokens at uniform random offsets:
    inputs ``x`` and next-token targets ``y``, both int64 ``[batch_size, seq_len]``."""
    check(isinstance(batch_size, int) and batch_size >= 1, "batch_size", batch_size, "an integer >= 1")
    check(isinstance(seq_len, int) and seq_len >= 1, "seq_len", seq_len, "an integer >= 1")
    n = len(tokens)
    check(n >= seq_len + 1, "seq_len", seq_len, f"at most {n - 1} (the token array has {n} tokens)")
    starts = torch.randint(0, n - seq_len, (batch_size,), generator=generator).tolist()
    windows = np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])
    rows = torch.from_numpy(windows)
    return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
