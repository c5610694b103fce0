"""The long-context retrieval tasks (RULER-style): their specifications (:mod:`.specs`), wording
(:mod:`.wording`), random cases (:mod:`.cases`) and scoring (:mod:`.scoring`). The evaluator
(:mod:`cocattn.evaluate.retrieval`) and the training warm-up (:mod:`cocattn.tasks.warmup`) build
from the same cases, so a model is asked at evaluation in the words it learned. docs/RETRIEVAL.md
lists the tasks and their options and sets them against RULER's (Hsieh et al. 2024)."""

from __future__ import annotations

from cocattn.tasks.ruler.cases import Needle, TaskCase, cwe_case, cwe_list, cwe_words, sample_case
from cocattn.tasks.ruler.scoring import METRIC_TEXT, SCORING, TASK_METRIC, answer_line, score_answer
from cocattn.tasks.ruler.specs import (
    TASK_NAMES,
    CweSpec,
    NiahSpec,
    TaskSpec,
    VtSpec,
    parse_task,
    parse_tasks,
    spec_options,
)
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
    "spec_options",
    "sample_case",
    "cwe_words",
    "cwe_list",
    "cwe_case",
    "answer_line",
    "score_answer",
    "KEY_WORDS",
    "NIAH_HEADER",
    "NIAH_NEEDLE",
    "NIAH_QUESTION_ONE",
    "NIAH_QUESTION_MANY",
    "VT_HEADER",
    "VT_FIRST",
    "VT_LINK",
    "VT_QUESTION",
    "CWE_HEADER",
    "CWE_QUESTION",
]
