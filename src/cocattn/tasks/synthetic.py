"""The retrieval lab's synthetic tasks (``copy``, ``copy-fixed``, ``mqar``, ``needle``), each defined
here once, generated on the fly and seeded: :func:`generate` turns ``(spec, length, n, seed)`` into a
:class:`Batch` whose targets are ``-100`` everywhere but at the answers. docs/LAB.md ("The tasks")
gives what each case is, what it measures and its vocabulary layout.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch

from cocattn._checks import bad_value, check, check_choice

__all__ = ["TASKS", "TaskSpec", "Batch", "make_task", "generate", "fixed_offset_predictions", "min_length"]

IGNORE = -100


@dataclass(frozen=True)
class TaskSpec:
    """One task and its settings (what a study records). Unused fields keep their defaults.

    - ``name``: ``copy``, ``copy-fixed``, ``mqar`` or ``needle``.
    - ``vocab_size``: the vocabulary the model is built with.
    - ``segment``: tokens copied (``copy``, ``copy-fixed``) or the value's length (``needle``).
    - ``pairs``: key-value pairs (``mqar``) at the training length.
    - ``scale_pairs``: ``mqar`` at a longer length holds ``pairs x length / train_length`` pairs.
    - ``power_a``: ``mqar``'s query-gap power law (Zoology's 0.01; 1.0 is uniform).
    - ``train_length``: the length the model trains at (the lab fills it in).
    """

    name: str = "copy"
    vocab_size: int = 64
    segment: int = 4
    pairs: int = 8
    scale_pairs: bool = False
    power_a: float = 0.01
    train_length: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Batch:
    """``inputs``, ``targets`` ``[n, length]`` (int64; targets ``-100`` except at answers);
    ``case`` ``[n, length]``: the case index (0 .. cases-1, numbered over the batch) of each answer
    token, -1 elsewhere; ``distance`` ``[n, length]``: how far back the answer's source lies."""

    inputs: torch.Tensor
    targets: torch.Tensor
    case: torch.Tensor
    distance: torch.Tensor

    @property
    def cases(self) -> int:
        return int(self.case.max()) + 1 if bool((self.case >= 0).any()) else 0


def _int_field(name: str, value: Any, low: int) -> None:
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        f"task.{name}",
        value,
        f"an integer >= {low}",
    )


def make_task(name: str, **settings: Any) -> TaskSpec:
    """A checked :class:`TaskSpec`; unknown settings, sizes the vocabulary cannot hold and
    lengths the task does not fit in are refused naming the value and what is accepted."""
    check_choice("task", name, TASKS)
    known = {f.name for f in fields(TaskSpec)} - {"name"}
    for key in settings:
        check(key in known, "task setting", key, "one of " + ", ".join(sorted(known)))
    spec = TaskSpec(name=name, **settings)
    for key in ("vocab_size", "segment", "pairs", "train_length"):
        _int_field(key, getattr(spec, key), 1)
    check(
        isinstance(spec.power_a, (int, float)) and 0 < spec.power_a <= 1,
        "task.power_a",
        spec.power_a,
        "a number in (0, 1]",
    )
    _alphabets(spec)
    min_length(spec, spec.train_length)
    return spec


def _alphabets(spec: TaskSpec) -> tuple[range, range]:
    """The (answer alphabet, filler alphabet) of a task; refuses a vocabulary too small."""
    v = spec.vocab_size
    if spec.name in ("copy", "copy-fixed"):
        content = range(1, 1 + (v - 1) // 2)
        noise = range(content.stop, v)
        check(len(content) >= 2 and len(noise) >= 1, "task.vocab_size", v, "at least 4 for a copy task")
        return content, noise
    if spec.name == "needle":
        check(v >= 2 + 10 + 2, "task.vocab_size", v, "at least 14 for needle (2 markers, 10 digits, filler)")
        return range(2, 12), range(12, v)
    keys = range(1, v // 2)
    check(
        spec.pairs <= len(keys),
        "task.pairs",
        spec.pairs,
        f"at most {len(keys)}: keys are distinct tokens from the lower half of vocab_size={v}",
    )
    return keys, range(v // 2, v)


def pairs_at(spec: TaskSpec, length: int) -> int:
    """``mqar``'s pairs at ``length`` (scaled with the length when ``scale_pairs``)."""
    if not spec.scale_pairs:
        return spec.pairs
    return max(1, spec.pairs * length // spec.train_length)


def min_length(spec: TaskSpec, length: int) -> int:
    """The shortest length the task fits in; raises when ``length`` is shorter."""
    if spec.name in ("copy", "copy-fixed"):
        need = 2 * spec.segment + 2
    elif spec.name == "needle":
        need = 2 * spec.segment + 3
    else:
        pairs = pairs_at(spec, length)
        need = 4 * pairs
        check(
            pairs <= spec.vocab_size // 2 - 1,
            "task.pairs",
            pairs,
            f"at most {spec.vocab_size // 2 - 1} at length {length}",
        )
    check(
        isinstance(length, int) and length >= need,
        "length",
        length,
        f"at least {need} tokens for task {spec.name!r} ({_needs(spec)})",
    )
    return need


def _needs(spec: TaskSpec) -> str:
    if spec.name == "mqar":
        return f"{spec.pairs} pairs of 2 tokens, then as many query slots of 2"
    if spec.name == "needle":
        return f"a marked value of {spec.segment} tokens, the question and the answer"
    return f"a marked segment of {spec.segment} tokens twice"


def _draw(alphabet: range, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.randint(alphabet.start, alphabet.stop, shape, generator=generator)


def _copy(spec: TaskSpec, length: int, n: int, g: torch.Generator) -> Batch:
    """Row (``length + 1`` tokens): noise, marker, segment, gap noise, marker, segment. ``copy``:
    the gap is uniform in [0, length - 2·segment - 1]; ``copy-fixed``: the segment starts the row."""
    content, noise = _alphabets(spec)
    s = spec.segment
    free = length - 2 * s - 1  # noise tokens in the row: before the segment and in the gap
    seq = _draw(noise, (n, length + 1), g)
    if spec.name == "copy":
        gap = torch.randint(0, free + 1, (n,), generator=g)
    else:
        gap = torch.full((n,), free)
    start = free - gap  # the first marker's index
    segment = _draw(content, (n, s), g)
    rows = torch.arange(n)
    second = length - s  # the second marker's index: the repeat ends the row
    seq[rows, start] = 0
    seq[:, second] = 0
    cols = torch.arange(s)
    seq[rows[:, None], start[:, None] + 1 + cols] = segment
    seq[:, second + 1 :] = segment
    return _framed(seq, [second + 1 + cols] * n, second - start, per_row_case=True)


def _needle(spec: TaskSpec, length: int, n: int, g: torch.Generator) -> Batch:
    """Row: noise with ``0 value`` at a uniform depth, then ``1 value`` ends the row."""
    digits, noise = _alphabets(spec)
    s = spec.segment
    seq = _draw(noise, (n, length + 1), g)
    question = length - s  # index of the question marker
    start = torch.randint(0, question - s, (n,), generator=g)  # the needle marker's index
    value = _draw(digits, (n, s), g)
    rows, cols = torch.arange(n), torch.arange(s)
    seq[rows, start] = 0
    seq[rows[:, None], start[:, None] + 1 + cols] = value
    seq[:, question] = 1
    seq[:, question + 1 :] = value
    return _framed(seq, [question + 1 + cols] * n, question - start, per_row_case=True)


def _mqar(spec: TaskSpec, length: int, n: int, g: torch.Generator) -> Batch:
    """Zoology's MQAR: ``k1 v1 .. kP vP``, then each key once more at power-law gaps (in slots of
    two), the rest random tokens; the target after a queried key is its value."""
    keys_alphabet, values_alphabet = _alphabets(spec)
    pairs = pairs_at(spec, length)
    context = 2 * pairs
    space = (length - context) // 2
    seq = torch.randint(0, spec.vocab_size, (n, length + 1), generator=g)
    keys = (
        torch.stack([torch.randperm(len(keys_alphabet), generator=g)[:pairs] for _ in range(n)]) + keys_alphabet.start
    )
    values = torch.randint(values_alphabet.start, values_alphabet.stop, (n, pairs), generator=g)
    seq[:, 0:context:2] = keys
    seq[:, 1:context:2] = values
    weights = spec.power_a * torch.arange(1, space + 1, dtype=torch.float64) ** (spec.power_a - 1)
    slots = torch.multinomial(weights.expand(n, space), pairs, replacement=False, generator=g)
    query = context + 2 * slots  # where each key is asked again
    rows = torch.arange(n)[:, None]
    seq[rows, query] = keys
    seq[rows, query + 1] = values
    answer = query + 1  # the value's index in the row; its target sits at index answer - 1
    positions = [answer[i] for i in range(n)]
    distance = query - 2 * torch.arange(pairs)  # query index minus the key's index
    return _framed(seq, positions, distance, per_row_case=False)


def _framed(seq: torch.Tensor, answers: list[torch.Tensor], distance: torch.Tensor, per_row_case: bool) -> Batch:
    """Inputs ``seq[:, :-1]``, targets ``seq[:, 1:]`` kept only at ``answers`` (row indices in
    ``seq``); cases numbered row by row (one per row, or one per answer token)."""
    n, length = seq.shape[0], seq.shape[1] - 1
    targets = torch.full((n, length), IGNORE, dtype=torch.int64)
    case = torch.full((n, length), -1, dtype=torch.int64)
    dist = torch.zeros((n, length), dtype=torch.int64)
    next_case = 0
    for i, idx in enumerate(answers):
        pos = idx - 1
        targets[i, pos] = seq[i, idx]
        if per_row_case:
            case[i, pos] = next_case
            dist[i, pos] = distance[i]
            next_case += 1
        else:
            case[i, pos] = torch.arange(next_case, next_case + len(idx))
            dist[i, pos] = distance[i]
            next_case += len(idx)
    return Batch(seq[:, :-1].contiguous(), targets, case, dist)


_GENERATORS: dict[str, Callable[[TaskSpec, int, int, torch.Generator], Batch]] = {
    "copy": _copy,
    "copy-fixed": _copy,
    "mqar": _mqar,
    "needle": _needle,
}
TASKS = tuple(_GENERATORS)

RELATIVE_SOLVABLE = {"copy": False, "copy-fixed": True, "mqar": False, "needle": False}
"""Whether a head that reads a fixed offset back (a pure relative-position head) solves the
task at its training length; tests check each claim with :func:`fixed_offset_predictions`."""


def generate(spec: TaskSpec, length: int, n: int, seed: int) -> Batch:
    """``n`` cases of ``spec`` at ``length`` input tokens, the same for the same ``seed``."""
    check_choice("task", spec.name, TASKS)
    check(isinstance(n, int) and n >= 1, "n", n, "a positive number of rows")
    min_length(spec, length)
    g = torch.Generator().manual_seed(int(seed))
    return _GENERATORS[spec.name](spec, length, n, g)


def fixed_offset_predictions(batch: Batch, offset: int) -> torch.Tensor:
    """What a head that copies the token ``offset`` positions back predicts at every position
    (the input token at ``p + 1 - offset``; the first positions predict token 0)."""
    if not isinstance(offset, int) or offset < 1:
        raise bad_value("offset", offset, "a positive integer")
    x = batch.inputs
    pred = torch.zeros_like(x)
    if offset - 1 < x.shape[1]:
        pred[:, offset - 1 :] = x[:, : x.shape[1] - offset + 1]
    return pred
