"""The plots of ``cocattn analyze``: attention of the last query against key position (the paper's
Figure 11), attention against distance, and the RoPE anomaly per plane. Each takes the result
dictionary of :func:`cocattn.evaluate.attention.analyze_attention` or
:func:`cocattn.evaluate.rope_anomaly.analyze_rope` and writes one PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cocattn.report.plots import distance_panel, pyplot, save_figure

__all__ = ["plot_attention", "plot_distance", "plot_rope"]


def plot_attention(result: dict[str, Any], path: str | Path, last: int = 500) -> Path:
    """Figure 11 style: per layer (rows), last-query attention against key position over the full
    range (left) and the last ``last`` tokens (right); one line per scaling."""
    plt = pyplot()
    layers, length = result["layers"], result["length"]
    fig, axes = plt.subplots(layers, 2, figsize=(11, 2.2 * layers), squeeze=False)
    lo = max(0, length - last)
    for i in range(layers):
        for run in result["runs"]:
            values = run["last_query_mean"][i]
            axes[i][0].plot(range(length), values, linewidth=0.8, label=run["scaling_name"])
            axes[i][1].plot(range(lo, length), values[lo:], linewidth=0.8, label=run["scaling_name"])
        axes[i][0].set_ylabel(f"layer {i}\nattention")
        for ax in axes[i]:
            ax.axvline(length - result["training_length"], color="grey", linestyle=":", linewidth=0.8)
            ax.grid(alpha=0.3)
    axes[0][0].set_title(f"last query, full range ({length} tokens)")
    axes[0][1].set_title(f"last {length - lo} tokens")
    axes[-1][0].set_xlabel("key position")
    axes[-1][1].set_xlabel("key position")
    axes[0][1].legend(fontsize=7)
    fig.suptitle(
        f"{result['model']} ({result['attention']}): attention of the last query, "
        f"training length {result['training_length']}",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_distance(result: dict[str, Any], path: str | Path) -> Path:
    """Mean attention against distance (log-log), one panel per scaling, one line per layer."""
    plt = pyplot()
    runs = result["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.6), squeeze=False)
    for ax, run in zip(axes[0], runs):
        distance_panel(ax, run["by_distance"], f"{result['model']} + {run['scaling_name']}", result["training_length"])
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_rope(result: dict[str, Any], path: str | Path) -> Path:
    """Left: anomalous share per plane, one line per layer. Right: mean attention against distance."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    if result["layers"]:
        for i, layer in enumerate(result["layers"]):
            left.plot(
                layer["anomalous_share_by_plane"],
                marker=".",
                linewidth=0.8,
                label=f"layer {i} ({layer['anomalous_share']:.2f})",
            )
        left.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
        left.set_xlabel("RoPE plane j (frequency falls →)")
        left.set_ylabel("share with Θ in (-π, 0)")
        left.set_ylim(0, 1)
        left.legend(fontsize=7)
        left.set_title("anomalous (query, key) pairs per plane", fontsize=9)
    else:
        left.text(0.5, 0.5, result.get("note") or "not a RoPE model", ha="center", va="center")
        left.set_axis_off()
    distance_panel(right, result["by_distance"], "attention against distance")
    right.legend(fontsize=7)
    fig.suptitle(f"{result['model']} ({result['attention']}), {result['length']} tokens", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
