"""The report's figures: perplexity and passkey accuracy against length, and the passkey depth ×
length grid. Colours, line styles and axes come from :mod:`cocattn.report.plots`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from cocattn.evaluate.results import display_name, scaling_label, scaling_sort_key
from cocattn.report.format import length_label
from cocattn.report.plots import (
    mark_training_length,
    model_colours,
    plain_log_axis,
    pyplot,
    save_figure,
    scaling_styles,
)
from cocattn.tasks.depth import DEPTH_BUCKETS

__all__ = ["plot_perplexity", "plot_passkey", "plot_depth_grid"]


def _training_length(records: Sequence[dict]) -> int | None:
    found = {r.get("training_length") for r in records} - {None}
    return found.pop() if len(found) == 1 else None


def _length_ticks(ax: Any, lengths: Sequence[int], l0: int | None) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [length_label(n) + (f"\n{n / l0:g}×" if l0 else "") for n in lengths])
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
        xs.append(n)
        ys.append(v)
        lo.append(ci[0] if ci else v)
        hi.append(ci[1] if ci else v)
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
            all_lo.append(min(lo))
            all_hi.append(max(hi))
        rat = ratios.get(i) or []
        xs = [n for n, x in zip(r["lengths"], rat) if x is not None]
        points = [x for x in rat if x is not None]  # (ratio, low, high)
        if points:
            axr.plot(xs, [p[0] for p in points], linestyle=style, color=colour, marker="o", markersize=3, linewidth=1.5)
            lo, hi = [p[0] if p[1] is None else p[1] for p in points], [p[0] if p[2] is None else p[2] for p in points]
            if any(p[1] is not None for p in points):
                axr.fill_between(xs, lo, hi, color=colour, alpha=0.10, linewidth=0)
            r_lo.append(min(lo))
            r_hi.append(max(hi))
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
        ax.set_xticks(range(len(r["lengths"])), [length_label(x) for x in r["lengths"]], fontsize=7)
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
