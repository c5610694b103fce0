"""The long-context retrieval tasks (RULER-style), their wording and their scoring, in one place.

The evaluator (:mod:`cocattn.evaluate.retrieval`) builds prompts of an exact token length from
these cases; the training warm-up (:mod:`cocattn.tasks.warmup`) builds rows from the same cases,
so that what a model learns is asked in the same words at evaluation. docs/RETRIEVAL.md sets the
tasks against RULER's (Hsieh et al. 2024) and says what differs and why.

Tasks (``name`` and the options ``name:option=value:...`` accepts):

- ``niah_single``: one needle "One of the special numbers for KEY is VALUE." in the haystack; the
  question asks for KEY's number. Options ``keys``, ``values``, ``queries``, ``digits``.
- ``niah_multikey``: four needles with four different keys; one is asked, the other three are
  distractors (``keys=4``).
- ``niah_multivalue``: four needles with the same key and four values; all four are asked
  (``values=4``).
- ``niah_multiquery``: four needles with four keys; all four keys are asked (``keys=4, queries=4``).
- ``vt`` (variable tracking): a chain "VAR A = 12345." "VAR B = VAR A." ... of ``hops`` links (4)
  is hidden in the haystack; the question asks for every variable that holds the value. Options
  ``hops``, ``chains`` (other chains are distractors), ``letters`` (of a variable name),
  ``digits``.
- ``cwe`` (common-word extraction): no haystack; a numbered list of made-up words in which
  ``common`` words (10) appear ``common_repeats`` times each and the others ``uncommon_repeats``
  times; the question asks for the common ones. Options ``common``, ``common_repeats``,
  ``uncommon_repeats`` (default: RULER's 30 / 3 from 4,096 tokens on, 6 / 1 below).

Scoring (:func:`score_answer`, the only place it is defined): the generated text is cut at its
first line break after some text (the answer line); each required value counts as *found* when it
appears there as a whole token (case-insensitive; "12345" is not found in "123456"). A case is
*correct* when every required value is found and no distractor value is (so a model that lists
every needle's number does not pass ``niah_multikey``); its *recall* is the share of required
values found (RULER's ``string_match_all``). Each task reports one of the two as its score
(:data:`TASK_METRIC`): correct (all required values, no distractor) for the needle and tracking
tasks, recall for ``cwe``.
"""

from __future__ import annotations

import dataclasses
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable

from cocattn._checks import bad_value, check, check_choice

__all__ = [
    "TASK_NAMES",
    "TASK_METRIC",
    "METRIC_TEXT",
    "SCORING",
    "NiahSpec",
    "VtSpec",
    "CweSpec",
    "TaskSpec",
    "Needle",
    "TaskCase",
    "parse_task",
    "parse_tasks",
    "sample_case",
    "cwe_words",
    "cwe_list",
    "cwe_case",
    "answer_line",
    "score_answer",
    "KEY_WORDS",
]

TASK_NAMES = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery", "vt", "cwe")

TASK_METRIC = {
    "niah_single": "correct",
    "niah_multikey": "correct",
    "niah_multivalue": "correct",
    "niah_multiquery": "correct",
    "vt": "correct",
    "cwe": "recall",
}
"""Which per-case number each task reports as its score."""

METRIC_TEXT = {
    "correct": "share of cases with every required value in the answer line and no distractor value",
    "recall": "share of the required values found in the answer line, over all cases (RULER's string_match_all)",
}

SCORING = (
    "answer line = the generated text up to its first line break; a value is found when it appears there "
    "as a whole token, case-insensitive. correct: every required value found and no distractor value; "
    "recall: share of the required values found."
)

# ---------------------------------------------------------------------------------------------
# Wording. Short on purpose: the tasks must fit a 128-token training window with room for haystack.

NIAH_HEADER = "Special numbers are hidden in the text below. Remember them."
NIAH_NEEDLE = "One of the special numbers for {key} is {value}."
NIAH_QUESTION_ONE = "What is the special number for {keys}? The special number for {keys} is"
NIAH_QUESTION_MANY = "What are all the special numbers for {keys}? The special numbers for {keys} are"

VT_HEADER = "Track the variable assignments hidden in the text below."
VT_FIRST = "VAR {name} = {value}."
VT_LINK = "VAR {name} = VAR {previous}."
VT_QUESTION = "Which variables are assigned the value {value}? The variables assigned the value {value} are"

CWE_HEADER = "Below is a numbered list of words. Some words appear more often than others."
CWE_QUESTION = "What are the {n} most common words in the list above? The {n} most common words are"

KEY_WORDS = tuple(
    sorted(
        set(
            """
apple river garden window table chair bottle candle forest island mountain valley bridge castle
tower market school doctor farmer sailor pilot artist singer dancer writer teacher student queen
king horse tiger rabbit monkey eagle falcon dragon spider turtle dolphin whale shark salmon lemon
orange banana cherry grape melon pepper onion carrot potato tomato butter cheese bread honey sugar
coffee silver golden copper marble velvet cotton wool leather paper pencil basket blanket pillow
mirror ladder hammer needle anchor rocket planet comet meadow desert canyon harbor village city
palace temple museum library theater circus carnival festival winter summer autumn spring morning
evening shadow thunder rain storm cloud breeze ocean lake pond stream glacier volcano jungle prairie
violin guitar piano trumpet drum flute harp camera clock lantern compass wallet button ribbon jacket
helmet boot glove scarf crown jewel pearl diamond ruby emerald crystal feather pebble shell acorn
maple willow cedar oak pine birch tulip rose daisy lily orchid cactus mushroom walnut almond peanut
biscuit muffin pancake noodle pizza salad soup kettle teapot spoon fork plate bowl cup saucer napkin
towel soap brush comb razor blade arrow shield sword cannon wagon carriage sled canoe yacht ferry
tunnel fountain statue garage cellar attic balcony chimney fence gate path road highway airport
""".split()
        )
    )
)
"""Words a needle's key is drawn from (distinct within a case)."""

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


# ---------------------------------------------------------------------------------------------
# Task specifications


@dataclass(frozen=True)
class NiahSpec:
    """A needle-in-a-haystack task: ``keys`` needles' keys, ``values`` needles per key,
    ``queries`` of the keys asked (the others are distractors)."""

    name: str
    keys: int = 1
    values: int = 1
    queries: int = 1
    digits: int = 5
    family: str = field(default="niah", init=False)

    def validate(self) -> None:
        _positive(self, ("keys", "values", "queries", "digits"))
        check(
            self.keys <= len(KEY_WORDS),
            f"{self.name}:keys",
            self.keys,
            f"at most {len(KEY_WORDS)} (the distinct key words available)",
        )
        check(self.queries <= self.keys, f"{self.name}:queries", self.queries, f"at most keys={self.keys}")
        check(self.digits <= 18, f"{self.name}:digits", self.digits, "at most 18")


@dataclass(frozen=True)
class VtSpec:
    """Variable tracking: ``chains`` chains of ``hops`` links after the first assignment; the
    first chain is asked, the others are distractors."""

    name: str = "vt"
    hops: int = 4
    chains: int = 1
    letters: int = 5
    digits: int = 5
    family: str = field(default="vt", init=False)

    def validate(self) -> None:
        _positive(self, ("hops", "chains", "letters", "digits"))
        check(self.digits <= 18, f"{self.name}:digits", self.digits, "at most 18")
        names = 26**self.letters
        check(
            self.chains * (self.hops + 1) <= names // 2,
            f"{self.name}:letters",
            self.letters,
            f"enough letters for {self.chains * (self.hops + 1)} distinct variable names",
        )


@dataclass(frozen=True)
class CweSpec:
    """Common-word extraction: ``common`` words ``common_repeats`` times each among words seen
    ``uncommon_repeats`` times (None: RULER's 30 / 3 from 4,096 tokens, 6 / 1 below)."""

    name: str = "cwe"
    common: int = 10
    common_repeats: int | None = None
    uncommon_repeats: int | None = None
    family: str = field(default="cwe", init=False)

    def validate(self) -> None:
        _positive(self, ("common",))
        for key in ("common_repeats", "uncommon_repeats"):
            value = getattr(self, key)
            check(
                value is None or (isinstance(value, int) and value >= 1),
                f"{self.name}:{key}",
                value,
                "a positive integer (or unset: RULER's value for the length)",
            )

    def repeats(self, length: int) -> tuple[int, int]:
        """(common, uncommon) repeats at ``length`` tokens; common must exceed uncommon."""
        big = length >= 4096
        common = self.common_repeats or (30 if big else 6)
        uncommon = self.uncommon_repeats or (3 if big else 1)
        check(
            common > uncommon,
            f"{self.name}:common_repeats",
            common,
            f"more than uncommon_repeats={uncommon} (common words must be the most frequent)",
        )
        return common, uncommon


TaskSpec = NiahSpec | VtSpec | CweSpec

_DEFAULTS: dict[str, Callable[[], TaskSpec]] = {
    "niah_single": lambda: NiahSpec("niah_single"),
    "niah_multikey": lambda: NiahSpec("niah_multikey", keys=4),
    "niah_multivalue": lambda: NiahSpec("niah_multivalue", values=4),
    "niah_multiquery": lambda: NiahSpec("niah_multiquery", keys=4, queries=4),
    "vt": lambda: VtSpec(),
    "cwe": lambda: CweSpec(),
}


def _positive(spec: Any, names: tuple[str, ...]) -> None:
    for key in names:
        value = getattr(spec, key)
        check(
            isinstance(value, int) and not isinstance(value, bool) and value >= 1,
            f"{spec.name}:{key}",
            value,
            "a positive integer",
        )


def parse_task(text: str | TaskSpec) -> TaskSpec:
    """``"niah_multikey"`` or ``"niah_multikey:keys=8:digits=7"`` (or a spec) → a validated spec.

    An unknown name is an error naming the closest task names; an unknown option names the
    task's options."""
    if not isinstance(text, str):
        text.validate()
        return text
    name, *options = text.strip().split(":")
    check_choice("task", name, TASK_NAMES)
    spec = _DEFAULTS[name]()
    allowed = [f.name for f in dataclasses.fields(spec) if f.init and f.name != "name"]
    changes: dict[str, int] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise bad_value("task", text, f"NAME or NAME:OPTION=VALUE[:...], e.g. {name}:{allowed[0]}=2")
        check_choice(f"{name} option", key, allowed)
        try:
            changes[key] = int(value)
        except ValueError:
            raise bad_value(f"{name}:{key}", value, "an integer") from None
    spec = dataclasses.replace(spec, **changes)
    spec.validate()
    return spec


def parse_tasks(tasks: str | list[str] | tuple[str, ...]) -> list[TaskSpec]:
    """A comma-separated string or a list of task specs, each parsed (``"all"``: every task with its
    defaults); duplicates refused."""
    if isinstance(tasks, str) and tasks.strip() == "all":
        tasks = list(TASK_NAMES)
    items = [t for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    items = [t.strip() if isinstance(t, str) else t for t in items]
    check(len(items) > 0 and all(items), "tasks", tasks, f"one or more of {', '.join(TASK_NAMES)}")
    specs = [parse_task(t) for t in items]
    names = [s.name for s in specs]
    check(len(set(names)) == len(names), "tasks", tasks, "each task once")
    return specs


def spec_options(spec: TaskSpec) -> dict[str, Any]:
    """The options of a spec, for result records."""
    return {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.init and f.name != "name"}


# ---------------------------------------------------------------------------------------------
# Cases


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


# ---------------------------------------------------------------------------------------------
# Scoring


def answer_line(output: str) -> str:
    """The generated text up to its first line break after some text, stripped."""
    text = output.lstrip()
    return text.split("\n", 1)[0].strip()


def _contains(text: str, value: str) -> bool:
    return re.search(r"(?<![0-9A-Za-z])" + re.escape(value) + r"(?![0-9A-Za-z])", text, re.IGNORECASE) is not None


def score_answer(output: str, expected: list[str], distractors: list[str] = ()) -> dict[str, Any]:
    """Score a generated ``output`` against the ``expected`` values (see the module docstring).

    Returns ``answer`` (the scored line), ``found`` (one bool per expected value), ``recall``,
    ``distractors_found`` and ``correct``."""
    check(len(expected) > 0, "expected", expected, "at least one required value")
    line = answer_line(output)
    found = [_contains(line, v) for v in expected]
    wrong = [d for d in distractors if _contains(line, d)]
    return {
        "answer": line,
        "found": found,
        "recall": sum(found) / len(found),
        "distractors_found": wrong,
        "correct": all(found) and not wrong,
    }
