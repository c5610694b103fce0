"""Text shared by the report's sections and the retrieval tables: values with their intervals,
Markdown tables, row labels, length labels, file-name slugs and the interval level."""

from __future__ import annotations

import re
from typing import Any, Sequence

__all__ = ["format_value", "markdown_table", "row_label", "length_label", "slug", "level_label"]


def row_label(r: dict) -> str:
    """``"model + scaling"``: a record's row in the report's tables."""
    return f"{r['model']} + {r.get('scaling_name', 'none')}"


def slug(text: str) -> str:
    """``text`` as a lower-case file-name part (runs of other characters become ``-``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "row"


def length_label(n: int) -> str:
    """A context length: ``4K`` for a multiple of 1024, else the number."""
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def level_label(confidence: float) -> str:
    """An interval's level as text: ``0.95`` → ``"95%"``."""
    return f"{confidence * 100:g}%"


def _decimals(value: float, metric: str) -> int:
    if metric == "ppl":
        return 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return 2


def format_value(value: Any, metric: str, interval: Sequence[float] | None = None) -> str:
    """``183``, ``183 [176–190]``, ``0.94 [0.84–0.98]``, ``–`` for no value. Perplexity keeps
    three significant digits (up to two decimals), accuracies, ratios and log-probabilities two
    decimals; the interval uses the value's decimals."""
    if value is None:
        return "–"
    d = _decimals(value, metric)
    text = f"{value:.{d}f}"
    if interval is not None:
        text += f" [{interval[0]:.{d}f}–{interval[1]:.{d}f}]"
    return text


def markdown_table(rows: Sequence[tuple], metric: str, first: str = "model + scaling") -> str:
    """A Markdown table: one row per ``(label, {length: value})`` or ``(label, {length: value},
    {length: (low, high) or None})``, one column per length."""
    lengths = sorted({n for row in rows for n in row[1]})
    lines = ["| " + " | ".join([first, *map(length_label, lengths)]) + " |", "|" + "---|" * (len(lengths) + 1)]
    for row in rows:
        label, values = row[0], row[1]
        intervals = row[2] if len(row) > 2 and row[2] is not None else {}
        lines.append(
            "| " + " | ".join([label, *(format_value(values.get(n), metric, intervals.get(n)) for n in lengths)]) + " |"
        )
    return "\n".join(lines)
