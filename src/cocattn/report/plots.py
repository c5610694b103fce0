"""Shared matplotlib helpers: a headless pyplot, atomic PNG writes, the attention-against-
distance panel used by the attention and RoPE analyses, and the report's visual vocabulary: one
colour per attention kind, one line style per RoPE scaling, plain-number log ticks and the
labelled training-length line."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

from cocattn.files import PathLike, write_bytes

KIND_COLOURS = {"rope": "#0072B2", "coca": "#D55E00", "coca-strict": "#CC79A7", "alibi": "#009E73", "nope": "#444444"}
"""One colour per attention kind (Okabe-Ito, readable with colour-blindness)."""
FALLBACK_COLOURS = ("#E69F00", "#56B4E9", "#8C564B", "#BCBD22", "#17BECF", "#9467BD")
"""For models that are none of the kinds above (or a second model of one kind), in turn."""
SCALING_STYLES = {
    "none": "-",
    "dynamic x2": (0, (7, 2)),
    "dynamic x4": (0, (3, 2)),
    "dynamic x8": (0, (1, 1.5)),
    "linear x4": (0, (7, 2, 1, 2)),
    "yarn x4": (0, (7, 2, 1, 2, 1, 2)),
}
"""One line style per scaling: plain solid, dynamic NTK ×2 / ×4 / ×8 long / short dashes / dots."""
FALLBACK_STYLES = ((0, (5, 1, 1, 1)), (0, (2, 1, 2, 4)), (0, (9, 3)), (0, (1, 3)))


def model_colours(models: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """``{model: colour}`` for ``(model, attention kind)`` pairs: a model named after its kind, or
    the first model of a kind, gets the kind's colour; the others fallback colours in turn."""
    out: dict[str, str] = {}
    used: set[str] = set()
    ordered = sorted(models, key=lambda m: (m[0] != m[1], m[0]))  # a model named after its kind first
    fallback = iter(FALLBACK_COLOURS * (1 + len(models)))
    for model, kind in ordered:
        if model in out:
            continue
        colour = KIND_COLOURS.get(kind or "")
        if colour is None or colour in used:
            colour = next(c for c in fallback if c not in used)
        out[model] = colour
        used.add(colour)
    return out


def scaling_styles(names: Sequence[str]) -> dict[str, Any]:
    """``{scaling name: matplotlib line style}``: the fixed map, then fallback dashes in turn."""
    out: dict[str, Any] = {}
    fallback = iter(FALLBACK_STYLES * (1 + len(names)))
    for name in names:
        if name not in out:
            out[name] = SCALING_STYLES.get(name) or next(fallback)
    return out


def plain_number(value: float) -> str:
    """``150``, ``1,500``, ``0.5``, ``2`` (never ``1.5 × 10²``)."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2g}"


def plain_log_axis(ax: Any, low: float, high: float, axis: str = "y", max_ticks: int = 8) -> None:
    """A log axis spanning ``[low, high]`` (padded a little) with ticks at round numbers labelled
    as plain numbers and no minor labels: 1, 1.5, 2, 3, 5, 7 × 10^k over a wide range; over a
    narrow one (less than 3×), evenly spaced round values with as many decimals as they need."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

    low = max(low, 1e-12)
    high = max(high, low * 1.001)
    pad = (high / low) ** 0.06
    lo, hi = low / pad, high * pad
    if hi / lo >= 3:
        for mantissas in ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8), (1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,)):
            ticks = [
                m * 10.0**e
                for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                for m in mantissas
                if lo <= m * 10.0**e <= hi
            ]
            if len(ticks) <= max_ticks:
                break
        formatter = FuncFormatter(lambda v, _: plain_number(v))
    else:
        ticks = [t for t in MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi) if lo <= t <= hi]
        step = ticks[1] - ticks[0] if len(ticks) > 1 else hi - lo
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        formatter = FuncFormatter(lambda v, _: f"{v:,.{decimals}f}")
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    (ax.set_ylim if axis == "y" else ax.set_xlim)(lo, hi)
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(formatter)
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def mark_training_length(ax: Any, training_length: int, label: str | None = None, labelled: bool = True) -> None:
    """A vertical line at the training length, labelled along its left side from the top (unless
    ``labelled`` is false, e.g. in all but the first of several panels)."""
    ax.axvline(training_length, color="#555555", linewidth=1.0, linestyle=(0, (4, 3)), zorder=1)
    if labelled:
        ax.annotate(
            label or f"training length {training_length:,}",
            xy=(training_length, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-2, -4),
            textcoords="offset points",
            ha="right",
            va="top",
            rotation=90,
            fontsize=7.5,
            color="#333333",
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


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
