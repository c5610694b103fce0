"""Passkey retrieval: the paper's prompt (landmark-attention format, :mod:`cocattn.tasks.passkey`)
at chosen token lengths. Per case (seeded key, depths evenly spaced in (0, 1)): greedy generation
with the KV cache; ``correct`` = the key appears in the output (the paper's accuracy), ``exact`` =
the first number is the key, ``logprob`` = the mean log-probability of " <key>" after the prompt;
Wilson intervals per length and split. The protocol: docs/EVAL.md.
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from cocattn._checks import check_lengths_and_cases, check
from cocattn.evaluate.intervals import attach_intervals
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.memory import check_fits
from cocattn.evaluate.perplexity import default_lengths
from cocattn.evaluate.results import make_result
from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, check_confidence
from cocattn.tasks.passkey import ANSWER_PREFIX, FILLER, KEY_LINE, QUESTION, TASK
from cocattn.tasks.depth import DEPTH_BUCKETS, depth_bucket

__all__ = [
    "TASK",
    "FILLER",
    "KEY_LINE",
    "QUESTION",
    "ANSWER_PREFIX",
    "PasskeyPrompt",
    "build_prompt",
    "score_case",
    "score_cases",
    "evaluate_passkey",
]


_SENTENCES = [s.strip() + "." for s in FILLER.split(".") if s.strip()]


@dataclass
class PasskeyPrompt:
    """A built prompt: its text, token ids (with the model's ``begin_ids``) and where the key is."""

    text: str
    ids: list[int]
    key: int
    key_position: int
    """Token index where the key line starts."""
    depth: float
    """Share of the filler (haystack) placed before the key line: 0 = first, 1 = last."""


def _filler(words: int) -> list[str]:
    """Filler sentences holding ``words`` words in all; the last one may be cut short."""
    out, left, i = [], words, 0
    while left > 0:
        sentence = _SENTENCES[i % len(_SENTENCES)].split()
        out.append(" ".join(sentence[:left]))
        left -= len(sentence)
        i += 1
    return out


def _compose(words: int, depth: float, key: int) -> tuple[str, str, float]:
    """(text before the key line, full prompt text, share of the filler sentences before the key)."""
    sentences = _filler(words)
    whole = len(sentences) - (1 if sentences and not sentences[-1].endswith(".") else 0)
    k = min(whole, max(0, round(depth * whole)))
    before = "\n".join([TASK, " ".join(sentences[:k])]) if k else TASK
    after = " ".join(sentences[k:])
    body = "\n".join(part for part in (before, KEY_LINE.format(key=key), after) if part)
    return before + "\n", body + "\n" + QUESTION + " " + ANSWER_PREFIX, (k / whole if whole else depth)


def build_prompt(lm: LanguageModel, length: int, key: int, depth: float, tolerance: int = 4) -> PasskeyPrompt:
    """The passkey prompt for ``lm``'s tokenizer, ``length`` tokens (± ``tolerance``), key at ``depth``."""
    check(isinstance(key, int) and 0 <= key, "key", key, "a non-negative integer")
    check(0.0 <= depth <= 1.0, "depth", depth, "a number in [0, 1]")
    begin = lm.begin_ids

    def n_tokens(words: int) -> int:
        return len(begin) + len(lm.encode(_compose(words, depth, key)[1]))

    shortest = n_tokens(0)
    check(
        isinstance(length, int) and length >= shortest,
        "length",
        length,
        f"an integer >= {shortest} (the passkey prompt without filler)",
    )
    per_word = max(0.5, (n_tokens(40) - shortest) / 40)
    words, size = 0, shortest
    for _ in range(8):  # Newton-like steps on the (nearly linear) tokens-per-word curve
        step = int((length - size) / per_word)
        if step == 0:
            break
        words = max(0, words + step)
        size = n_tokens(words)
    while size > length and words > 0:  # then word by word: the largest prompt not above length
        words -= 1
        size = n_tokens(words)
    while True:
        nxt = n_tokens(words + 1)
        if nxt > length:
            break
        words, size = words + 1, nxt
    before, text, actual_depth = _compose(words, depth, key)
    ids = begin + lm.encode(text)
    if abs(len(ids) - length) > tolerance:
        raise ValueError(
            f"could not build a passkey prompt of {length} ± {tolerance} tokens (got {len(ids)}); raise the tolerance"
        )
    key_position = len(begin) + len(lm.encode(before))
    return PasskeyPrompt(text=text, ids=ids, key=key, key_position=key_position, depth=actual_depth)


def _answer_ids(lm: LanguageModel, prompt: PasskeyPrompt) -> list[int]:
    full = lm.begin_ids + lm.encode(prompt.text + " " + str(prompt.key))
    if full[: len(prompt.ids)] == prompt.ids:
        return full[len(prompt.ids) :]
    return lm.encode(" " + str(prompt.key))


def score_case(lm: LanguageModel, prompt: PasskeyPrompt, max_new_tokens: int = 64) -> dict[str, Any]:
    """Generate greedily after the prompt and score it; the per-case record."""
    return score_cases(lm, [prompt], max_new_tokens)[0]


def score_cases(
    lm: LanguageModel, prompts: Sequence[PasskeyPrompt], max_new_tokens: int = 64, rows: int = 1
) -> list[dict[str, Any]]:
    """:func:`score_case` for every prompt; prompts of the same token length are generated and
    scored together, up to ``rows`` at a time (speed only: the same records, up to
    floating-point ties)."""
    check(isinstance(rows, int) and rows >= 1, "rows", rows, "a positive integer")
    groups: dict[int, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(len(prompt.ids), []).append(i)
    records: list[dict[str, Any] | None] = [None] * len(prompts)
    for members in groups.values():
        for start in range(0, len(members), rows):
            chunk = members[start : start + rows]
            batch = [prompts[i] for i in chunk]
            generated = lm.generate_greedy_batch([p.ids for p in batch], max_new_tokens)
            for i, prompt, tokens, logprob in zip(chunk, batch, generated, _answer_logprobs(lm, batch)):
                output = lm.decode(tokens)
                numbers = re.findall(r"\d+", output)
                records[i] = {
                    "key": prompt.key,
                    "depth": round(prompt.depth, 4),
                    "key_position": prompt.key_position,
                    "tokens": len(prompt.ids),
                    "output": output,
                    "correct": str(prompt.key) in output,
                    "exact": bool(numbers) and numbers[0] == str(prompt.key),
                    "logprob": logprob,
                }
    return records  # type: ignore[return-value]


def _answer_logprobs(lm: LanguageModel, prompts: Sequence[PasskeyPrompt]) -> list[float]:
    """Mean log-probability of each prompt's answer tokens, teacher-forced, in one forward pass
    for prompts of one length (answers right-padded: causal attention keeps the padding out of
    every scored position)."""
    answers = [_answer_ids(lm, p) for p in prompts]
    n = len(prompts[0].ids)
    width = max(len(a) for a in answers)
    ids = torch.tensor([p.ids + a + a[-1:] * (width - len(a)) for p, a in zip(prompts, answers)])
    logits = lm.logits(ids, start=n - 1)[:, :width]
    logp = torch.log_softmax(logits.float(), -1)
    out = []
    for row, answer in enumerate(answers):
        picked = logp[row, : len(answer)].gather(-1, torch.tensor(answer, device=logp.device)[:, None])
        out.append(float(picked.mean()))
    return out


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def evaluate_passkey(
    lm: LanguageModel,
    lengths: Sequence[int] | None = None,
    *,
    cases: int = 100,
    max_new_tokens: int = 64,
    seed: int = 0,
    scaling: dict[str, Any] | None = None,
    tolerance: int = 4,
    max_memory: int | None = None,
    progress: bool = True,
    batch_tokens: int | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    """Passkey retrieval at each length; a result record (:mod:`.results`), values = accuracy.

    ``batch_tokens``: cases whose prompts have the same token length run together, up to that
    many tokens per batch (speed only, see :func:`score_cases`). ``confidence``: the level of the
    Wilson intervals (``ci95``)."""
    start = time.perf_counter()
    lengths = list(lengths) if lengths is not None else default_lengths(lm.training_length)
    _check_options(lengths, cases, max_new_tokens, batch_tokens, confidence)
    for n in lengths:  # every length's batch: short prompts run many rows at once
        check_fits(
            lm.dims(), n + max_new_tokens, _per_batch(n, cases, max_new_tokens, batch_tokens), lm.device, max_memory
        )

    with lm.rope_scaling(scaling):
        bar = tqdm(
            total=cases * len(lengths),
            disable=not progress,
            unit="case",
            desc=f"passkey {lm.name} [{scaling['rope_type'] if scaling else 'none'}]",
        )
        all_cases = []
        for length in lengths:
            prompts = _prompts(lm, length, cases, seed, tolerance)
            step = _per_batch(length, cases, max_new_tokens, batch_tokens)
            all_cases.append(_length_cases(lm, prompts, length, max_new_tokens, step, bar))
        bar.close()
        generation = lm.generation_mode
    settings = {
        "cases": cases,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "tolerance": tolerance,
        "answer_prefix": ANSWER_PREFIX,
    }
    if batch_tokens is not None:
        settings["batch_tokens"] = batch_tokens
    record = make_result(
        "passkey",
        lm,
        scaling,
        lengths,
        [_mean([r["correct"] for r in rows]) for rows in all_cases],
        counts=[len(rows) for rows in all_cases],
        settings=settings,
        details=_details(all_cases, generation),
        wall_s=time.perf_counter() - start,
    )
    return attach_intervals(record, confidence)


def _check_options(
    lengths: list[int], cases: int, max_new_tokens: int, batch_tokens: int | None, confidence: float
) -> None:
    """:func:`evaluate_passkey`'s options checked."""
    check_lengths_and_cases(lengths, cases)
    check(
        isinstance(max_new_tokens, int) and max_new_tokens > 0, "max_new_tokens", max_new_tokens, "a positive integer"
    )
    check(
        batch_tokens is None or (isinstance(batch_tokens, int) and batch_tokens >= 1),
        "batch_tokens",
        batch_tokens,
        "None or a positive integer",
    )
    check_confidence(confidence)


def _per_batch(n: int, cases: int, max_new_tokens: int, batch_tokens: int | None) -> int:
    """Cases of length ``n`` per batch: 1, or as many as fit in ``batch_tokens`` with their generation."""
    return 1 if batch_tokens is None else min(cases, max(1, batch_tokens // (n + max_new_tokens)))


def shortest_prompt(encode: Callable[[str], list[int]], length: int, cases: int, seed: int = 0) -> int:
    """Tokens (with ``encode``) of the longest of the prompts :func:`evaluate_passkey` builds at
    ``length`` (the same seeded keys), without filler: :func:`build_prompt` refuses a shorter
    ``length``. What ``cocattn reproduce`` checks its plan against before any work."""
    rng = random.Random(seed * 1_000_003 + length)
    keys = [rng.randint(10_000, 99_999) for _ in range(cases)]
    return max(len(encode(_compose(0, (i + 0.5) / cases, key)[1])) for i, key in enumerate(keys))


def _prompts(lm: LanguageModel, length: int, cases: int, seed: int, tolerance: int) -> list[PasskeyPrompt]:
    """The ``cases`` prompts of a length: seeded keys, depths evenly spaced in (0, 1)."""
    rng = random.Random(seed * 1_000_003 + length)
    return [build_prompt(lm, length, rng.randint(10_000, 99_999), (i + 0.5) / cases, tolerance) for i in range(cases)]


def _length_cases(
    lm: LanguageModel, prompts: list[PasskeyPrompt], length: int, max_new_tokens: int, step: int, bar: Any
) -> list[dict[str, Any]]:
    """The per-case records of one length, scored ``step`` cases at a time (with ``within_training``)."""
    l0 = lm.training_length
    rows = []
    for first in range(0, len(prompts), step):  # progress per batch; each call batches by exact length
        batch = prompts[first : first + step]
        for prompt, row in zip(batch, score_cases(lm, batch, max_new_tokens, step)):
            row["within_training"] = prompt.key_position >= len(prompt.ids) - l0
            rows.append(row)
        bar.update(len(batch))
        bar.set_postfix(length=length, acc=f"{sum(r['correct'] for r in rows) / len(rows):.2f}")
    return rows


def _details(all_cases: list[list[dict[str, Any]]], generation: str) -> dict[str, Any]:
    """The record's ``details``: exact-match rate, answer log-probability, accuracy by depth bucket
    and by whether the key lies within the training length, per length; and every case."""
    logprob = [_mean([r["logprob"] for r in rows]) for rows in all_cases]
    return {
        "exact": [_mean([r["exact"] for r in rows]) for rows in all_cases],
        "logprob": [None if x is None or not math.isfinite(x) else x for x in logprob],
        "by_depth": {
            b: [_mean([r["correct"] for r in rows if depth_bucket(r["depth"]) == b]) for rows in all_cases]
            for b in DEPTH_BUCKETS
        },
        "within_training": [_mean([r["correct"] for r in rows if r["within_training"]]) for rows in all_cases],
        "beyond_training": [_mean([r["correct"] for r in rows if not r["within_training"]]) for rows in all_cases],
        "generation": generation,
        "cases": all_cases,
    }
