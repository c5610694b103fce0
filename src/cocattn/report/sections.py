"""The sections of report.md after the verdict: perplexity, passkey and retrieval. Each is a
function ``(records, ctx) -> Markdown lines`` that also writes its plots (:data:`SECTIONS`); a new
metric plugs in by adding one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from cocattn.evaluate.intervals import paired_ratio, passkey_intervals, ppl_intervals
from cocattn.report.figures import plot_depth_grid, plot_passkey, plot_perplexity
from cocattn.report.format import level_label, markdown_table, row_label
from cocattn.tasks.depth import DEPTH_BUCKETS

__all__ = ["ReportContext", "Section", "SECTIONS", "perplexity_section", "passkey_section", "retrieval_section"]


@dataclass
class ReportContext:
    """What every section needs besides its records: where to write plots, and the level and
    resamples of the intervals."""

    out: Path
    confidence: float
    resamples: int

    @property
    def level(self) -> str:
        return level_label(self.confidence)


def _by_length(r: dict, values: Sequence[Any] | None) -> dict[int, Any]:
    return dict(zip(r["lengths"], values if values is not None else [None] * len(r["lengths"])))


def _settings_line(records: Sequence[dict]) -> str:
    keys = sorted({k for r in records for k in r.get("settings", {})})
    parts = []
    for k in keys:
        values = sorted({str(r["settings"].get(k)) for r in records if k in r.get("settings", {})})
        parts.append(f"{k} = {', '.join(values)}")
    return "; ".join(parts)


def _missing_note(labels: Sequence[str], reason: str, what: str, remedy: str) -> list[str]:
    return [f"> **No {what} for** {', '.join(labels)}: {reason}. {remedy}", ""]


def perplexity_section(records: Sequence[dict], ctx: ReportContext) -> list[str]:
    """Perplexity with bootstrap intervals, perplexity relative to 1× with paired intervals, the
    plot ``ppl_vs_length.png``."""
    from cocattn.report.verdict import reference_length

    ppl = [r for r in records if r["metric"] == "ppl"]
    if not ppl:
        return []
    intervals: dict[int, list[tuple[float, float] | None]] = {}
    ratios: dict[int, list[tuple[float, float | None, float | None] | None]] = {}
    missing: dict[str, list[str]] = {}
    for i, r in enumerate(ppl):
        found, reason = ppl_intervals(r, ctx.confidence, ctx.resamples)
        if found is None:
            missing.setdefault(reason, []).append(row_label(r))
        else:
            intervals[i] = found
        n0 = reference_length(r)
        ratios[i] = [
            None if n0 is None or v is None else _ratio_triple(r, n, n0, ctx) for n, v in zip(r["lengths"], r["values"])
        ]
    plot_perplexity(ppl, ctx.out / "ppl_vs_length.png", intervals, ratios, ctx.level)
    docs = sorted({str(r["settings"].get("documents", "?")) for r in ppl})
    md = [
        "## Perplexity (sliding window, token-weighted)",
        "",
        markdown_table(
            [(row_label(r), _by_length(r, r["values"]), _by_length(r, intervals.get(i))) for i, r in enumerate(ppl)],
            "ppl",
        ),
        "",
    ]
    if intervals:
        md += [
            f"In brackets: the {ctx.level} interval, a bootstrap over the {' / '.join(docs)} documents "
            f"({ctx.resamples:,} resamples, seed 0).",
            "",
        ]
    for reason, labels in missing.items():
        md += _missing_note(
            ["any perplexity record"] if len(labels) == len(ppl) else labels,
            reason,
            "intervals",
            "Perplexities and their ratios are shown without intervals; rerun `cocattn eval ppl` (or "
            "`cocattn reproduce` after deleting those result files) to get them.",
        )

    def bounds(x: tuple | None) -> tuple | None:
        return None if x is None or x[1] is None else x[1:]

    md += [
        "Perplexity relative to the same model's at 1× (the training length)"
        + (f", {ctx.level} interval (paired over the same documents) in brackets:" if intervals else ":"),
        "",
        markdown_table(
            [
                (
                    row_label(r),
                    _by_length(r, [None if x is None else x[0] for x in ratios[i]]),
                    _by_length(r, [bounds(x) for x in ratios[i]]),
                )
                for i, r in enumerate(ppl)
            ],
            "ratio",
        ),
        "",
    ]
    md += [
        f"Settings: {_settings_line(ppl)}. Tokens scored per length: "
        + ", ".join(sorted({str(c) for r in ppl for c in r.get("counts", []) if c}))
        + ".",
        "",
        "![perplexity against length](ppl_vs_length.png)",
        "",
    ]
    return md


def _ratio_triple(r: dict, n: int, n0: int, ctx: ReportContext) -> tuple[float, float | None, float | None]:
    """``(ppl(n) / ppl(n0), low, high)`` paired over documents; without per-document data the
    point ratio with ``None`` bounds."""
    found, _ = paired_ratio(r, n, r, n0, ctx.confidence, ctx.resamples)
    if found is None:
        return (r["values"][r["lengths"].index(n)] / r["values"][r["lengths"].index(n0)], None, None)
    return (found["ratio"], found["low"], found["high"])


def passkey_section(records: Sequence[dict], ctx: ReportContext) -> list[str]:
    """Passkey accuracy, exact match and splits with Wilson intervals, key log-probabilities,
    ``passkey_vs_length.png`` and ``passkey_depth.png``."""
    passkey = [r for r in records if r["metric"] == "passkey"]
    if not passkey:
        return []
    found = [passkey_intervals(r, ctx.confidence) for r in passkey]
    plot_passkey(passkey, ctx.out / "passkey_vs_length.png", {i: f["values"] for i, f in enumerate(found)}, ctx.level)
    plot_depth_grid(passkey, ctx.out / "passkey_depth.png")

    def table(key: str, details: bool = True) -> str:
        return markdown_table(
            [
                (row_label(r), _by_length(r, r["details"][key] if details else r["values"]), _by_length(r, f[key]))
                for r, f in zip(passkey, found)
            ],
            "acc",
        )

    md = [
        "## Passkey retrieval",
        "",
        f"Accuracy (the key appears in the greedy output), {ctx.level} Wilson interval in brackets:",
        "",
        table("values", details=False),
        "",
        "Exact match (the first number generated is the key):",
        "",
        table("exact"),
        "",
        "Mean log-probability of the key's tokens given the prompt (higher is better):",
        "",
        markdown_table([(row_label(r), _by_length(r, r["details"]["logprob"])) for r in passkey], "logprob"),
        "",
        "Accuracy when the key lies within the last training-length tokens / before them:",
        "",
        markdown_table(
            [
                (f"{row_label(r)} ({part})", _by_length(r, r["details"][key]), _by_length(r, f[key]))
                for r, f in zip(passkey, found)
                for part, key in (("within", "within_training"), ("beyond", "beyond_training"))
            ],
            "acc",
        ),
        "",
    ]
    no_cases = [row_label(r) for r, f in zip(passkey, found) if all(x is None for x in f["exact"])]
    if no_cases:
        md += _missing_note(
            no_cases,
            "the result JSON has no per-case records",
            "intervals of the splits",
            "Accuracies are shown with intervals from their counts; the splits without.",
        )
    md += [
        f"Settings: {_settings_line(passkey)}. Generation: "
        + "; ".join(sorted({str(r["details"].get("generation")) for r in passkey}))
        + ".",
        "",
        "![passkey accuracy against length](passkey_vs_length.png)",
        "",
        "### Accuracy by depth of the key",
        "",
        "![passkey accuracy by depth and length](passkey_depth.png)",
        "",
    ]
    for r, f in zip(passkey, found):
        rows = [(b, _by_length(r, r["details"]["by_depth"][b]), _by_length(r, f["by_depth"][b])) for b in DEPTH_BUCKETS]
        md += [f"**{row_label(r)}**", "", markdown_table(rows, "acc", first="depth"), ""]
    return md


def retrieval_section(records: Sequence[dict], ctx: ReportContext) -> list[str]:
    """The retrieval suite's section (:mod:`cocattn.report.retrieval`)."""
    from cocattn.report.retrieval import retrieval_section as section

    return section(records, ctx.out)


Section = Callable[[Sequence[dict], ReportContext], list[str]]
SECTIONS: tuple[Section, ...] = (perplexity_section, passkey_section, retrieval_section)
"""The report's sections after the verdict, in order."""
