"""Retrieval warm-up rows (../shared/design/PILOT.md): real corpus text as filler around a pass
key, ending with the question and the answer, so that a small model learns to retrieve in-window.
The key line, question and answer prefix are the evaluation's own words
(:mod:`cocattn.passkey_text`); the filler is corpus text, not the evaluation's repeated sentences.

Row layout (exactly ``seq_len + 1`` tokens, so ``row[:-1]`` / ``row[1:]`` are one training pair):
``filler[:depth] + NEEDLE + filler[depth:] + QUESTION``, with the key N uniform in
[10000, 99999], the filler a random contiguous span of the training tokens and the depth uniform
over the filler. The row ends with the last token of N.
"""

from __future__ import annotations

import numpy as np
import torch

from cocattn._checks import check
from cocattn.passkey_text import ANSWER_PREFIX, KEY_LINE
from cocattn.passkey_text import QUESTION as EVAL_QUESTION

NEEDLE = " " + KEY_LINE + " "
QUESTION = " " + EVAL_QUESTION + " " + ANSWER_PREFIX + " {key}"
KEY_RANGE = (10000, 99999)


def passkey_texts(key: int) -> tuple[str, str]:
    """The needle sentence and the closing question+answer for ``key``."""
    return NEEDLE.format(key=key), QUESTION.format(key=key)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high] from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def make_retrieval_row(generator: torch.Generator, tokenizer, filler_tokens: np.ndarray,
                       seq_len: int) -> tuple[torch.Tensor, int]:
    """One retrieval row of ``seq_len + 1`` int64 tokens and its key (see the module docstring)."""
    key = _randint(*KEY_RANGE, generator)
    needle, question = passkey_texts(key)
    needle_ids = tokenizer.encode(needle).ids
    question_ids = tokenizer.encode(question).ids
    n_filler = seq_len + 1 - len(needle_ids) - len(question_ids)
    check(n_filler >= 0, "seq_len", seq_len,
          f"at least {len(needle_ids) + len(question_ids) - 1} to hold a retrieval row")
    check(len(filler_tokens) >= n_filler, "filler_tokens", f"<{len(filler_tokens)} tokens>",
          f"at least {n_filler} tokens of filler")
    start = _randint(0, len(filler_tokens) - n_filler, generator)
    depth = _randint(0, n_filler, generator)
    filler = np.asarray(filler_tokens[start:start + n_filler], dtype=np.int64)
    row = np.concatenate([filler[:depth], np.asarray(needle_ids, dtype=np.int64), filler[depth:],
                          np.asarray(question_ids, dtype=np.int64)])
    return torch.from_numpy(row), key


def mix_retrieval_rows(x: torch.Tensor, y: torch.Tensor, fraction: float, tokenizer,
                       filler_tokens: np.ndarray, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each row of a batch ``(x, y)`` with a retrieval row with probability ``fraction``
    (a Bernoulli draw per row from ``generator``); returns new tensors, inputs untouched."""
    check(isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0, "retrieval_fraction", fraction,
          "a number in [0, 1]")
    if fraction == 0:
        return x, y
    batch, seq_len = x.shape
    chosen = (torch.rand(batch, generator=generator) < fraction).nonzero().flatten().tolist()
    if not chosen:
        return x, y
    x, y = x.clone(), y.clone()
    for i in chosen:
        row, _ = make_retrieval_row(generator, tokenizer, filler_tokens, seq_len)
        x[i] = row[:-1]
        y[i] = row[1:]
    return x, y
