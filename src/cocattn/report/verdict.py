"""The verdict at the top of report.md: sentences, from the result records alone, that say whether
each model extrapolates and how sure we are. Each model's perplexity is compared with RoPE's
(:func:`baseline_model`; same scaling, unscaled RoPE for models without rotary embedding) and with
its own at 1× (:func:`reference_length`), as paired-bootstrap ratios over the same documents at 1×
and the longest common length; passkey accuracies are stated with Wilson intervals after the
in-window gate (:func:`in_window_lines`), not ranked. Words come from the interval alone
(:func:`ratio_words`, :func:`change_words`); a record without per-document data gets the point
ratio marked "no interval", and records that scored different documents are not compared.
"""

from __future__ import annotations

from typing import Sequence, cast, overload

from cocattn.evaluate.intervals import DIFFERENT_DOCUMENTS, paired_ratio, passkey_intervals, per_document
from cocattn.evaluate.results import display_name, record_sort_key, scaling_label, scaling_sort_key
from cocattn.report.format import format_value, level_label

__all__ = [
    "IN_WINDOW",
    "COCA_REASON",
    "in_window_lines",
    "verdict_section",
    "baseline_model",
    "ratio_words",
    "change_words",
    "compare_sentence",
    "degradation_sentence",
    "passkey_sentence",
    "reference_length",
    "longest_common_length",
]


def _tokens(n: int) -> str:
    return f"{n:,} tokens"


def _multiple(n: int, l0: int | None) -> str:
    if not l0:
        return f"{n:,} tokens"
    m = n / l0
    return f"{m:g}×" if abs(m - round(m)) < 1e-9 else f"{m:.3g}×"


@overload
def _num(x: float, /) -> str: ...
@overload
def _num(x: float, y: float, /, *xs: float) -> tuple[str, ...]: ...


def _num(*xs: float) -> str | tuple[str, ...]:
    """Ratios with two decimals, or more (up to four) for all of them while fewer would show a
    number that is not 1 as 1.00 (so a ratio and its bounds read consistently, and a bound that
    excludes 1 never reads as 1: 0.995× (0.991–0.999))."""
    decimals = 2
    while decimals < 4 and any(f"{x:.{decimals}f}" == f"{1:.{decimals}f}" and x != 1.0 for x in xs):
        decimals += 1
    out = tuple(f"{x:.{decimals}f}" for x in xs)
    return out[0] if len(out) == 1 else out


def _with_scaling(record: dict) -> str:
    name = record.get("scaling_name", "none")
    return "without scaling" if name == "none" else f"with {scaling_label(name)}"


def ratio_words(low: float, high: float, reference: str) -> str:
    """``"lower than RoPE's"`` when the interval lies below 1, ``"higher than RoPE's"`` above it,
    else ``"not distinguishable from RoPE's at this sample size"``."""
    if high < 1.0:
        return f"lower than {reference}'s"
    if low > 1.0:
        return f"higher than {reference}'s"
    return f"not distinguishable from {reference}'s at this sample size"


def change_words(low: float, high: float) -> str:
    """For a model against itself at a longer length: ``"it degrades"`` (interval above 1), ``"it
    improves"`` (below 1), else ``"no change distinguishable at this sample size"``."""
    if low > 1.0:
        return "it degrades"
    if high < 1.0:
        return "it improves"
    return "no change distinguishable at this sample size"


def reference_length(record: dict) -> int | None:
    """The record's "1×": its training length when it was evaluated there (with a value), else
    its shortest length with a value."""
    measured = [n for n, v in zip(record["lengths"], record["values"]) if v is not None]
    if not measured:
        return None
    l0 = record.get("training_length")
    return l0 if l0 in measured else min(measured)


def longest_common_length(*records: dict) -> int | None:
    """The longest length at which every record has a value."""
    common = set.intersection(*({n for n, v in zip(r["lengths"], r["values"]) if v is not None} for r in records))
    return max(common) if common else None


def _value(record: dict, n: int) -> float:
    return record["values"][record["lengths"].index(n)]


def _ratio(a: dict, na: int, b: dict, nb: int, confidence: float, resamples: int) -> tuple[float, dict | None, str]:
    """(point ratio, paired interval dict or None, reason for no interval)."""
    found, reason = paired_ratio(a, na, b, nb, confidence, resamples)
    if found is not None:
        return found["ratio"], found, ""
    return _value(a, na) / _value(b, nb), None, reason


def compare_sentence(record: dict, base: dict, n: int, confidence: float, resamples: int, *, first: bool = True) -> str:
    """One sentence: ``record``'s perplexity at length ``n`` as a multiple of ``base``'s, with the
    paired interval and its plain-words reading."""
    name, ref = display_name(record), display_name(base)
    l0 = base.get("training_length")
    ratio, found, reason = _ratio(record, n, base, n, confidence, resamples)
    if not first:  # the short form that follows a first sentence about the same pair
        if reason == DIFFERENT_DOCUMENTS:
            return ""
        if found is None:
            return f"At {_multiple(n, l0)} ({_tokens(n)}): {_num(ratio)}× (no interval)."
        r, low, high = _num(ratio, found["low"], found["high"])
        return (
            f"At {_multiple(n, l0)} ({_tokens(n)}): {r}× ({low}–{high}), "
            f"{ratio_words(found['low'], found['high'], ref)}."
        )
    where = f"At {_multiple(n, l0)} the training length ({_tokens(n)})"
    if found is None and reason == DIFFERENT_DOCUMENTS:
        return f"{where}, {name} and {ref} were not compared: {reason}."
    if found is None:
        return f"{where}, {name}'s perplexity is {_num(ratio)}× {ref}'s (no interval)."
    r, low, high = _num(ratio, found["low"], found["high"])
    return (
        f"{where}, {name}'s perplexity is {r}× {ref}'s ({level_label(confidence)} interval "
        f"{low}–{high}, paired bootstrap over {found['documents']} documents): "
        f"{ratio_words(found['low'], found['high'], ref)}."
    )


def degradation_sentence(record: dict, confidence: float, resamples: int) -> str | None:
    """``RoPE without scaling: 1.45× [1.38–1.52] from 1× to 16× (166 → 241, paired over 10
    documents): it degrades.`` (None when the record has fewer than two lengths with values)."""
    n0, n1 = reference_length(record), longest_common_length(record)
    if n0 is None or n1 is None or n1 == n0:
        return None
    l0 = record.get("training_length")
    head = (
        f"{display_name(record)} {_with_scaling(record)}: perplexity {format_value(_value(record, n0), 'ppl')} at "
        f"{_multiple(n0, l0)} → {format_value(_value(record, n1), 'ppl')} at {_multiple(n1, l0)} ({_tokens(n1)})"
    )
    ratio, found, reason = _ratio(record, n1, record, n0, confidence, resamples)
    if found is None:
        return f"{head}, {_num(ratio)}× (no interval)."
    r, low, high = _num(ratio, found["low"], found["high"])
    return (
        f"{head}, {r}× [{low}–{high}] (paired over {found['documents']} documents): "
        f"{change_words(found['low'], found['high'])}."
    )


def passkey_sentence(record: dict, confidence: float) -> str | None:
    """``RoPE without scaling: 0.94 [0.84–0.98] at 1× (47 of 50), 0.00 [0.00–0.07] at 16× (0 of 50).``"""
    n0, n1 = reference_length(record), longest_common_length(record)
    if n0 is None or n1 is None:  # both None together: the same lengths with values
        return None
    intervals = passkey_intervals(record, confidence)["values"]
    l0 = record.get("training_length")
    parts = []
    for n in dict.fromkeys([n0, n1]):
        j = record["lengths"].index(n)
        value, cases, ci = record["values"][j], (record.get("counts") or [0] * len(record["lengths"]))[j], intervals[j]
        interval = f" [{ci[0]:.2f}–{ci[1]:.2f}]" if ci else " (no interval)"
        count = f"{round(value * cases)} of {cases}" if cases else "cases unknown"
        parts.append(f"{value:.2f}{interval} at {_multiple(n, l0)} ({count})")
    return f"{display_name(record)} {_with_scaling(record)}: " + ", ".join(parts) + "."


IN_WINDOW = 0.9
"""In-window passkey accuracy (1×, no scaling) at which a model counts as retrieving."""

PARTLY = 0.1
"""A model whose 1× interval starts at or above this retrieves in part (below :data:`IN_WINDOW`)."""

COCA_REASON = (
    'Measured reason, for CoCA (docs/LAB.md, "Why CoCA learns to retrieve late"): optimisation, not '
    "capacity: the tiny-cpu CoCA-Slack model trained three times longer (1,800 steps) retrieves 0.94 "
    "[0.84–0.98] in-window; CoCA learns to copy later than RoPE, not never."
)
"""The one sentence the verdict adds when a CoCA model does not retrieve in-window."""


def in_window_lines(passkey: Sequence[dict], confidence: float) -> list[str]:
    """The in-window gate: a model retrieves when its accuracy at 1× without scaling is at least
    :data:`IN_WINDOW`; below it, its passkey accuracy beyond the window says nothing about
    extrapolation (for CoCA the sentence adds :data:`COCA_REASON`). Returns one bullet naming those
    that retrieve, then one per model that does not; [] without a plain passkey record."""
    plain = [r for r in passkey if r.get("scaling_name", "none") == "none" and reference_length(r) is not None]
    if not plain:
        return []
    passed = [r for r in plain if _value(r, cast(int, reference_length(r))) >= IN_WINDOW]  # plain: has one
    lines = [
        f"- Retrieving in-window (≥ {IN_WINDOW:.2f} at 1×, no scaling): "
        + (", ".join(display_name(r) for r in passed) or "no model")
        + "."
    ]
    for r in plain:
        if r in passed:
            continue
        n0 = cast(int, reference_length(r))  # plain keeps only records that have one
        j = r["lengths"].index(n0)
        ci = passkey_intervals(r, confidence)["values"][j]
        interval = f" [{ci[0]:.2f}–{ci[1]:.2f}]" if ci else ""
        logprob = ((r.get("details") or {}).get("logprob") or [None] * len(r["lengths"]))[j]
        key = f", key log-probability {logprob:.2f}" if logprob is not None else ""
        value, where = _value(r, n0), f"at {_multiple(n0, r.get('training_length'))}{key}"
        if ci and ci[0] >= PARTLY:
            text = (
                f"- {display_name(r)} retrieves in part ({value:.2f}{interval} {where}): below the bar, so its "
                "accuracy beyond the window is best read against its own 1×."
            )
        else:
            text = (
                f"- {display_name(r)} does not retrieve in-window ({value:.2f}{interval} {where}): it has not "
                "learned to copy the key, so its passkey accuracy beyond the window says nothing about extrapolation."
            )
        if str(r.get("attention", "")).startswith("coca"):
            text += " " + COCA_REASON
        lines.append(text)
    return lines


def baseline_model(records: Sequence[dict]) -> str | None:
    """The model the others are compared with: the one named ``rope``, else the only model with
    RoPE attention; None when there is no such single model."""
    models = {r["model"] for r in records}
    if "rope" in models:
        return "rope"
    rope = {r["model"] for r in records if r.get("attention") == "rope"}
    return rope.pop() if len(rope) == 1 else None


def verdict_section(records: Sequence[dict], confidence: float, resamples: int) -> list[str]:
    """The Markdown lines of the verdict (``## Verdict`` and its bullets) for the records of one
    report (one record per model, scaling and metric)."""
    ppl = sorted((r for r in records if r["metric"] == "ppl"), key=record_sort_key)
    passkey = sorted((r for r in records if r["metric"] == "passkey"), key=record_sort_key)
    if not ppl and not passkey:
        return []
    level = level_label(confidence)
    md = [
        "## Verdict",
        "",
        f"Generated from the result JSON by `cocattn.report.verdict`. Perplexity ratios: {level} paired bootstrap "
        f"intervals over the same documents ({resamples:,} resamples); passkey accuracies: {level} Wilson "
        "intervals. A ratio is called lower or higher only when its interval excludes 1.",
        "",
    ]
    base_model = baseline_model(ppl)
    missing: dict[str, list[str]] = {}
    for r in ppl:
        if per_document(r)[0] is None:
            missing.setdefault(per_document(r)[1], []).append(f"{display_name(r)} {_with_scaling(r)}")
    for reason, names in missing.items():
        which = "any perplexity record" if len(names) == len(ppl) else f"the perplexity of {', '.join(names)}"
        md += [
            f"> **No intervals** for {which}: {reason}. Ratios without one are point estimates, marked "
            '"no interval", and are not called lower or higher.',
            "",
        ]
    if ppl:
        md += ["**Perplexity against RoPE** (same scaling, at 1× and at the longest length evaluated):", ""]
        by_key = {(r["model"], r.get("scaling_name", "none")): r for r in ppl}
        lines = []
        if base_model is None:
            lines.append("- No single RoPE model in these results: perplexities are not compared across models.")
        else:
            scalings = sorted({r.get("scaling_name", "none") for r in ppl}, key=scaling_sort_key)
            for scaling in scalings:
                base = by_key.get((base_model, scaling))
                others = [r for r in ppl if r["model"] != base_model and r.get("scaling_name", "none") == scaling]
                if base is None or not others:
                    continue
                for r in others:
                    n0, n1 = reference_length(base), longest_common_length(r, base)
                    if n1 is None:
                        continue
                    text = compare_sentence(r, base, n1, confidence, resamples)
                    if n0 is not None and n0 != n1 and n0 in r["lengths"] and _value(r, n0) is not None:
                        text = (text + " " + compare_sentence(r, base, n0, confidence, resamples, first=False)).strip()
                    lines.append(f"- *{scaling_label(scaling)}*: {text}")
        md += (lines or ["- Nothing to compare: no model besides RoPE has a perplexity record."]) + [""]
        md += ["**Degradation with length** (each model against itself, same documents):", ""]
        md += [f"- {s}" for s in (degradation_sentence(r, confidence, resamples) for r in ppl) if s] + [""]
    if passkey:
        md += ["**Passkey retrieval** (accuracy at 1× and at the longest length, correct of cases):", ""]
        md += in_window_lines(passkey, confidence)
        md += [f"- {s}" for s in (passkey_sentence(r, confidence) for r in passkey) if s] + [""]
    return md
