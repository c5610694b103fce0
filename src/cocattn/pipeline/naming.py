"""Result-file naming of ``cocattn reproduce``: the scalings evaluated per kind and their slugs."""

from __future__ import annotations

from typing import Any, Iterable

from cocattn.attention.kinds import ROTARY_KINDS

__all__ = ["eval_scalings", "scaling_slug"]


def eval_scalings(kind: str, factors: Iterable[float]) -> list[dict[str, Any] | None]:
    """The plain model (None), then dynamic NTK at each factor for a rotary kind.

    Returns:
        list: ``None`` (plain), then ``{"rope_type": "dynamic", "factor": f}`` per factor (rotary kinds only).
    """
    if kind not in ROTARY_KINDS:
        return [None]
    return [None] + [{"rope_type": "dynamic", "factor": float(f)} for f in factors]


def scaling_slug(scaling: dict[str, Any] | None) -> str:
    """``plain`` or e.g. ``dynamic4``: the scaling's part of a result file name."""
    return "plain" if scaling is None else f"{scaling['rope_type']}{scaling['factor']:g}"
