"""Scores of a task's case records: the metric with Wilson intervals per length, the splits the
report shows, the task's result record, and the effective length of a score curve."""

from __future__ import annotations

from typing import Any, Sequence

from cocattn._checks import check
from cocattn.evaluate.protocol import LanguageModel
from cocattn.evaluate.results import make_result
from cocattn.evaluate.stats import wilson_interval
from cocattn.tasks.depth import DEPTH_BUCKETS, depth_bucket
from cocattn.tasks.ruler import METRIC_TEXT, SCORING, CweSpec, TaskSpec, spec_options

__all__ = ["effective_length", "score", "task_record"]


def _score_counts(rows: Sequence[dict[str, Any]], metric: str) -> tuple[int, int]:
    """(successes, trials) of a task's metric over case records."""
    if metric == "correct":
        return sum(bool(r["correct"]) for r in rows), len(rows)
    return sum(sum(r["found"]) for r in rows), sum(len(r["found"]) for r in rows)


def score(rows: Sequence[dict[str, Any]], metric: str) -> float | None:
    """A task's score over case records (:meth:`CaseRecord.to_dict` dicts): the share of correct
    cases (``metric="correct"``) or of required values found (``"recall"``).

    Returns:
        float | None: the score, None without cases.
    """
    successes, trials = _score_counts(rows, metric)
    return successes / trials if trials else None


def effective_length(
    lengths: Sequence[int], lows: Sequence[float | None], reference: float | None, ratio: float = 0.8
) -> tuple[int | None, float | None]:
    """The largest evaluated length up to which every evaluated length's lower confidence bound
    is above ``threshold = ratio × reference``.

    Args:
        lengths: the evaluated lengths (any order); ``lows``: their lower bounds (None: not measured).
        reference: the score the threshold is a share of (e.g. the unscaled model's at 1×).

    Returns:
        tuple[int | None, float | None]: ``(effective length, threshold)``; the length is None when
        the shortest length's bound is not above the threshold, both are None without a reference.
    """
    check(isinstance(ratio, (int, float)) and 0 < ratio <= 1, "ratio", ratio, "a number in (0, 1]")
    check(len(lengths) == len(lows), "lows", list(lows), f"one lower bound per length ({len(lengths)})")
    if reference is None:
        return None, None
    threshold = ratio * reference
    best = None
    for n, low in sorted(zip(lengths, lows), key=lambda x: x[0]):
        if low is None or low <= threshold:
            break
        best = n
    return best, threshold


def task_record(
    lm: LanguageModel,
    spec: TaskSpec,
    scaling: dict[str, Any] | None,
    lengths: list[int],
    per_length: list[list[dict[str, Any]]],
    metric: str,
    wall_s: float,
    settings: dict[str, Any],
    skipped: dict[int, str] | None = None,
) -> dict:
    """A task's result record (:mod:`cocattn.evaluate.results`, metric ``"retrieval"``) from its
    case records per length (an empty list: a length skipped as too short, its reason in ``skipped``).

    Returns:
        dict: the record, with ``"task"``, Wilson ``ci95`` per length and ``details`` (scores,
        intervals, splits by depth and training window, truncation counts, every case).
    """
    intervals = _intervals(per_length, metric)
    values, lows, highs = intervals["values"], intervals["ci_low"], intervals["ci_high"]
    settings = {
        "task": spec.name,
        "options": spec_options(spec),
        **settings,
        "length_counts": "prompt and gold answer tokens (begin_ids included)",
    }
    record = make_result(
        "retrieval",
        lm,
        scaling,
        lengths,
        values,
        counts=[len(r) for r in per_length],
        settings=settings,
        details=_task_details(lm, spec, per_length, metric, intervals, skipped),
        wall_s=wall_s,
    )
    record["task"] = spec.name
    record["ci95"] = [None if lo is None else [lo, hi] for lo, hi in zip(lows, highs)]  # Wilson, as passkey's
    record["settings"].setdefault("confidence", 0.95)
    return record


def _intervals(per_length: list[list[dict[str, Any]]], metric: str) -> dict[str, list]:
    """Per length: score, Wilson 95% bounds, successes and trials (None, None, None, 0, 0 for a
    length without cases)."""
    values: list[float | None] = []
    lows: list[float | None] = []
    highs: list[float | None] = []
    successes: list[int] = []
    trials: list[int] = []
    for rows in per_length:
        s, n = _score_counts(rows, metric)
        if n == 0:  # a length skipped as too short
            for out in (values, lows, highs):
                out.append(None)
            successes.append(0)
            trials.append(0)
            continue
        low, high = wilson_interval(s, n)
        values.append(s / n)
        lows.append(low)
        highs.append(high)
        successes.append(s)
        trials.append(n)
    return {"values": values, "ci_low": lows, "ci_high": highs, "successes": successes, "trials": trials}


def _task_details(
    lm: LanguageModel,
    spec: TaskSpec,
    per_length: list[list[dict[str, Any]]],
    metric: str,
    intervals: dict[str, list],
    skipped: dict[int, str] | None,
) -> dict[str, Any]:
    """A task record's ``details``: the scoring, intervals, splits by depth and training window,
    prompt and output truncation counts, and every case, per length."""

    def mean(rows: list[dict[str, Any]], key: str) -> float | None:
        return sum(float(r[key]) for r in rows) / len(rows) if rows else None

    has_depth = not isinstance(spec, CweSpec)
    return {
        "metric": metric,
        "metric_definition": METRIC_TEXT[metric],
        "scoring": SCORING,
        "successes": intervals["successes"],
        "trials": intervals["trials"],
        "ci_low": intervals["ci_low"],
        "ci_high": intervals["ci_high"],
        "confidence": 0.95,
        "correct": [mean(rows, "correct") for rows in per_length],
        "recall": [mean(rows, "recall") for rows in per_length],
        "by_depth": (
            {
                b: [score([r for r in rows if depth_bucket(r["depth"]) == b], metric) for rows in per_length]
                for b in DEPTH_BUCKETS
            }
            if has_depth
            else None
        ),
        "within_training": [score([r for r in rows if r["within_training"]], metric) for rows in per_length],
        "beyond_training": [score([r for r in rows if not r["within_training"]], metric) for rows in per_length],
        "short_prompts": [sum(r["shortfall"] > 0 for r in rows) for rows in per_length],
        "max_shortfall": [max((r["shortfall"] for r in rows), default=0) for rows in per_length],
        "truncated_outputs": [sum(r["output_truncated"] for r in rows) for rows in per_length],
        "wrapped_haystacks": [sum(r["haystack_wrapped"] for r in rows) for rows in per_length],
        "generation": lm.generation_mode,
        "skipped": {str(n): reason for n, reason in (skipped or {}).items()},
        "cases": per_length,
    }
