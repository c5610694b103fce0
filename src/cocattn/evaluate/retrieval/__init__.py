"""The retrieval suite: RULER-style tasks (:mod:`cocattn.tasks.ruler`) at exact token lengths.

A prompt built for ``length`` tokens holds ``begin_ids``, the prompt and the gold answer in
``length - tolerance`` to ``length`` tokens; each task's score carries a Wilson 95% interval.
Haystacks (:mod:`.haystack`), prompts (:mod:`.prompts`), generated and scored cases
(:mod:`.cases`), the evaluation (:mod:`.run`) and its records (:mod:`.summary`); docs/RETRIEVAL.md.
"""

from cocattn.errors import LengthTooShort
from cocattn.evaluate.retrieval.cases import CaseRecord
from cocattn.evaluate.retrieval.haystack import HAYSTACKS, Haystack
from cocattn.evaluate.retrieval.prompts import DEFAULT_TOLERANCE, RetrievalPrompt, build_cwe_prompt, build_prompt
from cocattn.evaluate.retrieval.run import DEFAULT_SLACK, evaluate_retrieval
from cocattn.evaluate.retrieval.summary import effective_length

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
