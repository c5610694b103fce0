"""Markdown tables and matplotlib plots from evaluation result JSON (:mod:`cocattn.evaluate.results`).

``write_report(source, out_dir)`` reads every result record under ``source`` (files or
directories) and writes into ``out_dir``:

- ``report.md``: the verdict (:mod:`cocattn.report.verdict`), then one section per metric: perplexity
  (and perplexity relative to 1×), passkey accuracy / exact match / key log-probability, accuracy
  inside vs beyond the training window and by depth; rows are model + scaling, columns are
  lengths, every value with its confidence interval in brackets (``183 [176–190]``);
- ``ppl_vs_length.png`` (perplexity with its interval band, and each curve divided by its own
  value at 1×), ``passkey_vs_length.png`` (accuracy with Wilson error bars) and
  ``passkey_depth.png`` (one depth × length heatmap per passkey row);
- ``results.csv``: every record as one row.

It needs nothing but the JSON, so ``cocattn report DIR`` redraws a report without rerunning
anything, byte for byte. Intervals are computed from the raw data the records store
(:mod:`cocattn.evaluate.intervals`); where a record lacks them (JSON written before per-document
sums were stored) its intervals are left out and the report says so. When several records share
(model, scaling, metric), the newest (``created``) wins.

Each section is a function ``(records, ctx) -> Markdown lines`` (:data:`SECTIONS`); a new
metric plugs in by adding one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from cocattn.evaluate.intervals import ci_options_of, paired_ratio, passkey_intervals, ppl_intervals
from cocattn.evaluate.results import (
    display_name,
    read_results,
    record_sort_key,
    results_csv,
    scaling_label,
    scaling_sort_key,
)
from cocattn.files import write_text
from cocattn.report.plots import (
    mark_training_length,
    model_colours,
    plain_log_axis,
    pyplot,
    save_figure,
    scaling_styles,
)
from cocattn.tasks.depth import DEPTH_BUCKETS

__all__ = [
    "write_report",
    "markdown_table",
    "format_value",
    "plot_perplexity",
    "plot_passkey",
    "plot_depth_grid",
    "ReportContext",
    "perplexity_section",
    "passkey_section",
    "retrieval_section",
    "SECTIONS",
]


@dataclass
class ReportContext:
    """What every section needs besides its records: where to write plots, and the level and
    resamples of the intervals."""

    out: Path
    confidence: float
    resamples: int

    @property
    def level(self) -> str:
        return f"{self.confidence * 100:g}%"


def _label(r: dict) -> str:
    return f"{r['model']} + {r.get('scaling_name', 'none')}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "row"


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


def _length_label(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def markdown_table(rows: Sequence[tuple], metric: str, first: str = "model + scaling") -> str:
    """A Markdown table: one row per ``(label, {length: value})`` or ``(label, {length: value},
    {length: (low, high) or None})``, one column per length."""
    lengths = sorted({n for row in rows for n in row[1]})
    lines = ["| " + " | ".join([first, *map(_length_label, lengths)]) + " |", "|" + "---|" * (len(lengths) + 1)]
    for row in rows:
        label, values = row[0], row[1]
        intervals = row[2] if len(row) > 2 and row[2] is not None else {}
        lines.append(
            "| " + " | ".join([label, *(format_value(values.get(n), metric, intervals.get(n)) for n in lengths)]) + " |"
        )
    return "\n".join(lines)


def _latest(records: Iterable[dict]) -> list[dict]:
    chosen: dict[tuple, dict] = {}
    for r in sorted(records, key=lambda r: r.get("created", "")):
        chosen[(r["model"], r.get("scaling_name", "none"), r["metric"], r.get("task"))] = r
    return sorted(chosen.values(), key=lambda r: (record_sort_key(r), r["metric"], r.get("task") or ""))


def _by_length(r: dict, values: Sequence[Any] | None) -> dict[int, Any]:
    return dict(zip(r["lengths"], values if values is not None else [None] * len(r["lengths"])))


def _training_length(records: Sequence[dict]) -> int | None:
    found = {r.get("training_length") for r in records} - {None}
    return found.pop() if len(found) == 1 else None


def _length_ticks(ax: Any, lengths: Sequence[int], l0: int | None) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [_length_label(n) + (f"\n{n / l0:g}×" if l0 else "") for n in lengths])
    ax.minorticks_off()
    ax.set_xlim(min(lengths) / 2**0.25, max(lengths) * 2**0.25)


def _figure(panels: int, panel_width: float, height: float = 4.6) -> tuple[Any, list[Any], Any]:
    """A figure with ``panels`` plot axes side by side and a narrow column on the right for the
    legend; returns (figure, plot axes, legend axes)."""
    plt = pyplot()
    fig = plt.figure(figsize=(panels * panel_width + 2.1, height))
    grid = fig.add_gridspec(1, panels + 1, width_ratios=[panel_width] * panels + [1.8])
    axes = [fig.add_subplot(grid[0, i]) for i in range(panels)]
    legend_ax = fig.add_subplot(grid[0, panels])
    legend_ax.axis("off")
    return fig, axes, legend_ax


def _legend(legend_ax: Any, records: Sequence[dict], colours: dict[str, str], styles: dict[str, Any]) -> None:
    """One legend in two groups: colour = model (attention kind), line style = RoPE scaling."""
    from matplotlib.lines import Line2D

    models = list(dict.fromkeys(r["model"] for r in records))
    names = {r["model"]: display_name(r) for r in records}

    def header(text: str) -> Any:
        return Line2D([], [], linestyle="none", label=text)

    handles = [header("attention (colour)")]
    handles += [Line2D([], [], color=colours[m], linewidth=2.5, label=names[m]) for m in models]
    handles += [header(""), header("RoPE scaling at inference (line)")]
    handles += [
        Line2D([], [], color="#333333", linestyle=styles[s], linewidth=1.6, label=scaling_label(s)) for s in styles
    ]
    legend = legend_ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.0, 1.0),
        fontsize=8.5,
        frameon=False,
        handlelength=3.2,
        borderaxespad=0.0,
    )
    for text, handle in zip(legend.get_texts(), handles):
        if handle.get_linestyle() == "None":
            text.set_fontweight("bold")
            text.set_x(-30)


def _curve(r: dict, values: Sequence[Any], intervals: Sequence[Any] | None) -> tuple[list, list, list, list]:
    xs, ys, lo, hi = [], [], [], []
    for j, (n, v) in enumerate(zip(r["lengths"], values)):
        if v is None:
            continue
        ci = intervals[j] if intervals is not None else None
        xs.append(n), ys.append(v), lo.append(ci[0] if ci else v), hi.append(ci[1] if ci else v)
    return xs, ys, lo, hi


def plot_perplexity(
    records: Sequence[dict], path: str | Path, intervals: dict[int, Any], ratios: dict[int, Any], level: str = "95%"
) -> Path:
    """Two panels against context length (log x): perplexity with its interval as a band (log y,
    plain-number ticks), and each curve divided by its own value at 1× with the paired interval.
    ``intervals[i]`` / ``ratios[i]`` belong to ``records[i]``: per length ``(low, high)`` /
    ``(ratio, low, high)`` or None."""
    fig, (ax, axr), legend_ax = _figure(2, 5.4)
    colours = model_colours([(r["model"], r.get("attention")) for r in records])
    styles = scaling_styles([r.get("scaling_name", "none") for r in records])
    all_lo, all_hi, r_lo, r_hi = [], [], [], []
    for i, r in enumerate(records):
        colour, style = colours[r["model"]], styles[r.get("scaling_name", "none")]
        xs, ys, lo, hi = _curve(r, r["values"], intervals.get(i))
        if xs:
            ax.plot(xs, ys, linestyle=style, color=colour, marker="o", markersize=3, linewidth=1.5)
            ax.fill_between(xs, lo, hi, color=colour, alpha=0.10, linewidth=0)
            all_lo.append(min(lo)), all_hi.append(max(hi))
        rat = ratios.get(i) or []
        xs = [n for n, x in zip(r["lengths"], rat) if x is not None]
        points = [x for x in rat if x is not None]  # (ratio, low, high)
        if points:
            axr.plot(xs, [p[0] for p in points], linestyle=style, color=colour, marker="o", markersize=3, linewidth=1.5)
            lo, hi = [p[0] if p[1] is None else p[1] for p in points], [p[0] if p[2] is None else p[2] for p in points]
            if any(p[1] is not None for p in points):
                axr.fill_between(xs, lo, hi, color=colour, alpha=0.10, linewidth=0)
            r_lo.append(min(lo)), r_hi.append(max(hi))
    lengths = sorted({n for r in records for n in r["lengths"]})
    l0 = _training_length(records)
    for a in (ax, axr):
        _length_ticks(a, lengths, l0)
        a.set_xlabel("context length (tokens)" + (" and multiple of the training length" if l0 else ""), fontsize=9)
        a.grid(True, alpha=0.3)
        if l0 and min(lengths) <= l0 <= max(lengths):
            mark_training_length(a, l0)
    if all_lo:
        plain_log_axis(ax, min(all_lo), max(all_hi))
    ax.set_ylabel("perplexity (sliding window)")
    banded = "no interval: no per-document data" if not intervals else f"{level} interval: bootstrap over documents"
    ax.set_title(f"Perplexity ({banded})", fontsize=10)
    if r_lo:
        plain_log_axis(axr, min(min(r_lo), 1.0), max(max(r_hi), 1.0))
    axr.axhline(1.0, color="#999999", linewidth=0.8, zorder=1)
    axr.set_ylabel("perplexity ÷ perplexity at 1×")
    axr.set_title(
        "Degradation: each curve ÷ its own value at 1×" + (f" ({level}, paired)" if intervals else ""), fontsize=10
    )
    _legend(legend_ax, records, colours, styles)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_passkey(records: Sequence[dict], path: str | Path, intervals: dict[int, Any], level: str = "95%") -> Path:
    """Passkey accuracy against length (log x) with Wilson error bars, one panel per scaling
    (sharing the y axis); within a panel the models' points are spread a little sideways so the
    bars do not hide each other."""
    scalings = sorted({r.get("scaling_name", "none") for r in records}, key=scaling_sort_key)
    fig, axes, legend_ax = _figure(len(scalings), 6.6 if len(scalings) == 1 else 3.6)
    colours = model_colours([(r["model"], r.get("attention")) for r in records])
    styles = scaling_styles([r.get("scaling_name", "none") for r in records])
    lengths = sorted({n for r in records for n in r["lengths"]})
    l0 = _training_length(records)
    for ax, scaling in zip(axes, scalings):
        members = [(i, r) for i, r in enumerate(records) if r.get("scaling_name", "none") == scaling]
        for k, (i, r) in enumerate(members):
            xs, ys, lo, hi = _curve(r, r["values"], intervals.get(i))
            if not xs:
                continue
            shift = 2 ** (0.25 * ((k + 0.5) / len(members) - 0.5))
            below, above = [y - a for y, a in zip(ys, lo)], [b - y for y, b in zip(ys, hi)]
            ax.errorbar(
                [x * shift for x in xs],
                ys,
                yerr=[below, above],
                color=colours[r["model"]],
                linestyle=styles[scaling],
                marker="o",
                markersize=3.5,
                linewidth=1.4,
                elinewidth=0.9,
                capsize=2,
            )
        _length_ticks(ax, lengths, l0)
        if l0 and min(lengths) <= l0 <= max(lengths):
            mark_training_length(ax, l0, labelled=ax is axes[0])
        ax.set_ylim(-0.04, 1.04)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0], ["0", "0.25", "0.5", "0.75", "1"] if ax is axes[0] else [""] * 5)
        ax.set_title(scaling_label(scaling), fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("passkey accuracy")
    fig.supxlabel("context length (tokens)" + (" and multiple of the training length" if l0 else ""), fontsize=9)
    fig.suptitle(f"Passkey retrieval ({level} Wilson intervals)", fontsize=10)
    _legend(legend_ax, records, colours, styles)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_depth_grid(records: Sequence[dict], path: str | Path) -> Path:
    """Passkey accuracy by depth bucket × length, one heatmap per record, in a grid with one row
    per model and one column per scaling (a shared colour scale, 0–1; "–" = no case there)."""
    import numpy as np

    plt = pyplot()
    models = list(dict.fromkeys(r["model"] for r in records))
    scalings = sorted({r.get("scaling_name", "none") for r in records}, key=scaling_sort_key)
    cell = {(r["model"], r.get("scaling_name", "none")): r for r in records}
    rows, cols = len(models), len(scalings)
    width = max(len(r["lengths"]) for r in records)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * (0.5 * width + 1.0) + 1.6, rows * 1.9 + 0.6), squeeze=False)
    image = None
    for (a, model), (b, scaling) in ((x, y) for x in enumerate(models) for y in enumerate(scalings)):
        ax, r = axes[a, b], cell.get((model, scaling))
        if r is None:
            ax.axis("off")
            continue
        by_depth = r["details"]["by_depth"]
        grid = np.array([[np.nan if v is None else v for v in by_depth[d]] for d in DEPTH_BUCKETS], dtype=float)
        ax.imshow(np.where(np.isnan(grid), 1.0, np.nan), vmin=0, vmax=1, cmap="Greys", alpha=0.15, aspect="auto")
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(r["lengths"])), [_length_label(x) for x in r["lengths"]], fontsize=7)
        ax.set_yticks(range(len(DEPTH_BUCKETS)), DEPTH_BUCKETS if b == 0 else [""] * len(DEPTH_BUCKETS), fontsize=7)
        for (y, x), v in np.ndenumerate(grid):
            ax.text(
                x,
                y,
                "–" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=6.5,
                color="black" if np.isnan(v) or v >= 0.5 else "white",
            )
        ax.set_title(f"{display_name(r)}, {scaling_label(scaling)}", fontsize=8)
    fig.supxlabel("context length (tokens)", fontsize=8)
    fig.supylabel("depth of the key in the filler", fontsize=8, x=0.004)
    fig.tight_layout(rect=(0.012, 0, 1 - 1.2 / fig.get_figwidth(), 1))
    if image is not None:
        cax = fig.add_axes((1 - 0.95 / fig.get_figwidth(), 0.15, 0.18 / fig.get_figwidth(), 0.7))
        fig.colorbar(image, cax=cax, label="accuracy")
    return save_figure(fig, path, dpi=110)


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
    intervals, ratios, missing = {}, {}, {}
    for i, r in enumerate(ppl):
        found, reason = ppl_intervals(r, ctx.confidence, ctx.resamples)
        if found is None:
            missing.setdefault(reason, []).append(_label(r))
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
            [(_label(r), _by_length(r, r["values"]), _by_length(r, intervals.get(i))) for i, r in enumerate(ppl)], "ppl"
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
                    _label(r),
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
                (_label(r), _by_length(r, r["details"][key] if details else r["values"]), _by_length(r, f[key]))
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
        markdown_table([(_label(r), _by_length(r, r["details"]["logprob"])) for r in passkey], "logprob"),
        "",
        "Accuracy when the key lies within the last training-length tokens / before them:",
        "",
        markdown_table(
            [
                (f"{_label(r)} ({part})", _by_length(r, r["details"][key]), _by_length(r, f[key]))
                for r, f in zip(passkey, found)
                for part, key in (("within", "within_training"), ("beyond", "beyond_training"))
            ],
            "acc",
        ),
        "",
    ]
    no_cases = [_label(r) for r, f in zip(passkey, found) if all(x is None for x in f["exact"])]
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
        md += [f"**{_label(r)}**", "", markdown_table(rows, "acc", first="depth"), ""]
    return md


def retrieval_section(records: Sequence[dict], ctx: ReportContext) -> list[str]:
    """The retrieval suite's section (:mod:`cocattn.report.retrieval`)."""
    from cocattn.report.retrieval import retrieval_section as section

    return section(records, ctx.out)


Section = Callable[[Sequence[dict], ReportContext], list[str]]
SECTIONS: tuple[Section, ...] = (perplexity_section, passkey_section, retrieval_section)
"""The report's sections after the verdict, in order."""


def write_report(
    source: str | Path | Iterable[str | Path] | Sequence[dict],
    out_dir: str | Path,
    *,
    title: str = "cocattn evaluation report",
    notes: Sequence[str] = (),
    confidence: float | None = None,
    resamples: int | None = None,
    sections: Sequence[Section] = SECTIONS,
) -> Path:
    """Write ``report.md``, the PNG plots and ``results.csv`` into ``out_dir``; returns report.md.

    ``source`` is result files / directories, or records already loaded. ``notes`` are bullet
    points put after the verdict (e.g. deviations from the paper's protocol). ``confidence`` and
    ``resamples``: the intervals' level and bootstrap resamples (default: those the records were
    evaluated with, else 0.95 and 2000).
    """
    from cocattn.report.verdict import verdict_section

    if isinstance(source, (list, tuple)) and source and isinstance(source[0], dict):
        records = list(source)
    else:
        records = read_results(source)
    if not records:
        raise ValueError(f"no cocattn result JSON found in {source}")
    records = _latest(records)
    confidence, resamples = ci_options_of(records, confidence, resamples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(out, confidence, resamples)

    md = [f"# {title}", ""]
    md += verdict_section(records, confidence, resamples)
    models = sorted(
        {(r["model"], r.get("kind", "?"), r.get("attention", "?"), r.get("training_length")) for r in records}, key=str
    )
    md.append(
        "Models: "
        + "; ".join(f"`{m}` ({kind}, attention {att}, training length {l0})" for m, kind, att, l0 in models)
        + "."
    )
    md.append("")
    for note in notes:
        md.append(f"- {note}")
    if notes:
        md.append("")
    for section in sections:
        md += section(records, ctx)
    write_text(out / "results.csv", results_csv(records))
    path = out / "report.md"
    write_text(path, "\n".join(md).rstrip() + "\n")
    return path
