"""Retrieval warm-up rows mixed into training (docs/RESULTS.md, "Passkey in-window"): the passkey
and the retrieval suite's tasks (``data.retrieval_tasks``), asked in the evaluation's own words
(:mod:`cocattn.tasks.passkey`, :mod:`cocattn.tasks.ruler`) around real corpus text as filler, so
that a small model learns to retrieve in-window. A row is ``seq_len + 1`` tokens, so ``row[:-1]``
/ ``row[1:]`` are one training pair, and ends with the last token of the answer.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from cocattn._checks import check
from cocattn.tasks.passkey import ANSWER_PREFIX, KEY_LINE
from cocattn.tasks.passkey import QUESTION as EVAL_QUESTION

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from cocattn.tasks.ruler import TaskSpec

NEEDLE = " " + KEY_LINE + " "
QUESTION = " " + EVAL_QUESTION + " " + ANSWER_PREFIX + " {key}"
KEY_RANGE = (10000, 99999)


def passkey_texts(key: int) -> tuple[str, str]:
    """The needle sentence and the closing question+answer for ``key``."""
    return NEEDLE.format(key=key), QUESTION.format(key=key)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in [low, high] from ``generator``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def make_retrieval_row(
    generator: torch.Generator, tokenizer: Tokenizer, filler_tokens: np.ndarray, seq_len: int
) -> tuple[torch.Tensor, int]:
    """One passkey row: ``filler[:depth] + NEEDLE + filler[depth:] + QUESTION``, with the key N
    uniform in :data:`KEY_RANGE`, the filler a random contiguous span of ``filler_tokens`` and the
    depth uniform over the filler.

    Returns:
        ``(row, key)``: the row, int64 ``[seq_len + 1]`` ending with the last token of N, and N.
    """
    key = _randint(*KEY_RANGE, generator)
    needle, question = passkey_texts(key)
    needle_ids = tokenizer.encode(needle).ids
    question_ids = tokenizer.encode(question).ids
    n_filler = seq_len + 1 - len(needle_ids) - len(question_ids)
    check(
        n_filler >= 0, "seq_len", seq_len, f"at least {len(needle_ids) + len(question_ids) - 1} to hold a retrieval row"
    )
    check(
        len(filler_tokens) >= n_filler,
        "filler_tokens",
        f"<{len(filler_tokens)} tokens>",
        f"at least {n_filler} tokens of filler",
    )
    start = _randint(0, len(filler_tokens) - n_filler, generator)
    depth = _randint(0, n_filler, generator)
    filler = np.asarray(filler_tokens[start : start + n_filler], dtype=np.int64)
    row = np.concatenate(
        [
            filler[:depth],
            np.asarray(needle_ids, dtype=np.int64),
            filler[depth:],
            np.asarray(question_ids, dtype=np.int64),
        ]
    )
    return torch.from_numpy(row), key


PASSKEY = "passkey"


def _task_rng(generator: torch.Generator) -> random.Random:
    return random.Random(int(torch.randint(0, 2**62, (1,), generator=generator).item()))


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text).ids)


def make_task_row(
    generator: torch.Generator, tokenizer: Tokenizer, filler_tokens: np.ndarray, seq_len: int, task: str | TaskSpec
) -> tuple[torch.Tensor, list[str]]:
    """One row of a retrieval-suite ``task`` (a name or spec), from the evaluation's own cases:
    ``HEADER\n`` + filler with the case's needles at their depths (token positions in proportion) +
    ``\nQUESTION ANSWER-PREFIX ANSWER``. A ``cwe`` row holds as many uncommon words as fit after a
    stretch of filler (the list cannot be cut to the token).

    Returns:
        ``(row, expected)``: the row, int64 ``[seq_len + 1]`` ending with the last token of the
        gold answer, and the expected values.
    """
    from cocattn.tasks.ruler import CweSpec, cwe_case, cwe_list, cwe_words, parse_task, sample_case

    spec = parse_task(task)
    rng = _task_rng(generator)
    if isinstance(spec, CweSpec):
        header, question = cwe_case(spec)
        seed = rng.getrandbits(62)
        common_repeats, uncommon_repeats = spec.repeats(seq_len)
        pool = cwe_words(rng, spec.common + seq_len)

        def parts(k: int) -> tuple[list[int], list[str]]:
            words = pool[: spec.common + k]
            entries = cwe_list(words, spec.common, common_repeats, uncommon_repeats, seed)
            order = list(dict.fromkeys(w for w in entries if w in set(words[: spec.common])))
            text = header + "\n" + " ".join(f"{i + 1}. {w}" for i, w in enumerate(entries))
            return _ids(tokenizer, text) + _ids(tokenizer, "\n" + question + " " + ", ".join(order)), order

        k = 0
        while k < len(pool) - spec.common and len(parts(k + 1)[0]) <= seq_len + 1:
            k += 1
        body, expected = parts(k)
        pieces = [np.asarray(body, dtype=np.int64)]
        n_filler = seq_len + 1 - len(body)
        check(n_filler >= 0, "seq_len", seq_len, f"at least {len(body) - 1} to hold a {spec.name} row")
        start = int(rng.randrange(len(filler_tokens) - n_filler + 1)) if n_filler else 0
        pieces.insert(0, np.asarray(filler_tokens[start : start + n_filler], dtype=np.int64))
        return torch.from_numpy(np.concatenate(pieces)), expected
    case = sample_case(spec, rng, rng.random())
    header_ids = _ids(tokenizer, case.header + "\n")
    needles = [_ids(tokenizer, " " + n.text) for n in case.needles]
    closing = _ids(tokenizer, "\n" + case.question + " " + case.answer)
    fixed = len(header_ids) + sum(map(len, needles)) + len(closing)
    n_filler = seq_len + 1 - fixed
    check(n_filler >= 0, "seq_len", seq_len, f"at least {fixed - 1} to hold a {spec.name} row")
    check(
        len(filler_tokens) >= n_filler,
        "filler_tokens",
        f"<{len(filler_tokens)} tokens>",
        f"at least {n_filler} tokens of filler",
    )
    start = rng.randrange(len(filler_tokens) - n_filler + 1)
    filler = np.asarray(filler_tokens[start : start + n_filler], dtype=np.int64)
    pieces, pos = [np.asarray(header_ids, dtype=np.int64)], 0
    for needle, ids in zip(case.needles, needles):
        at = max(pos, min(n_filler, round(needle.depth * n_filler)))
        pieces += [filler[pos:at], np.asarray(ids, dtype=np.int64)]
        pos = at
    pieces += [filler[pos:], np.asarray(closing, dtype=np.int64)]
    return torch.from_numpy(np.concatenate(pieces)), list(case.expected)


def check_retrieval_tasks(tasks: Any) -> list[str]:
    """``data.retrieval_tasks``: a non-empty list of ``"passkey"`` and task specs
    (:func:`cocattn.tasks.ruler.parse_task`), each once."""
    from cocattn.tasks.ruler import TASK_NAMES, parse_task

    check(
        isinstance(tasks, (list, tuple)) and len(tasks) > 0 and all(isinstance(t, str) for t in tasks),
        "data.retrieval_tasks",
        tasks,
        f"a non-empty list of {PASSKEY!r} and {', '.join(TASK_NAMES)}",
    )
    for task in tasks:
        if task != PASSKEY:
            try:
                parse_task(task)
            except ValueError as err:
                raise ValueError(f"data.retrieval_tasks: {err} (or {PASSKEY!r})") from None
    check(len(set(tasks)) == len(tasks), "data.retrieval_tasks", tasks, "each task once")
    return list(tasks)


def make_mixed_row(
    generator: torch.Generator,
    tokenizer: Tokenizer,
    filler_tokens: np.ndarray,
    seq_len: int,
    tasks: Sequence[str] | None,
) -> torch.Tensor:
    """A row of one of ``tasks`` (uniform; the passkey alone draws no task, so that the default
    ``["passkey"]`` gives the rows it always gave)."""
    if tasks is None or list(tasks) == [PASSKEY]:
        return make_retrieval_row(generator, tokenizer, filler_tokens, seq_len)[0]
    task = tasks[int(torch.randint(0, len(tasks), (1,), generator=generator).item())]
    if task == PASSKEY:
        return make_retrieval_row(generator, tokenizer, filler_tokens, seq_len)[0]
    return make_task_row(generator, tokenizer, filler_tokens, seq_len, task)[0]


def mix_retrieval_rows(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    tokenizer: Tokenizer,
    filler_tokens: np.ndarray,
    generator: torch.Generator,
    tasks: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each row of a batch ``(x, y)`` with a retrieval row with probability ``fraction``
    (a Bernoulli draw per row from ``generator``), of a task drawn uniformly from ``tasks``
    (default: the passkey alone); returns new tensors, inputs untouched."""
    check(
        isinstance(fraction, (int, float)) and 0.0 <= fraction <= 1.0,
        "retrieval_fraction",
        fraction,
        "a number in [0, 1]",
    )
    if fraction == 0:
        return x, y
    batch, seq_len = x.shape
    chosen = (torch.rand(batch, generator=generator) < fraction).nonzero().flatten().tolist()
    if not chosen:
        return x, y
    x, y = x.clone(), y.clone()
    for i in chosen:
        row = make_mixed_row(generator, tokenizer, filler_tokens, seq_len, tasks)
        x[i] = row[:-1]
        y[i] = row[1:]
    return x, y
