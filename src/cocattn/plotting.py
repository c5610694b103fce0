"""Shared matplotlib helpers: a headless pyplot, atomic PNG writes, and the attention-against-
distance panel used by the attention and RoPE analyses."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

from cocattn.io import PathLike, write_bytes


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: PathLike, dpi: int = 120) -> Path:
    """Render ``fig`` to PNG in memory, publish it atomically at ``path`` (parents created) and
    close it. A full disk or a killed process never leaves a cut-off image behind, which
    ``fig.savefig(path)`` would, since it writes straight into the final name."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        pyplot().close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, buffer.getvalue())
    return path


def distance_panel(ax: Any, curves: Sequence[Sequence[float]], title: str, training_length: int | None = None) -> None:
    """Mean attention against distance on log-log axes, one line per layer."""
    for i, curve in enumerate(curves):
        ax.plot(range(1, len(curve) + 1), curve, linewidth=0.8, label=f"layer {i}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if training_length:
        ax.axvline(training_length, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("distance + 1 (tokens)")
    ax.set_ylabel("mean attention")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
