"""The evaluators' keyword arguments from one set of options: what ``cocattn eval`` and ``cocattn
reproduce`` pass to perplexity, passkey and retrieval. Each caller fills :class:`SuiteOptions` its
own way (the command line, or the run configuration's ``eval`` section); an option left out keeps
the evaluator's own default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from cocattn.config import EvalConfig
from cocattn.evaluate.retrieval import DEFAULT_SLACK, DEFAULT_TOLERANCE
from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

__all__ = ["SuiteOptions", "reproduce_options"]


@dataclass(frozen=True)
class SuiteOptions:
    """The options of the three evaluators; each default is the evaluator's own."""

    batch_tokens: int | None = None
    """Speed only: windows or prompts of one token length per forward pass, up to this many tokens."""
    max_memory: int | None = None
    """Bytes an evaluation may need (None: the memory free now)."""
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = 0
    """Seed of the passkey and retrieval cases."""
    stride: int | None = None
    max_tokens: int | None = None
    batch_size: int = 1
    too_long: str = "error"
    ci_resamples: int = DEFAULT_RESAMPLES
    passkey_cases: int = 100
    passkey_new_tokens: int = 64
    retrieval_cases: int = 100
    haystack: str = "repeat"
    documents: Sequence[str] | None = None
    """The retrieval haystack's documents (``haystack="corpus"``)."""
    retrieval_new_tokens: int | None = None
    answer_slack: int = DEFAULT_SLACK
    tolerance: int = DEFAULT_TOLERANCE
    too_short: str = "error"

    def perplexity(self) -> dict[str, Any]:
        """The keyword arguments of :func:`cocattn.evaluate.perplexity.evaluate_perplexity` besides
        the model, documents, lengths, scaling and progress.

        Returns:
            dict[str, Any]: ``stride``, ``max_tokens``, ``batch_size``, ``batch_tokens``,
            ``max_memory``, ``too_long``, ``confidence``, ``ci_resamples``.
        """
        return {
            "stride": self.stride,
            "max_tokens": self.max_tokens,
            "batch_size": self.batch_size,
            "batch_tokens": self.batch_tokens,
            "max_memory": self.max_memory,
            "too_long": self.too_long,
            "confidence": self.confidence,
            "ci_resamples": self.ci_resamples,
        }

    def passkey(self) -> dict[str, Any]:
        """The keyword arguments of :func:`cocattn.evaluate.passkey.evaluate_passkey` besides the
        model, lengths, scaling, progress and the prompt's tolerance.

        Returns:
            dict[str, Any]: ``cases``, ``max_new_tokens``, ``seed``, ``max_memory``,
            ``batch_tokens``, ``confidence``.
        """
        return {
            "cases": self.passkey_cases,
            "max_new_tokens": self.passkey_new_tokens,
            "seed": self.seed,
            "max_memory": self.max_memory,
            "batch_tokens": self.batch_tokens,
            "confidence": self.confidence,
        }

    def retrieval(self) -> dict[str, Any]:
        """The keyword arguments of :func:`cocattn.evaluate.retrieval.evaluate_retrieval` besides
        the model, tasks, lengths, scaling, progress and the prompt cache.

        Returns:
            dict[str, Any]: ``cases``, ``seed``, ``haystack``, ``documents``, ``max_new_tokens``,
            ``answer_slack``, ``tolerance``, ``batch_tokens``, ``max_memory``, ``too_short``.
        """
        return {
            "cases": self.retrieval_cases,
            "seed": self.seed,
            "haystack": self.haystack,
            "documents": self.documents,
            "max_new_tokens": self.retrieval_new_tokens,
            "answer_slack": self.answer_slack,
            "tolerance": self.tolerance,
            "batch_tokens": self.batch_tokens,
            "max_memory": self.max_memory,
            "too_short": self.too_short,
        }


def reproduce_options(settings: EvalConfig, lengths: Sequence[int], l0: int) -> SuiteOptions:
    """What ``cocattn reproduce`` evaluates with: the ``eval`` section's cases, batching and
    intervals; stride = the training length ``l0`` and documents cut at the longest length + 1
    unless set; lengths no document fills, or too short for a retrieval task, skipped.

    Args:
        lengths: the evaluated lengths (not empty).

    Returns:
        SuiteOptions: the other options at the evaluators' defaults.
    """
    return SuiteOptions(
        batch_tokens=settings.batch_tokens,
        confidence=settings.confidence,
        stride=settings.stride or l0,
        max_tokens=settings.doc_tokens or max(lengths) + 1,
        too_long="skip",
        ci_resamples=settings.ci_resamples,
        passkey_cases=settings.passkey_cases,
        passkey_new_tokens=settings.passkey_new_tokens,
        retrieval_cases=settings.retrieval_cases,
        too_short="skip",
    )
