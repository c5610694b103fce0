"""The RULER-style tasks' specifications: names, options and their checks, and the parser of
``name:option=value:...`` (the tasks and their options are listed in docs/RETRIEVAL.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from cocattn._checks import bad_value, check, check_choice
from cocattn.tasks.ruler.wording import KEY_WORDS

TASK_NAMES = ("niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery", "vt", "cwe")


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
    changes: dict[str, Any] = {}  # option name -> its integer value, for dataclasses.replace
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


def parse_tasks(tasks: str | list[str | TaskSpec] | tuple[str | TaskSpec, ...]) -> list[TaskSpec]:
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
