"""The ``eval`` section of a run configuration: what ``cocattn reproduce`` evaluates (and ``--plan``
counts). Loading refuses unknown keys; :meth:`EvalConfig.validate` checks the values."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from cocattn._checks import bad_value, check, check_choice, check_ci_options, unknown_key
from cocattn.attention.kinds import KINDS
from cocattn.config.choices import DTYPES

__all__ = ["EvalConfig", "EVAL_KEYS"]


@dataclass
class EvalConfig:
    """The ``eval`` section: the values as given (checked by :meth:`validate`), the rest defaults."""

    kinds: list[str] = field(default_factory=lambda: ["rope", "coca", "coca-strict", "alibi"])
    """Attention kinds trained and compared (nope is cheap to add: ``eval.kinds=[...]``)."""
    multiples: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    """Evaluation lengths as multiples of the training length."""
    factors: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])
    """Dynamic NTK factors evaluated besides the plain model (rotary kinds only)."""
    documents: int = 10
    """Held-out long documents for perplexity."""
    doc_tokens: int | None = None
    """Documents truncated to this many tokens (default: the longest length)."""
    stride: int | None = None
    """Sliding-window stride (default: the training length, as the paper's 512)."""
    batch_tokens: int | None = None
    """Perplexity windows, and passkey prompts of one token length, batched up to this many tokens
    (speed only; default one at a time)."""
    dtype: str = "float32"
    """Evaluation precision: ``float32``, or ``bfloat16`` / ``float16`` autocast (weights stay float32);
    ``auto`` = bfloat16 autocast on a GPU, float32 on CPU."""
    passkey_cases: int = 10
    """Passkey prompts per length."""
    passkey_new_tokens: int = 8
    """Tokens generated per passkey prompt."""
    retrieval_tasks: list[str] = field(default_factory=list)
    """Retrieval-suite tasks evaluated (docs/RETRIEVAL.md), e.g. ``[niah_single, niah_multikey]``;
    empty: none. Lengths shorter than a task's fixed text are left unmeasured, and said so."""
    retrieval_cases: int = 20
    """Cases per retrieval task and length."""
    data_preset: str = "pypi"
    """``cocattn data build`` preset used when no data directory is given."""
    vocab_size: int = 4096
    """Tokenizer size of the data build."""
    eval_documents: int = 100
    """Held-out documents the data build sets aside."""
    confidence: float = 0.95
    """Level of every confidence interval in the results and the report (``ci95``, the verdict)."""
    ci_resamples: int = 2000
    """Bootstrap resamples of the perplexity intervals and ratios (over documents)."""
    jobs: int | None = None
    """Kinds trained (and evaluated) at once, each in its own process with ``cores // jobs``
    threads; null: all of them on CPU (small models gain little from a second thread, and
    twice the work from a second process), one at a time on a GPU (cocattn.pipeline.workers)."""
    lengths: list[int] | None = None
    """Evaluation lengths in tokens: with no ``multiples`` given, the multiples are these lengths
    over the training length (:meth:`resolved`)."""
    given: tuple[str, ...] = field(default=(), repr=False)
    """The keys the section set, in its order: :meth:`to_dict` writes them (and any other field not
    at its default), so a saved config holds the section as it was given."""

    @classmethod
    def from_dict(cls, values: Any) -> EvalConfig:
        """The section from its parsed mapping (``None``: all defaults), values passed through as given.

        Refuses a non-mapping, settings that JSON cannot hold (so the run could not be saved) and an
        unknown key (naming the closest valid ones); the values are checked by :meth:`validate`.
        """
        if values is None:
            return cls()
        if not isinstance(values, dict):
            raise bad_value("eval", values, "a mapping of evaluation settings")
        try:  # passed through as given, so at least it must be savable (no self-references, e.g. YAML `&a [*a]`)
            json.dumps(values)
        except (ValueError, TypeError, RecursionError) as err:
            raise bad_value("eval", values, f"JSON-like settings ({err})") from None
        for key in values:
            if key not in EVAL_KEYS:
                raise unknown_key("section 'eval'", str(key), EVAL_KEYS)
        return cls(**values, given=tuple(values))

    def to_dict(self) -> dict[str, Any]:
        """The section as a run config records it: the keys given, then any other field not at its default."""
        out = {key: getattr(self, key) for key in self.given}
        for f in dataclasses.fields(self):
            if f.name in out or f.name == "given":
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if getattr(self, f.name) != default:
                out[f.name] = getattr(self, f.name)
        return out

    def __eq__(self, other: object) -> bool:
        """Equal when they record the same settings (the keys' order aside), as the mappings were."""
        if not isinstance(other, EvalConfig):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def validate(self) -> None:
        """Check the values; a ``ValueError`` names the setting (``eval.kinds``), its value and what is accepted."""
        for kind in self.kinds:
            check_choice("eval.kinds", kind, KINDS)
        check(
            all(isinstance(m, int) and m >= 1 for m in self.multiples),
            "eval.multiples",
            self.multiples,
            "integers >= 1",
        )
        check(all(f > 1 for f in self.factors), "eval.factors", self.factors, "numbers > 1")
        check(self.documents >= 1, "eval.documents", self.documents, "an integer >= 1")
        check(self.passkey_cases >= 1, "eval.passkey_cases", self.passkey_cases, "an integer >= 1")
        check(self.retrieval_cases >= 1, "eval.retrieval_cases", self.retrieval_cases, "an integer >= 1")
        if self.retrieval_tasks:
            from cocattn.tasks.ruler import parse_tasks

            parse_tasks(list(self.retrieval_tasks))
        check_choice("eval.dtype", self.dtype, DTYPES)
        check(
            self.jobs is None or (isinstance(self.jobs, int) and self.jobs >= 1),
            "eval.jobs",
            self.jobs,
            "null or an integer >= 1",
        )
        check(
            self.batch_tokens is None or (isinstance(self.batch_tokens, int) and self.batch_tokens >= 1),
            "eval.batch_tokens",
            self.batch_tokens,
            "null or a positive integer",
        )
        check_ci_options(self.confidence, self.ci_resamples, names=("eval.confidence", "eval.ci_resamples"))

    def resolved(self, train_length: int) -> EvalConfig:
        """A checked copy (:meth:`validate`) with ``lengths`` turned into ``multiples`` of ``train_length``
        when the section gave lengths and no multiples.

        Returns:
            EvalConfig: what ``reproduce`` evaluates.
        """
        settings = dataclasses.replace(self)
        settings.validate()
        if self.lengths and "multiples" not in self.to_dict() and train_length:
            settings.multiples = [max(1, int(n) // int(train_length)) for n in self.lengths]
        return settings


EVAL_KEYS = tuple(f.name for f in dataclasses.fields(EvalConfig) if f.name != "given")
"""The keys an ``eval`` section may hold."""
