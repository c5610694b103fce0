"""Named settings of CoCA's training options (:class:`cocattn.attention.coca_options.CocaOptions`)
that the ``remedies`` study compares against the released code's CoCA. Each targets the slow start
of CoCA's cubic score (``q² · τ``) at init std 0.02 and, but for the learning-rate multiplier and
the two changes of τ, multiplies the initial score spread by about 4 (docs/LAB.md, "The remedies").
"""

from __future__ import annotations

from typing import Any

from cocattn._checks import check_choice
from cocattn.attention.coca_options import CocaOptions

__all__ = ["REMEDIES", "RELEASED", "remedy_options", "function_class"]

RELEASED = "released"
"""The released code's CoCA: no option set."""

REMEDIES: dict[str, dict[str, Any]] = {
    RELEASED: {},
    "t-init": {"t_init_std": 0.08},
    "q-init": {"q_init_std": 0.04},
    "qt-init": {"t_init_std": 0.08, "q_init_std": 0.04},
    "score-scale": {"score_scale": 4.0},
    "t-lr": {"t_lr_mult": 4.0},
    "t-bias": {"t_bias": 0.1},
    "softplus": {"tau": "softplus"},
}
"""Remedy name → CoCA options (field names of :class:`CocaOptions`)."""


def remedy_options(name: str) -> CocaOptions:
    """The options of remedy ``name`` (one of :data:`REMEDIES`)."""
    check_choice("--remedies", name, tuple(REMEDIES))
    return CocaOptions(**REMEDIES[name])


def function_class(name: str) -> str:
    """``"same function class"`` or ``"deviation"`` (a model without biases, as the lab's)."""
    return "deviation" if remedy_options(name).deviations(has_bias=False) else "same function class"
