"""Sliding-window, token-weighted perplexity: every token from position 1 on is scored exactly once,
with ``L - S + 1`` to ``L`` tokens of context (window ``L``, stride ``S ≤ L``); perplexity =
``exp(Σ NLL / Σ tokens)`` over all scored tokens of all documents, with a bootstrap interval over
documents per length. The protocol: docs/EVAL.md.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from cocattn._checks import check
from cocattn.evaluate.intervals import attach_intervals, check_ci_options, document_id
from cocattn.evaluate.protocol import LanguageModel, token_nll
from cocattn.evaluate.memory import check_fits, tokenize_bytes
from cocattn.evaluate.results import make_result
from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

__all__ = ["window_plan", "default_lengths", "default_stride", "document_nll", "evaluate_perplexity"]

DEFAULT_MULTIPLES = (1, 2, 4, 8, 16)


def default_lengths(training_length: int, multiples: Sequence[int] = DEFAULT_MULTIPLES) -> list[int]:
    """The training length times 1, 2, 4, 8, 16."""
    return [training_length * m for m in multiples]


def default_stride(training_length: int) -> int:
    """``min(512, training_length)``: the paper's 512 at its training length 512."""
    return min(512, training_length)


def window_plan(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows as ``(begin, end, first_target)``: the model reads tokens ``[begin, end)`` and the
    targets at positions ``first_target .. end`` (inclusive) are scored, each predicted from the
    inputs before it. Together the windows score positions ``1 .. n_tokens - 1`` once each."""
    check(isinstance(window, int) and window >= 1, "window", window, "a positive integer")
    check(
        isinstance(stride, int) and 1 <= stride <= window,
        "stride",
        stride,
        f"an integer between 1 and the window ({window}); a larger stride would leave tokens unscored",
    )
    plan: list[tuple[int, int, int]] = []
    first = 1
    while first <= n_tokens - 1:
        end = min(window if first == 1 else first + stride - 1, n_tokens - 1)
        begin = max(0, end - window)
        plan.append((begin, end, first))
        first = end + 1
    return plan


def _score(lm: LanguageModel, batch: list[tuple[list[int], int, int, int]]) -> list[tuple[float, int]]:
    """(NLL sum, tokens) for windows of equal length, run as one batch."""
    idx = torch.tensor([doc[b:e] for doc, b, e, _ in batch], dtype=torch.long)
    logits = lm.logits(idx)
    out = []
    for row, (doc, b, e, first) in enumerate(batch):
        targets = torch.tensor(doc[first : e + 1], dtype=torch.long)
        nll = token_nll(logits[row, first - 1 - b : e - b], targets)
        out.append((float(nll.double().sum()), int(targets.numel())))
    return out


def document_nll(lm: LanguageModel, tokens: list[int], window: int, stride: int) -> tuple[float, int]:
    """Sum of NLL and number of tokens scored for one tokenized document (the windows' sums added
    with ``math.fsum``, as :func:`evaluate_perplexity` adds them)."""
    scored = [_score(lm, [(tokens, b, e, first)])[0] for b, e, first in window_plan(len(tokens), window, stride)]
    return math.fsum(nll for nll, _ in scored), sum(n for _, n in scored)


def evaluate_perplexity(
    lm: LanguageModel,
    documents: Sequence[str] | Sequence[Sequence[int]],
    lengths: Sequence[int] | None = None,
    *,
    stride: int | None = None,
    max_tokens: int | None = None,
    scaling: dict[str, Any] | None = None,
    batch_size: int = 1,
    batch_tokens: int | None = None,
    max_memory: int | None = None,
    too_long: str = "error",
    progress: bool = True,
    confidence: float = DEFAULT_CONFIDENCE,
    ci_resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """Sliding-window perplexity of ``lm`` at each length; a result record (:mod:`.results`).

    ``documents`` are texts (tokenized with the model's tokenizer, after its ``begin_ids``) or
    token lists. ``scaling`` is an inference-time ``rope_parameters`` dict (None: as trained).
    Windows of one length run ``batch_size`` at a time, or, with ``batch_tokens``, as many as
    fit in that many tokens (at least one): short windows in large batches, long ones alone.
    Batching changes the speed, not the numbers. ``confidence`` and ``ci_resamples``: the level
    and bootstrap resamples of the per-length interval ``ci95``.
    """
    start = time.perf_counter()
    lengths, stride, max_tokens = _checked_options(
        lm, lengths, stride, max_tokens, batch_size, batch_tokens, too_long, confidence, ci_resamples
    )
    longest = max((len(d) for d in documents if isinstance(d, str)), default=0)
    tokenizing = tokenize_bytes(max_tokens, longest)
    check_fits(lm.dims(), 1, 1, lm.device, max_memory, extra=tokenizing, what="tokenising the documents")
    doc_ids, docs = _tokenized(lm, documents, max_tokens)
    run_lengths = _runnable_lengths(lengths, docs, max_tokens, too_long)
    for n in run_lengths:  # every length's batch, not only the longest: short windows run many rows at once
        check_fits(lm.dims(), n, _rows(n, batch_size, batch_tokens), lm.device, max_memory, extra=tokenizing)

    with lm.rope_scaling(scaling):
        plans = {
            n: [(doc, *w, i) for i, doc in enumerate(docs) for w in window_plan(len(doc), n, stride)]
            for n in run_lengths
        }
        bar = tqdm(
            total=sum(len(p) for p in plans.values()),
            disable=not progress,
            unit="win",
            desc=f"ppl {lm.name} [{scaling['rope_type'] if scaling else 'none'}]",
        )
        scored = [
            _score_length(lm, docs, n, plans[n], _rows(n, batch_size, batch_tokens), bar) if n in plans else None
            for n in lengths
        ]
        bar.close()
    settings = {
        "stride": stride,
        "max_tokens": max_tokens,
        "documents": len(docs),
        "batch_size": batch_size,
        "too_long": too_long,
    }
    if batch_tokens is not None:
        settings["batch_tokens"] = batch_tokens
    values, details = _curves(lengths, docs, doc_ids, scored)
    record = make_result(
        "ppl",
        lm,
        scaling,
        lengths,
        values,
        counts=[0 if s is None else sum(s[1]) for s in scored],
        settings=settings,
        details=details,
        wall_s=time.perf_counter() - start,
    )
    return attach_intervals(record, confidence, ci_resamples)


def _checked_options(
    lm: LanguageModel,
    lengths: Sequence[int] | None,
    stride: int | None,
    max_tokens: int | None,
    batch_size: int,
    batch_tokens: int | None,
    too_long: str,
    confidence: float,
    ci_resamples: int,
) -> tuple[list[int], int, int]:
    """:func:`evaluate_perplexity`'s options checked: (lengths, stride, max_tokens), defaults filled in."""
    l0 = lm.training_length
    lengths = list(lengths) if lengths is not None else default_lengths(l0)
    check(
        len(lengths) > 0 and all(isinstance(n, int) and n >= 2 for n in lengths),
        "lengths",
        lengths,
        "a non-empty list of integers >= 2",
    )
    # the default never exceeds the shortest length asked for (`--lengths 64` on a model trained at
    # 128 must not fail on a stride the user never set)
    stride = min(default_stride(l0), min(lengths)) if stride is None else stride
    check(isinstance(stride, int) and stride >= 1, "stride", stride, "a positive integer")
    check(
        stride <= min(lengths),
        "stride",
        stride,
        f"at most the shortest length ({min(lengths)}); a stride larger than the window leaves tokens unscored",
    )
    max_tokens = max(lengths) + 1 if max_tokens is None else max_tokens
    check(isinstance(max_tokens, int) and max_tokens >= 2, "max_tokens", max_tokens, "an integer >= 2")
    check(isinstance(batch_size, int) and batch_size >= 1, "batch_size", batch_size, "a positive integer")
    check(
        batch_tokens is None or (isinstance(batch_tokens, int) and batch_tokens >= 1),
        "batch_tokens",
        batch_tokens,
        "None or a positive integer",
    )
    check(too_long in ("error", "skip"), "too_long", too_long, "'error' or 'skip'")
    check_ci_options(confidence, ci_resamples)
    return lengths, stride, max_tokens


def _rows(n: int, batch_size: int, batch_tokens: int | None) -> int:
    """Windows of length ``n`` per batch: ``batch_size``, or as many as fit in ``batch_tokens`` (at least one)."""
    return batch_size if batch_tokens is None else max(1, batch_tokens // n)


def _tokenized(
    lm: LanguageModel, documents: Sequence[str] | Sequence[Sequence[int]], max_tokens: int
) -> tuple[list[str], list[list[int]]]:
    """(ids, token lists) of the documents with at least 2 tokens, each truncated to ``max_tokens``."""
    check(len(documents) > 0, "documents", documents, "at least one document")
    # a prefix of each text, not the text: one long document must not cost its whole size
    tokenized = [lm.encode_prefix(d, max_tokens) if isinstance(d, str) else list(d)[:max_tokens] for d in documents]
    kept = [(i, d) for i, d in enumerate(tokenized) if len(d) >= 2]
    check(len(kept) > 0, "documents", "(all shorter than 2 tokens)", "documents of at least 2 tokens")
    return [document_id(i, d) for i, d in kept], [d for _, d in kept]


def _runnable_lengths(lengths: list[int], docs: list[list[int]], max_tokens: int, too_long: str) -> list[int]:
    """The lengths some document reaches; the others raise (``too_long="error"``) or are skipped with
    a warning (``"skip"``)."""
    longest = max(len(d) for d in docs)
    too_long_lengths = [n for n in lengths if n > longest]
    if too_long_lengths and too_long == "error":
        check(
            False,
            "lengths",
            too_long_lengths,
            f"lengths up to the longest document ({longest} tokens after truncation to max_tokens={max_tokens}); "
            "use shorter lengths, longer documents, or too_long='skip' (--skip-too-long)",
        )
    if too_long_lengths:
        warnings.warn(  # stacklevel 3: the warning names evaluate_perplexity's caller
            f"skipping lengths {too_long_lengths}: longer than every document ({longest} tokens)", stacklevel=3
        )
    return [n for n in lengths if n <= longest]


def _score_length(
    lm: LanguageModel, docs: list[list[int]], n: int, plan: list[tuple], rows: int, bar: Any
) -> tuple[list[float], list[int]]:
    """Each document's (NLL sum, tokens scored) at length ``n``: ``plan``'s windows (``(doc, begin,
    end, first_target, doc_index)``) run in batches of up to ``rows`` windows of equal length."""
    bar.set_postfix(length=n)
    groups: dict[int, list] = defaultdict(list)
    for item in plan:
        groups[item[2] - item[1]].append(item)
    windows: list[list[float]] = [[] for _ in docs]  # each document's window NLL sums
    tokens = [0] * len(docs)
    for items in groups.values():
        for i in range(0, len(items), rows):
            chunk = items[i : i + rows]
            for (*_, d), (nll, k) in zip(chunk, _score(lm, [item[:4] for item in chunk])):
                windows[d].append(nll)
                tokens[d] += k
            bar.update(len(chunk))
    return [math.fsum(w) for w in windows], tokens  # exact sums: independent of the windows' batching order


def _curves(
    lengths: list[int],
    docs: list[list[int]],
    doc_ids: list[str],
    scored: list[tuple[list[float], list[int]] | None],
) -> tuple[list[float | None], dict[str, Any]]:
    """(perplexity per length, the record's ``details``) from each length's per-document sums
    (None: a skipped length)."""
    values: list[float | None] = []
    nlls: list[float | None] = []
    full_docs: list[int] = []
    for n, length_sums in zip(lengths, scored):
        if length_sums is None:
            values.append(None)
            nlls.append(None)
            full_docs.append(0)
            continue
        sums, tokens = length_sums
        mean = math.fsum(sums) / sum(tokens)  # the pooled totals are the documents' sums added up
        nlls.append(mean)
        values.append(math.exp(mean) if mean < 700 else math.inf)
        full_docs.append(sum(len(d) > n for d in docs))
    details = {
        "nll": nlls,
        "full_window_docs": full_docs,
        "documents": len(docs),
        "per_document": {
            "ids": doc_ids,
            "nll_sum": [None if s is None else s[0] for s in scored],  # per length, per document: NLL sum
            "tokens": [None if s is None else s[1] for s in scored],  # per length, per document: tokens scored
        },
    }
    return values, details
