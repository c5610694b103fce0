"""The retrieval suite: RULER-style tasks (:mod:`cocattn.tasks.ruler`) at exact token lengths.

Prompt layout, one part per line::

    <task header>
    <haystack with the needles at their depths>          (cwe: the numbered word list)
    <question> <answer prefix>

**Length.** A prompt built for ``length`` tokens holds the model's own ``begin_ids``, the prompt
and the gold answer (tokenised after the prompt) in at most ``length`` tokens, and at least
``length - tolerance``: at ``length`` = the training length the whole case, answer included, lies
in the trained window (RULER counts the generation budget in the length the same way; the
passkey evaluator counts the prompt only). The haystack is cut at character granularity (the last
sentence may be cut short), so the length is hit exactly in almost every case; each case records
its token count and its *shortfall* (``length`` minus the tokens), and a prompt that cannot come
within ``tolerance`` is an error, never a silent truncation.

**Haystack.** ``repeat``: the paper's sentences ("The grass is green. ..."); ``corpus``: real
text from held-out documents (whitespace collapsed), from a seeded document and sentence,
continuing into the next documents when one ends (a case that needs more text than all documents
hold reuses them and says so: ``haystack_wrapped``). Needles go after the whole sentence nearest
their depth; a needle's depth is the share of the haystack's whole sentences before it.

**Cases.** Per task and length, ``cases`` cases from a generator seeded with (seed, task,
length); the case depths (of each case's first required needle) are evenly spaced in (0, 1), so
the four depth buckets hold equal shares. Greedy decoding with the KV cache (as passkey), for at
most the gold answer's tokens plus ``answer_slack`` (or ``max_new_tokens``) tokens; scoring is
:func:`cocattn.tasks.ruler.score_answer`. A case whose generation hit that budget before a
line break is flagged ``output_truncated`` (its answer line may be cut).

**Scores.** Per task and length: the task's metric (:data:`~cocattn.tasks.ruler.TASK_METRIC`)
with a Wilson 95% interval (:func:`cocattn.evaluate.stats.wilson_interval`; for ``recall`` the
trials are the required values, which within a case are not independent: that interval is too
narrow). :func:`effective_length` turns a curve into the largest length whose lower bound stays
above a threshold.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from tqdm.auto import tqdm

from cocattn._checks import check_lengths_and_cases, bad_value, check, check_choice
from cocattn.errors import LengthTooShort
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.memory import check_fits
from cocattn.evaluate.perplexity import default_lengths
from cocattn.evaluate.results import make_result
from cocattn.evaluate.stats import wilson_interval
from cocattn.tasks.passkey import FILLER
from cocattn.tasks.ruler import (
    METRIC_TEXT,
    SCORING,
    TASK_METRIC,
    CweSpec,
    TaskCase,
    TaskSpec,
    cwe_case,
    cwe_list,
    cwe_words,
    parse_tasks,
    sample_case,
    score_answer,
    spec_options,
)
from cocattn.tasks.depth import DEPTH_BUCKETS, depth_bucket

__all__ = [
    "HAYSTACKS",
    "LengthTooShort",
    "Haystack",
    "RetrievalPrompt",
    "CaseRecord",
    "build_prompt",
    "build_cwe_prompt",
    "evaluate_retrieval",
    "effective_length",
    "DEFAULT_TOLERANCE",
    "DEFAULT_SLACK",
]

HAYSTACKS = ("repeat", "corpus")
DEFAULT_TOLERANCE = 4
"""A prompt holds between ``length - 4`` and ``length`` tokens (it is exact in almost every case)."""
DEFAULT_SLACK = 8
"""Tokens generated beyond the gold answer's length."""

_SENTENCE_END = re.compile(r"[.!?](?=\s)")
_MAX_GAP = 200  # characters without a sentence end get word boundaries, so depths stay fine-grained


# ---------------------------------------------------------------------------------------------
# Haystacks


class Haystack:
    """Filler text to hide needles in: ``repeat`` (the paper's sentences) or ``corpus`` (documents)."""

    def __init__(self, kind: str = "repeat", documents: Sequence[str] | None = None):
        check_choice("haystack", kind, HAYSTACKS)
        self.kind = kind
        self.documents: list[str] = []
        if kind == "corpus":
            check(
                documents is not None and len(documents) > 0,
                "documents",
                documents,
                "held-out documents for haystack='corpus' (e.g. --data DIR)",
            )
            self.documents = [" ".join(d.split()) for d in documents]
            self.documents = [d for d in self.documents if d]
            check(len(self.documents) > 0, "documents", "<all empty>", "documents with text")

    def text(self, rng: random.Random, chars: int) -> tuple[str, str, int]:
        """At least ``chars`` characters of filler, a label of where it starts, and how many of its
        first characters are fresh (the rest reuses documents already read: the corpus ran out)."""
        if self.kind == "repeat":
            reps = chars // len(FILLER) + 2
            text = " ".join([FILLER] * reps)
            return text, "repeat", len(text)
        first = rng.randrange(len(self.documents))
        doc = self.documents[first]
        match = _SENTENCE_END.search(doc, rng.randrange(len(doc)))  # begin at a sentence start
        start = match.end() + 1 if match and match.end() + 1 < len(doc) else 0
        parts, size, i, fresh = [doc[start:]], len(doc) - start, first, None
        while size < chars:  # continue into the next documents, reusing them if they run out
            i = (i + 1) % len(self.documents)
            if i == first and fresh is None:
                fresh = size
            parts.append(self.documents[i])
            size += len(parts[-1]) + 1
        text = " ".join(parts)
        return text, f"document {first} from character {start}", len(text) if fresh is None else fresh


def _boundaries(text: str) -> list[int]:
    """Character offsets just after each whole sentence (plus word ends in long runs without one)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    out, last = [], 0
    for end in ends + [len(text)]:
        while end - last > _MAX_GAP:  # a long run: word boundaries every ~_MAX_GAP characters
            space = text.rfind(" ", last + 1, last + _MAX_GAP)
            if space <= last:
                space = text.find(" ", last + _MAX_GAP)
                if space == -1 or space >= end:
                    break
            out.append(space)
            last = space
        if end < len(text):
            out.append(end)
            last = end
    return out


# ---------------------------------------------------------------------------------------------
# Prompts


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


def _fit(size, lo: int, hi: int, length: int) -> int:
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
    """The prompt of a haystack-task ``case`` for ``lm``'s tokenizer: ``length - tolerance`` to
    ``length`` tokens with the gold answer (see the module docstring)."""
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
        bounds = _boundaries(hay)
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
    uncommon words as fit, then words lengthened by a syllable until the length is reached."""
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


# ---------------------------------------------------------------------------------------------
# Per-case records


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


def _record(prompt: RetrievalPrompt, tokens: list[int], lm: LanguageModel, budget: int, l0: int) -> CaseRecord:
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


def _generate(
    lm: LanguageModel, prompts: Sequence[RetrievalPrompt], budgets: Sequence[int], rows: int
) -> list[list[int]]:
    """Greedy continuations, prompts of one token length decoded together (up to ``rows``)."""
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


# ---------------------------------------------------------------------------------------------
# Summaries


def _score_counts(rows: Sequence[dict[str, Any]], metric: str) -> tuple[int, int]:
    """(successes, trials) of a task's metric over case records."""
    if metric == "correct":
        return sum(bool(r["correct"]) for r in rows), len(rows)
    return sum(sum(r["found"]) for r in rows), sum(len(r["found"]) for r in rows)


def _score(rows: Sequence[dict[str, Any]], metric: str) -> float | None:
    successes, trials = _score_counts(rows, metric)
    return successes / trials if trials else None


def effective_length(
    lengths: Sequence[int], lows: Sequence[float | None], reference: float | None, ratio: float = 0.8
) -> tuple[int | None, float | None]:
    """``(effective length, threshold)``: the largest evaluated length up to which every
    evaluated length's lower confidence bound is above ``threshold = ratio × reference`` (None
    when the shortest already is not, or when there is no reference score)."""
    check(isinstance(ratio, (int, float)) and 0 < ratio <= 1, "ratio", ratio, "a number in (0, 1]")
    check(len(lengths) == len(lows), "lows", list(lows), f"one lower bound per length ({len(lengths)})")
    if reference is None:
        return None, None
    threshold = ratio * reference
    best = None
    for n, low in sorted(zip(lengths, lows), key=lambda x: x[0]):
        if low is None or low <= threshold:
            break
        best = n
    return best, threshold


# ---------------------------------------------------------------------------------------------
# The evaluation


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
    """Every task at every length; one result record per task (:mod:`.results`, metric
    ``"retrieval"`` with ``"task"``), values = the task's score (see the module docstring).

    ``max_new_tokens`` fixes the generation budget (default: each case's gold answer tokens +
    ``answer_slack``); ``batch_tokens`` decodes prompts of one token length together (speed only).
    ``too_short="skip"`` leaves a length shorter than a task's fixed text unmeasured (value None,
    the reason in ``details["skipped"]``) instead of failing. ``prompt_cache`` (a dict kept by the
    caller) reuses prompts built for the same tokenizer, task, length and seed (e.g. across the
    scalings of one model)."""
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
    return _task_record(
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
        outputs = _generate(lm, [prompts[i] for i in chunk], [budgets[i] for i in chunk], step)
        rows += [
            _record(prompts[i], out, lm, budgets[i], lm.training_length).to_dict() for i, out in zip(chunk, outputs)
        ]
        bar.update(len(chunk))
        bar.set_postfix(length=length, score=f"{_score(rows, metric):.2f}")
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


def _task_record(
    lm: LanguageModel,
    spec: TaskSpec,
    scaling: dict[str, Any] | None,
    lengths: list[int],
    per_length: list[list[dict[str, Any]]],
    metric: str,
    wall_s: float,
    settings: dict[str, Any],
    skipped: dict[int, str] | None = None,
) -> dict:
    """A task's result record from its case records per length (empty: a length skipped as too short)."""
    intervals = _intervals(per_length, metric)
    values, lows, highs = intervals["values"], intervals["ci_low"], intervals["ci_high"]
    settings = {
        "task": spec.name,
        "options": spec_options(spec),
        **settings,
        "length_counts": "prompt and gold answer tokens (begin_ids included)",
    }
    record = make_result(
        "retrieval",
        lm,
        scaling,
        lengths,
        values,
        counts=[len(r) for r in per_length],
        settings=settings,
        details=_task_details(lm, spec, per_length, metric, intervals, skipped),
        wall_s=wall_s,
    )
    record["task"] = spec.name
    record["ci95"] = [None if lo is None else [lo, hi] for lo, hi in zip(lows, highs)]  # Wilson, as passkey's
    record["settings"].setdefault("confidence", 0.95)
    return record


def _intervals(per_length: list[list[dict[str, Any]]], metric: str) -> dict[str, list]:
    """Per length: score, Wilson 95% bounds, successes and trials (None, None, None, 0, 0 for a
    length without cases)."""
    values, lows, highs, successes, trials = [], [], [], [], []
    for rows in per_length:
        s, n = _score_counts(rows, metric)
        if n == 0:  # a length skipped as too short
            for out in (values, lows, highs):
                out.append(None)
            successes.append(0)
            trials.append(0)
            continue
        low, high = wilson_interval(s, n)
        values.append(s / n)
        lows.append(low)
        highs.append(high)
        successes.append(s)
        trials.append(n)
    return {"values": values, "ci_low": lows, "ci_high": highs, "successes": successes, "trials": trials}


def _task_details(
    lm: LanguageModel,
    spec: TaskSpec,
    per_length: list[list[dict[str, Any]]],
    metric: str,
    intervals: dict[str, list],
    skipped: dict[int, str] | None,
) -> dict[str, Any]:
    """A task record's ``details``: the scoring, intervals, splits by depth and training window,
    prompt and output truncation counts, and every case, per length."""

    def mean(rows: list[dict[str, Any]], key: str) -> float | None:
        return sum(float(r[key]) for r in rows) / len(rows) if rows else None

    has_depth = not isinstance(spec, CweSpec)
    return {
        "metric": metric,
        "metric_definition": METRIC_TEXT[metric],
        "scoring": SCORING,
        "successes": intervals["successes"],
        "trials": intervals["trials"],
        "ci_low": intervals["ci_low"],
        "ci_high": intervals["ci_high"],
        "confidence": 0.95,
        "correct": [mean(rows, "correct") for rows in per_length],
        "recall": [mean(rows, "recall") for rows in per_length],
        "by_depth": (
            {
                b: [_score([r for r in rows if depth_bucket(r["depth"]) == b], metric) for rows in per_length]
                for b in DEPTH_BUCKETS
            }
            if has_depth
            else None
        ),
        "within_training": [_score([r for r in rows if r["within_training"]], metric) for rows in per_length],
        "beyond_training": [_score([r for r in rows if not r["within_training"]], metric) for rows in per_length],
        "short_prompts": [sum(r["shortfall"] > 0 for r in rows) for rows in per_length],
        "max_shortfall": [max((r["shortfall"] for r in rows), default=0) for rows in per_length],
        "truncated_outputs": [sum(r["output_truncated"] for r in rows) for rows in per_length],
        "wrapped_haystacks": [sum(r["haystack_wrapped"] for r in rows) for rows in per_length],
        "generation": lm.generation_mode,
        "skipped": {str(n): reason for n, reason in (skipped or {}).items()},
        "cases": per_length,
    }
