"""Scoring a generated answer (the only place it is defined). The answer line is the generated text
up to its first line break after some text; a required value is *found* when it appears there as a
whole token (case-insensitive; "12345" is not found in "123456"). A case is *correct* when every
required value is found and no distractor value is; its *recall* is the share of required values
found (RULER's ``string_match_all``). :data:`TASK_METRIC` names the one each task reports."""

from __future__ import annotations

import re
from typing import Any, Sequence

from cocattn._checks import check

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


def answer_line(output: str) -> str:
    """The generated text up to its first line break after some text, stripped."""
    text = output.lstrip()
    return text.split("\n", 1)[0].strip()


def _contains(text: str, value: str) -> bool:
    return re.search(r"(?<![0-9A-Za-z])" + re.escape(value) + r"(?![0-9A-Za-z])", text, re.IGNORECASE) is not None


def score_answer(output: str, expected: list[str], distractors: Sequence[str] = ()) -> dict[str, Any]:
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
