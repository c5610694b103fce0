"""Random cases of the RULER-style tasks: a haystack task's fixed text and needles at their depths
(the haystack itself is the caller's), and common-word extraction's word list."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Callable

from cocattn._checks import bad_value, check
from cocattn.tasks.ruler.specs import CweSpec, NiahSpec, TaskSpec, VtSpec
from cocattn.tasks.ruler.wording import (
    CWE_HEADER,
    CWE_QUESTION,
    KEY_WORDS,
    NIAH_HEADER,
    NIAH_NEEDLE,
    NIAH_QUESTION_MANY,
    NIAH_QUESTION_ONE,
    VT_FIRST,
    VT_HEADER,
    VT_LINK,
    VT_QUESTION,
)

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass
class Needle:
    """A sentence hidden in the haystack: ``role`` is ``target`` (holds a required value),
    ``distractor`` or ``link`` (a variable-tracking assignment); ``depth`` is where it is asked to
    go (share of the haystack before it)."""

    text: str
    role: str
    depth: float
    anchor: bool = False
    """The needle placed at the case's depth (its first required one)."""


@dataclass
class TaskCase:
    """One case of a haystack task, without the haystack: the fixed text and the needles."""

    task: str
    header: str
    needles: list[Needle]
    """In the order they appear (sorted by depth; a chain keeps its order)."""
    question: str
    """The question and the answer prefix; the answer follows after a space."""
    answer: str
    """The gold answer text (what the warm-up trains, and what the length budget counts)."""
    expected: list[str]
    distractors: list[str]
    depth: float
    """The case's depth: that of its first required needle."""


def _number(rng: random.Random, digits: int) -> str:
    return str(rng.randint(10 ** (digits - 1), 10**digits - 1))


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _distinct(rng: random.Random, n: int, draw: Callable[[], str], taken: set[str] | None = None) -> list[str]:
    taken = set() if taken is None else taken
    out: list[str] = []
    while len(out) < n:
        item = draw()
        if item not in taken:
            taken.add(item)
            out.append(item)
    return out


def sample_case(spec: TaskSpec, rng: random.Random, depth: float) -> TaskCase:
    """A random case of a haystack task (niah or vt) whose first required needle sits at ``depth``;
    the other needles get random depths (a chain's links follow its first assignment)."""
    check(0.0 <= depth <= 1.0, "depth", depth, "a number in [0, 1]")
    if isinstance(spec, NiahSpec):
        return _niah_case(spec, rng, depth)
    if isinstance(spec, VtSpec):
        return _vt_case(spec, rng, depth)
    raise bad_value("task", spec.name, "a haystack task (niah_* or vt); cwe has no needles: use cwe_case")


def _niah_case(spec: NiahSpec, rng: random.Random, depth: float) -> TaskCase:
    keys = rng.sample(KEY_WORDS, spec.keys)
    numbers = _distinct(rng, spec.keys * spec.values, lambda: _number(rng, spec.digits))
    values = [numbers[i * spec.values : (i + 1) * spec.values] for i in range(spec.keys)]
    asked = rng.sample(range(spec.keys), spec.queries)
    needles = []
    first = True
    for i in asked:  # the first required needle is at the case's depth, the rest anywhere
        for v in values[i]:
            needles.append(
                Needle(
                    NIAH_NEEDLE.format(key=keys[i], value=v), "target", depth if first else rng.random(), anchor=first
                )
            )
            first = False
    for i in range(spec.keys):
        if i not in asked:
            for v in values[i]:
                needles.append(Needle(NIAH_NEEDLE.format(key=keys[i], value=v), "distractor", rng.random()))
    needles.sort(key=lambda n: n.depth)
    order = {n.text: j for j, n in enumerate(needles)}  # a key's values are answered in reading order
    for i in asked:
        values[i].sort(key=lambda v: order[NIAH_NEEDLE.format(key=keys[i], value=v)])
    query = _join([keys[i] for i in asked])
    expected = [v for i in asked for v in values[i]]
    template = NIAH_QUESTION_ONE if len(expected) == 1 else NIAH_QUESTION_MANY
    return TaskCase(
        task=spec.name,
        header=NIAH_HEADER,
        needles=needles,
        question=template.format(keys=query),
        answer=", ".join(expected),
        expected=expected,
        distractors=[v for i in range(spec.keys) if i not in asked for v in values[i]],
        depth=depth,
    )


def _vt_case(spec: VtSpec, rng: random.Random, depth: float) -> TaskCase:
    names = _distinct(
        rng,
        spec.chains * (spec.hops + 1),
        lambda: "".join(rng.choice(string.ascii_uppercase) for _ in range(spec.letters)),
    )
    values = _distinct(rng, spec.chains, lambda: _number(rng, spec.digits))
    needles: list[Needle] = []
    chains = []
    for c in range(spec.chains):
        chain = names[c * (spec.hops + 1) : (c + 1) * (spec.hops + 1)]
        chains.append(chain)
        start = depth if c == 0 else rng.random()
        depths = [start] + sorted(start + (1 - start) * rng.random() for _ in range(spec.hops))
        role = "target" if c == 0 else "distractor"
        needles.append(Needle(VT_FIRST.format(name=chain[0], value=values[c]), role, depths[0], anchor=c == 0))
        for j in range(1, len(chain)):
            needles.append(Needle(VT_LINK.format(name=chain[j], previous=chain[j - 1]), role, depths[j]))
    needles.sort(key=lambda n: n.depth)  # stable: a chain's links keep their order at equal depths
    return TaskCase(
        task=spec.name,
        header=VT_HEADER,
        needles=needles,
        question=VT_QUESTION.format(value=values[0]),
        answer=", ".join(chains[0]),
        expected=list(chains[0]),
        distractors=[n for chain in chains[1:] for n in chain],
        depth=depth,
    )


# ---------------------------------------------------------------------------------------------
# Common-word extraction


def cwe_words(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct made-up lowercase words of two or three syllables (consonant + vowel)."""

    def draw() -> str:
        return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.choice((2, 3))))

    return _distinct(rng, n, draw)


def cwe_list(words: list[str], common: int, common_repeats: int, uncommon_repeats: int, seed: int) -> list[str]:
    """The list's entries in order: the first ``common`` of ``words`` ``common_repeats`` times each,
    the rest ``uncommon_repeats`` times, shuffled with ``seed``."""
    entries = [w for w in words[:common] for _ in range(common_repeats)]
    entries += [w for w in words[common:] for _ in range(uncommon_repeats)]
    random.Random(seed).shuffle(entries)
    return entries


def cwe_case(spec: CweSpec) -> tuple[str, str]:
    """(header, question) of a cwe case; the gold answer lists the common words in the order they
    first appear in the list."""
    return CWE_HEADER, CWE_QUESTION.format(n=spec.common)
