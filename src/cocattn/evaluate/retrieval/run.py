"""The retrieval evaluation: every task at every length, prompts cached across calls, cases
decoded in batches of one token length."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Sequence

from tqdm.auto import tqdm

from cocattn._checks import check, check_choice, check_lengths_and_cases
from cocattn.errors import LengthTooShort
from cocattn.evaluate.memory import check_fits
from cocattn.evaluate.perplexity import default_lengths
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.retrieval.cases import case_record, generate_outputs
from cocattn.evaluate.retrieval.haystack import Haystack
from cocattn.evaluate.retrieval.prompts import DEFAULT_TOLERANCE, RetrievalPrompt, build_cwe_prompt, build_prompt
from cocattn.evaluate.retrieval.summary import score, task_record
from cocattn.tasks.ruler import TASK_METRIC, CweSpec, TaskSpec, parse_tasks, sample_case

__all__ = ["DEFAULT_SLACK", "evaluate_retrieval"]

DEFAULT_SLACK = 8
"""Tokens generated beyond the gold answer's length."""


def evaluate_retrieval(
    lm: LanguageModel,
    tasks: str | Sequence[str | TaskSpec] = "niah_single",
    lengths: Sequence[int] | None = None,
    *,
    cases: int = 100,
    seed: int = 0,
    scaling: dict[str, Any] | None = None,
    haystack: str = "repeat",
    documents: Sequence[str] | None = None,
    max_new_tokens: int | None = None,
    answer_slack: int = DEFAULT_SLACK,
    tolerance: int = DEFAULT_TOLERANCE,
    batch_tokens: int | None = None,
    max_memory: int | None = None,
    progress: bool = True,
    too_short: str = "error",
    prompt_cache: dict | None = None,
) -> list[dict[str, Any]]:
    """Every task at every length: ``cases`` prompts per task and length (seeded by seed, task and
    length; case depths evenly spaced in (0, 1)), each decoded greedily and scored
    (docs/RETRIEVAL.md).

    Args:
        tasks: ``"niah_single,vt:hops=2"``, ``"all"``, or a list of names / specs (:mod:`cocattn.tasks.ruler`).
        lengths: prompt + gold answer tokens (default: the training length × 1, 2, 4, 8, 16).
        haystack: ``"repeat"`` or ``"corpus"`` (from ``documents``).
        max_new_tokens: a fixed generation budget (default: each case's gold answer tokens +
            ``answer_slack``); ``batch_tokens`` decodes prompts of one token length together (speed only).
        too_short: ``"skip"`` leaves a length shorter than a task's fixed text unmeasured (value
            None, the reason in ``details["skipped"]``) instead of raising :class:`LengthTooShort`.
        prompt_cache: a dict kept by the caller: prompts built for the same tokenizer, task,
            length and seed are reused (e.g. across the scalings of one model).

    Returns:
        list[dict]: one result record per task (:mod:`cocattn.evaluate.results`, metric
        ``"retrieval"``, with ``"task"``): values = the task's score per length, ``ci95`` its
        Wilson 95% interval, every case in ``details["cases"]``.
    """
    check_choice("too_short", too_short, ("error", "skip"))
    specs = parse_tasks(tasks) if isinstance(tasks, str) else parse_tasks(list(tasks))
    lengths = list(lengths) if lengths is not None else default_lengths(lm.training_length)
    _check_options(lengths, cases, max_new_tokens, answer_slack, batch_tokens)
    run = _Run(
        hay=Haystack(haystack, documents),
        cases=cases,
        seed=seed,
        haystack=haystack,
        tolerance=tolerance,
        max_new_tokens=max_new_tokens,
        answer_slack=answer_slack,
        batch_tokens=batch_tokens,
    )
    for n in lengths:
        check_fits(lm.dims(), n + run.budget_guess, run.per_batch(n), lm.device, max_memory)
    with lm.rope_scaling(scaling):
        return [_evaluate_task(lm, spec, scaling, lengths, run, too_short, prompt_cache, progress) for spec in specs]


def _check_options(
    lengths: list[int], cases: int, max_new_tokens: int | None, answer_slack: int, batch_tokens: int | None
) -> None:
    """:func:`evaluate_retrieval`'s numeric options checked."""
    check_lengths_and_cases(lengths, cases)
    check(
        max_new_tokens is None or (isinstance(max_new_tokens, int) and max_new_tokens > 0),
        "max_new_tokens",
        max_new_tokens,
        "None or a positive integer",
    )
    check(isinstance(answer_slack, int) and answer_slack >= 0, "answer_slack", answer_slack, "an integer >= 0")
    check(
        batch_tokens is None or (isinstance(batch_tokens, int) and batch_tokens >= 1),
        "batch_tokens",
        batch_tokens,
        "None or a positive integer",
    )


@dataclass(frozen=True)
class _Run:
    """The options of one :func:`evaluate_retrieval` call that every task and length shares."""

    hay: Haystack
    cases: int
    seed: int
    haystack: str
    tolerance: int
    max_new_tokens: int | None
    answer_slack: int
    batch_tokens: int | None

    @property
    def budget_guess(self) -> int:
        """Generation tokens assumed per case when sizing batches (the budget itself is per case)."""
        return self.max_new_tokens or 64

    def per_batch(self, n: int) -> int:
        """Cases of length ``n`` decoded together: 1, or as many as fit in ``batch_tokens``."""
        return 1 if self.batch_tokens is None else min(self.cases, max(1, self.batch_tokens // (n + self.budget_guess)))

    def settings(self) -> dict[str, Any]:
        """The record's settings from these options."""
        return {
            "cases": self.cases,
            "seed": self.seed,
            "haystack": self.haystack,
            "tolerance": self.tolerance,
            "max_new_tokens": self.max_new_tokens,
            "answer_slack": self.answer_slack,
            "batch_tokens": self.batch_tokens,
        }


def _evaluate_task(
    lm: LanguageModel,
    spec: TaskSpec,
    scaling: dict[str, Any] | None,
    lengths: list[int],
    run: _Run,
    too_short: str,
    prompt_cache: dict | None,
    progress: bool,
) -> dict[str, Any]:
    """One task at every length: its result record (lengths too short for it skipped or raised,
    as ``too_short`` says)."""
    start = time.perf_counter()
    metric = TASK_METRIC[spec.name]
    bar = tqdm(
        total=run.cases * len(lengths),
        disable=not progress,
        unit="case",
        desc=f"{spec.name} {lm.name} [{scaling['rope_type'] if scaling else 'none'}]",
    )
    per_length: list[list[dict[str, Any]]] = []
    skipped: dict[int, str] = {}
    for length in lengths:
        try:
            prompts = _cached_prompts(lm, spec, length, run, prompt_cache)
        except LengthTooShort as err:
            if too_short == "error":
                raise
            skipped[length] = str(err)
            per_length.append([])
            bar.update(run.cases)
            continue
        per_length.append(_length_cases(lm, prompts, length, metric, run, bar))
    bar.close()
    return task_record(
        lm,
        spec,
        scaling,
        lengths,
        per_length,
        metric,
        time.perf_counter() - start,
        settings=run.settings(),
        skipped=skipped,
    )


def _cached_prompts(
    lm: LanguageModel, spec: TaskSpec, length: int, run: _Run, prompt_cache: dict | None
) -> list[RetrievalPrompt]:
    """The task's prompts at a length, from ``prompt_cache`` when it holds them (stored there when built)."""
    key = (lm, spec, length, run.seed, run.cases, run.haystack, run.tolerance)
    prompts = prompt_cache.get(key) if prompt_cache is not None else None
    if prompts is None:
        prompts = _prompts(lm, spec, length, run.cases, run.seed, run.hay, run.tolerance)
    if prompt_cache is not None:
        prompt_cache[key] = prompts
    return prompts


def _length_cases(
    lm: LanguageModel, prompts: list[RetrievalPrompt], length: int, metric: str, run: _Run, bar: Any
) -> list[dict[str, Any]]:
    """The case records of one task at one length, decoded ``run.per_batch(length)`` cases at a time."""
    budgets = [run.max_new_tokens or len(p.answer_ids) + run.answer_slack for p in prompts]
    step = run.per_batch(length)
    rows: list[dict[str, Any]] = []
    for first in range(0, run.cases, step):
        chunk = range(first, min(run.cases, first + step))
        outputs = generate_outputs(lm, [prompts[i] for i in chunk], [budgets[i] for i in chunk], step)
        rows += [
            case_record(prompts[i], out, lm, budgets[i], lm.training_length).to_dict() for i, out in zip(chunk, outputs)
        ]
        bar.update(len(chunk))
        bar.set_postfix(length=length, score=f"{score(rows, metric):.2f}")
    return rows


def _prompts(
    lm: LanguageModel, spec: TaskSpec, length: int, cases: int, seed: int, hay: Haystack, tolerance: int
) -> list[RetrievalPrompt]:
    """The ``cases`` prompts of a task at a length (seeded by seed, task and length; depths stratified)."""
    rng = random.Random(f"{seed}:{spec.name}:{length}")
    if isinstance(spec, CweSpec):
        return [build_cwe_prompt(lm, spec, length, rng, tolerance) for _ in range(cases)]
    return [
        build_prompt(lm, sample_case(spec, rng, (i + 0.5) / cases), length, hay, rng, tolerance) for i in range(cases)
    ]
