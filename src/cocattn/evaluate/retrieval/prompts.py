"""Retrieval prompts of an exact token length: the task's needles placed in a haystack (or cwe's
word list) cut so that prompt and gold answer fill ``length - tolerance`` to ``length`` tokens."""

from __future__ import annotations

import bisect
import dataclasses
import random
from dataclasses import dataclass, field
from typing import Callable

from cocattn._checks import bad_value, check
from cocattn.errors import LengthTooShort
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.retrieval.haystack import Haystack, sentence_boundaries
from cocattn.tasks.ruler import CweSpec, TaskCase, cwe_case, cwe_list, cwe_words

__all__ = ["DEFAULT_TOLERANCE", "RetrievalPrompt", "build_prompt", "build_cwe_prompt"]

DEFAULT_TOLERANCE = 4
"""A prompt holds between ``length - 4`` and ``length`` tokens (it is exact in almost every case)."""


@dataclass
class RetrievalPrompt:
    """A built prompt: text, token ids (with ``begin_ids``), the gold answer's ids, where the needles are."""

    task: str
    target: int
    """The requested length: prompt + gold answer tokens, at most this many."""
    text: str
    ids: list[int]
    answer: str
    answer_ids: list[int]
    expected: list[str]
    distractors: list[str]
    needle_roles: list[str] = field(default_factory=list)
    needle_depths: list[float] = field(default_factory=list)
    """Share of the haystack's whole sentences before each needle."""
    needle_positions: list[int] = field(default_factory=list)
    """Token index where each needle starts."""
    depth: float | None = None
    """The case's depth (its first required needle's); None for cwe."""
    haystack: str = ""
    haystack_wrapped: bool = False

    @property
    def tokens(self) -> int:
        return len(self.ids) + len(self.answer_ids)


def _answer_ids(lm: LanguageModel, prompt_text: str, prompt_ids: list[int], answer: str) -> list[int]:
    full = lm.begin_ids + lm.encode(prompt_text + " " + answer)
    if full[: len(prompt_ids)] == prompt_ids:
        return full[len(prompt_ids) :]
    return lm.encode(" " + answer)


def _place(case: TaskCase, hay: str, bounds: list[int], chars: int) -> tuple[str, list[int], list[float]]:
    """Prompt text with ``hay[:chars]`` as the haystack, the needles' character offsets in it and
    their depths."""
    whole = bisect.bisect_right(bounds, chars)
    body, pos, starts, depths = case.header + "\n", 0, [], []
    for needle in case.needles:
        k = min(whole, max(0, round(needle.depth * whole)))
        offset = bounds[k - 1] if k else 0
        body += hay[pos:offset]
        if not body.endswith(("\n", " ")):
            body += " "
        starts.append(len(body))
        body += needle.text
        depths.append(k / whole if whole else 0.0)
        pos = offset
    rest = hay[pos:chars].rstrip()
    if rest:
        body += rest if rest[0].isspace() else " " + rest
    return body + "\n" + case.question, starts, depths


def _fit(size: Callable[[int], int], lo: int, hi: int, length: int) -> int:
    """The largest ``c`` in [lo, hi] with ``size(c) <= length``, assuming ``size`` nearly monotone
    (binary search, then a short scan upwards for a closer fit)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(mid) <= length:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _too_short(task: str, length: int, shortest: int) -> ValueError:
    return LengthTooShort(
        bad_value(
            "length",
            length,
            f"an integer >= {shortest} for {task}: its fixed text (header, needles, "
            "question and gold answer) alone takes that many tokens with this tokenizer "
            "(fewer keys, values or hops make it shorter)",
        )
    )


def build_prompt(
    lm: LanguageModel,
    case: TaskCase,
    length: int,
    haystack: Haystack | None = None,
    rng: random.Random | None = None,
    tolerance: int = DEFAULT_TOLERANCE,
) -> RetrievalPrompt:
    """The prompt of a needle or tracking ``case`` (:func:`cocattn.tasks.ruler.sample_case`) for
    ``lm``'s tokenizer: header, ``haystack`` (default ``repeat``; ``rng`` seeds where a corpus one
    starts) cut at character granularity with the needles at their depths, question
    (docs/RETRIEVAL.md).

    Returns:
        RetrievalPrompt: ``ids`` and ``answer_ids`` together ``length - tolerance`` to ``length`` tokens.

    Raises:
        LengthTooShort: the case's fixed text alone is longer than ``length``; ValueError: no cut
        of the haystack comes within ``tolerance``.
    """
    haystack = haystack or Haystack("repeat")
    rng = rng or random.Random(0)
    check(isinstance(tolerance, int) and tolerance >= 0, "tolerance", tolerance, "an integer >= 0")
    begin = lm.begin_ids

    def size(text: str) -> int:
        return len(begin) + len(lm.encode(text + " " + case.answer))

    check(isinstance(length, int) and length > 0, "length", length, "a positive integer")
    shortest = size(_place(case, "", [], 0)[0])
    if shortest > length:
        raise _too_short(case.task, length, shortest)
    chars = length * 8 + 200
    while True:
        hay, source, fresh = haystack.text(random.Random(rng.random()), chars)
        bounds = sentence_boundaries(hay)
        best = _fit(lambda c: size(_place(case, hay, bounds, c)[0]), 0, len(hay), length)  # noqa: B023 (called here)
        if best < len(hay):
            break
        chars *= 2  # a tokenizer with more characters per token than guessed: more haystack
    current = size(_place(case, hay, bounds, best)[0])
    for c in range(best + 1, min(len(hay), best + 12) + 1):  # nearly monotone: look a little further
        if current == length:
            break
        n = size(_place(case, hay, bounds, c)[0])
        if current < n <= length:
            best, current = c, n
    text, starts, depths = _place(case, hay, bounds, best)
    ids = begin + lm.encode(text)
    answer_ids = _answer_ids(lm, text, ids, case.answer)
    while len(ids) + len(answer_ids) > length and best > 0:  # joint and separate tokenisation may differ
        best -= 1
        text, starts, depths = _place(case, hay, bounds, best)
        ids = begin + lm.encode(text)
        answer_ids = _answer_ids(lm, text, ids, case.answer)
    total = len(ids) + len(answer_ids)
    if total > length or length - total > tolerance:
        raise ValueError(
            f"could not build a {case.task} prompt of {length} tokens within {tolerance} (got {total}); "
            "raise the tolerance"
        )
    positions = [len(begin) + len(lm.encode(text[:s].rstrip(" "))) for s in starts]  # a space joins the next word
    first = next((d for n, d in zip(case.needles, depths) if n.anchor), None)
    return RetrievalPrompt(
        task=case.task,
        target=length,
        text=text,
        ids=ids,
        answer=case.answer,
        answer_ids=answer_ids,
        expected=list(case.expected),
        distractors=list(case.distractors),
        needle_roles=[n.role for n in case.needles],
        needle_depths=[round(d, 4) for d in depths],
        needle_positions=positions,
        depth=first,
        haystack=source,
        haystack_wrapped=best > fresh,
    )


def build_cwe_prompt(
    lm: LanguageModel, spec: CweSpec, length: int, rng: random.Random, tolerance: int = DEFAULT_TOLERANCE
) -> RetrievalPrompt:
    """A cwe prompt of ``length - tolerance`` to ``length`` tokens with the gold answer: as many
    uncommon words as fit, then words lengthened by a syllable until the length is reached.

    Returns:
        RetrievalPrompt: the numbered word list; ``expected`` = the common words in the order
        they first appear (the gold answer, joined by ", ").

    Raises:
        LengthTooShort: the list of the common words alone is longer than ``length``.
        ValueError: no list comes within ``tolerance``.
    """
    spec = dataclasses.replace(spec)
    spec.validate()
    check(isinstance(length, int) and length > 0, "length", length, "a positive integer")
    common_repeats, uncommon_repeats = spec.repeats(length)
    seed = rng.getrandbits(63)
    begin = lm.begin_ids
    pool = cwe_words(random.Random(seed), spec.common + max(16, length // 2))
    header, question = cwe_case(spec)

    def text_of(words: list[str]) -> tuple[str, list[str]]:
        """The prompt text and the common words in the order they first appear (the gold order)."""
        entries = cwe_list(words, spec.common, common_repeats, uncommon_repeats, seed)
        common = set(words[: spec.common])
        order = list(dict.fromkeys(w for w in entries if w in common))
        return header + "\n" + " ".join(f"{i + 1}. {w}" for i, w in enumerate(entries)) + "\n" + question, order

    def size(words: list[str]) -> int:
        text, order = text_of(words)
        return len(begin) + len(lm.encode(text + " " + ", ".join(order)))

    shortest = size(pool[: spec.common])
    if shortest > length:
        raise _too_short(spec.name, length, shortest)
    n = _fit(lambda k: size(pool[: spec.common + k]), 0, len(pool) - spec.common, length)
    words = pool[: spec.common + n]
    taken, extra = set(pool), random.Random(seed + 1)
    for i in range(len(words) - 1, spec.common - 1, -1):  # fill the last tokens: longer uncommon words
        if length - size(words) == 0 or i < len(words) - 4 * (tolerance + 4):
            break
        longer = words[i] + extra.choice("bdfgklmnprstvz") + extra.choice("aeiou")
        if longer not in taken and size(words[:i] + [longer] + words[i + 1 :]) <= length:
            taken.add(longer)
            words = words[:i] + [longer] + words[i + 1 :]
    text, expected = text_of(words)
    answer = ", ".join(expected)
    ids = begin + lm.encode(text)
    answer_ids = _answer_ids(lm, text, ids, answer)
    total = len(ids) + len(answer_ids)
    if total > length or length - total > tolerance:
        raise ValueError(
            f"could not build a cwe prompt of {length} tokens within {tolerance} (got {total}); raise the tolerance"
        )
    return RetrievalPrompt(
        task=spec.name,
        target=length,
        text=text,
        ids=ids,
        answer=answer,
        answer_ids=answer_ids,
        expected=expected,
        distractors=[],
        haystack="word list",
    )
