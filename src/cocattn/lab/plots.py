"""The lab's plots: accuracy against length (one panel per scaling), learning curves, and the
capacity heatmaps (Zoology's Figure 2: accuracy over width x key-value pairs, one panel per kind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cocattn.lab.summary import display_label, study_labels
from cocattn.report.plots import KIND_COLOURS, mark_training_length, pyplot, save_figure

__all__ = ["plot_lab"]


_label = display_label


def _extrapolation(path: Path, study: dict[str, Any], summary: dict[str, Any]) -> None:
    plt = pyplot()
    scalings = list(study["scalings"])
    fig, axes = plt.subplots(1, len(scalings), figsize=(3.4 * len(scalings) + 0.6, 3.4), sharey=True, squeeze=False)
    l0 = study["task"]["train_length"]
    for ax, scaling in zip(axes[0], scalings):
        for kind in study_labels(study):
            rows = [r for r in summary["accuracy"] if r["kind"] == kind and r["scaling"] == scaling]
            if not rows:
                continue
            rows.sort(key=lambda r: r["length"])
            x = [r["length"] for r in rows]
            colour = KIND_COLOURS.get(kind)
            ax.plot(x, [r["mean"] for r in rows], marker="o", markersize=3, color=colour, label=_label(kind))
            ax.fill_between(
                x, [r["low"] for r in rows], [r["high"] for r in rows], color=colour, alpha=0.18, linewidth=0
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks([l0 * m for m in study["multiples"]], [f"{l0 * m}" for m in study["multiples"]], fontsize=7)
        ax.minorticks_off()
        mark_training_length(ax, l0, labelled=ax is axes[0][0])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(scaling if scaling == "plain" else f"{scaling} (rotary kinds)", fontsize=9)
        ax.set_xlabel("length (tokens)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (mean over seeds, 95% band)")
    axes[0][0].legend(fontsize=7, loc="lower left")  # the plain panel has every kind
    fig.suptitle(f"{study['task']['name']}: accuracy against length", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _learning(path: Path, summary: dict[str, Any]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for r in summary["learning"]:
        colour = KIND_COLOURS.get(r["kind"])
        label = (
            _label(r["kind"])
            + (f" w{r['width']}" if len({x["width"] for x in summary["learning"]}) > 1 else "")
            + (f" p{r['pairs']}" if r["pairs"] else "")
        )
        for curve in r["curves"]:
            ax.plot(r["curve_steps"], curve, color=colour, alpha=0.25, linewidth=0.7)
        ax.plot(r["curve_steps"], r["curve_mean"], color=colour, linewidth=1.8, label=label)
    ax.axhline(summary["target"], color="#555555", linestyle=":", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("in-window accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if summary["learning"]:
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title("learning curves (thin: seeds, thick: mean)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _capacity(path: Path, study: dict[str, Any], summary: dict[str, Any]) -> None:
    plt = pyplot()
    kinds, widths, pairs = study["kinds"], study["widths"], study["pairs"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.0 * len(kinds) + 0.8, 3.3), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.86, top=0.8, bottom=0.18, wspace=0.3)
    image = None
    for ax, kind in zip(axes[0], kinds):
        grid = [[float("nan")] * len(pairs) for _ in widths]
        for r in summary["accuracy"]:
            if r["kind"] == kind and r["width"] in widths and r["pairs"] in pairs and r["multiple"] == 1:
                grid[widths.index(r["width"])][pairs.index(r["pairs"])] = r["mean"]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        for i in range(len(widths)):
            for j in range(len(pairs)):
                value = grid[i][j]
                if value == value:
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if value < 0.6 else "black",
                    )
        ax.set_xticks(range(len(pairs)), [str(p) for p in pairs], fontsize=7)
        ax.set_yticks(range(len(widths)), [str(w) for w in widths], fontsize=7)
        ax.set_xlabel("key-value pairs")
        ax.set_title(_label(kind), fontsize=9)
    axes[0][0].set_ylabel("model width")
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), fraction=0.03, label="accuracy")
    fig.suptitle("MQAR in-window accuracy (mean over seeds)", fontsize=10)
    save_figure(fig, path)


def _diagnostics(path: Path, summary: dict[str, Any]) -> None:
    """The diagnostics along training, one panel each, one line per model label."""
    rows = [r for r in summary["learning"] if "diagnostics" in r]
    names = [
        ("score_std", "score spread", True),
        ("tau_zero", "τ zeroed by the ReLU", False),
        ("grad_q", "‖∇ Q proj.‖", True),
        ("grad_k", "‖∇ K / T proj.‖", True),
    ]
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.4), squeeze=False)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (name, title, log) in zip(axes[0], names):
        for i, r in enumerate(rows):
            points = [(s, v) for s, v in zip(r["curve_steps"], r["diagnostics"]["curves"][name]) if v is not None]
            if not points:
                continue
            kind = r["kind"].partition("+")[0]
            colour = KIND_COLOURS.get(r["kind"]) or cycle[i % len(cycle)]
            style = "--" if kind == "coca-strict" else "-"
            ax.plot(*zip(*points), color=colour, linestyle=style, linewidth=1.2, label=_label(r["kind"]))
        if log:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="center right", ncol=1)
    fig.suptitle("attention diagnostics during training (mean over layers and seeds)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.84, 1))
    save_figure(fig, path)


def plot_lab(directory: Path, study: dict[str, Any], summary: dict[str, Any]) -> None:
    """Write the study's PNGs into ``directory``."""
    if any("diagnostics" in r for r in summary["learning"]):
        _diagnostics(directory / "diagnostics.png", summary)
    if study["study"] == "capacity":
        _capacity(directory / "capacity.png", study, summary)
    else:
        _extrapolation(directory / "extrapolation.png", study, summary)
    _learning(directory / "learning.png", summary)
