"""One case generated and scored: greedy continuations of built prompts, and the per-case
record the result JSON keeps."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.retrieval.prompts import RetrievalPrompt
from cocattn.tasks.ruler import score_answer

__all__ = ["CaseRecord", "case_record", "generate_outputs"]


@dataclass
class CaseRecord:
    """What the result JSON keeps of one case (``to_dict`` / ``from_dict`` round-trip)."""

    task: str
    length: int
    """Requested length (prompt + gold answer)."""
    tokens: int
    """Prompt + gold answer tokens actually built."""
    prompt_tokens: int
    answer_tokens: int
    shortfall: int
    """``length - tokens`` (0 to the tolerance)."""
    depth: float | None
    needle_depths: list[float]
    needle_positions: list[int]
    needle_roles: list[str]
    expected: list[str]
    distractors: list[str]
    gold: str
    output: str
    answer: str
    """The scored answer line of ``output``."""
    found: list[bool]
    distractors_found: list[str]
    recall: float
    correct: bool
    output_truncated: bool
    within_training: bool
    """Every required needle lies within the last training-length tokens of the prompt."""
    haystack: str
    haystack_wrapped: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CaseRecord":
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data)
        if missing:
            raise ValueError(f"a retrieval case record without {sorted(missing)}")
        return cls(**{k: data[k] for k in names})


def case_record(prompt: RetrievalPrompt, tokens: list[int], lm: LanguageModel, budget: int, l0: int) -> CaseRecord:
    """One case scored (:func:`cocattn.tasks.ruler.score_answer`) from its generated ``tokens``.

    Args:
        budget: the tokens the generation was allowed (``output_truncated`` when it used them all
            before a line break or end of text).
        l0: the training length (``within_training``: every required needle in the last ``l0``
            tokens of the prompt).

    Returns:
        CaseRecord: the prompt's sizes and needles, the output and its scores.
    """
    output = lm.decode(tokens)
    scored = score_answer(output, prompt.expected, prompt.distractors)
    stopped = (lm.eos_id is not None and lm.eos_id in tokens) or "\n" in output.lstrip()
    targets = [p for p, r in zip(prompt.needle_positions, prompt.needle_roles) if r == "target"]
    return CaseRecord(
        task=prompt.task,
        length=prompt.target,
        tokens=prompt.tokens,
        prompt_tokens=len(prompt.ids),
        answer_tokens=len(prompt.answer_ids),
        shortfall=prompt.target - prompt.tokens,
        depth=None if prompt.depth is None else round(prompt.depth, 4),
        needle_depths=prompt.needle_depths,
        needle_positions=prompt.needle_positions,
        needle_roles=prompt.needle_roles,
        expected=prompt.expected,
        distractors=prompt.distractors,
        gold=prompt.answer,
        output=output,
        answer=scored["answer"],
        found=scored["found"],
        distractors_found=scored["distractors_found"],
        recall=scored["recall"],
        correct=scored["correct"],
        output_truncated=len(tokens) >= budget and not stopped,
        within_training=all(p >= len(prompt.ids) - l0 for p in targets),
        haystack=prompt.haystack,
        haystack_wrapped=prompt.haystack_wrapped,
    )


def generate_outputs(
    lm: LanguageModel, prompts: Sequence[RetrievalPrompt], budgets: Sequence[int], rows: int
) -> list[list[int]]:
    """Greedy continuations of ``prompts``, those of one token length decoded together (up to
    ``rows`` at a time, each for the largest budget among them, then cut to its own).

    Returns:
        list[list[int]]: per prompt, in order, at most ``budgets[i]`` new token ids.
    """
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p.ids), []).append(i)
    out: list[list[int]] = [[] for _ in prompts]
    for members in groups.values():
        for start in range(0, len(members), rows):
            chunk = members[start : start + rows]
            steps = max(budgets[i] for i in chunk)
            for i, tokens in zip(chunk, lm.generate_greedy_batch([prompts[i].ids for i in chunk], steps)):
                out[i] = tokens[: budgets[i]]
    return out
