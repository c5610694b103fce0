"""CoCA's training options: how the T and Q projections start, how τ is formed, how fast T learns
(:class:`CocaOptions`; ``coca_*`` fields of ``GPTConfig`` and ``CocaLlamaConfig``). Each is
labelled *same function class* as the paper (``t_init_std``, ``q_init_std``, ``t_lr_mult``,
``score_scale``) or *deviation* (``tau="softplus"``, ``t_bias``); every default is the released
code's. Why they exist and what they measured: docs/LAB.md, "Why CoCA learns to retrieve late".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping

import torch

from cocattn._checks import check, check_choice

__all__ = [
    "TAU_ACTIVATIONS",
    "CocaOptions",
    "tau_activation",
    "init_coca_projections",
    "score_scale_parameter",
    "t_lr_multipliers",
    "scale_queries",
]

TAU_ACTIVATIONS = ("relu", "softplus")
"""How the tied plane sum becomes τ: ``relu`` (the paper) or ``softplus`` (a deviation)."""


def tau_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise map of :data:`TAU_ACTIVATIONS` ``name``."""
    check_choice("coca_tau", name, TAU_ACTIVATIONS)
    return torch.relu if name == "relu" else torch.nn.functional.softplus


@dataclass(frozen=True)
class CocaOptions:
    """CoCA's optional training knobs (module docstring); the defaults are the released code's."""

    tau: str = "relu"
    """``relu`` (paper) or ``softplus`` (deviation: τ never zero, so every plane gets a gradient)."""
    t_init_std: float | None = None
    """Init std of the T projection (``None``: the model's). Same function class."""
    q_init_std: float | None = None
    """Init std of the Q projection of CoCA layers (``None``: the model's). Same function class."""
    t_bias: float | None = None
    """A bias on the T projection, initialised to this value (``None``: none, or zeros when the
    model has biases). A deviation when the model has no biases: ``τ = relu((t1 + t2) / 2 + b)``."""
    score_scale: float | None = None
    """A learnable positive score multiplier per query head, ``exp(ℓ)`` with ``ℓ`` starting at
    ``log(score_scale)`` (``None``: none). Same function class."""
    t_lr_mult: float = 1.0
    """Learning-rate multiplier of the T projection. Same function class."""

    def __post_init__(self) -> None:
        check_choice("coca_tau", self.tau, TAU_ACTIVATIONS)
        for name in ("t_init_std", "q_init_std"):
            value = getattr(self, name)
            check(value is None or _finite(value) and value > 0, f"coca_{name}", value, "None or a positive number")
        check(self.t_bias is None or _finite(self.t_bias), "coca_t_bias", self.t_bias, "None or a finite number")
        check(
            self.score_scale is None or _finite(self.score_scale) and self.score_scale > 0,
            "coca_score_scale",
            self.score_scale,
            "None or a positive number",
        )
        check(_finite(self.t_lr_mult) and self.t_lr_mult > 0, "coca_t_lr_mult", self.t_lr_mult, "a positive number")

    @classmethod
    def from_prefixed(cls, source: Any) -> "CocaOptions":
        """The options held as ``coca_<name>`` attributes or keys of ``source`` (missing: default)."""
        get = source.get if isinstance(source, Mapping) else lambda key, default: getattr(source, key, default)
        return cls(**{f.name: get(f"coca_{f.name}", f.default) for f in fields(cls)})

    def deviations(self, has_bias: bool = False) -> list[str]:
        """The options set here that change the function class (empty: the paper's CoCA)."""
        found = []
        if self.tau != "relu":
            found.append(f"coca_tau={self.tau}")
        if self.t_bias is not None and not has_bias:
            found.append(f"coca_t_bias={self.t_bias}")
        return found

    def is_default(self) -> bool:
        return self == CocaOptions()


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def init_coca_projections(
    q_proj: torch.nn.Linear, t_proj: torch.nn.Linear, options: CocaOptions, base_std: float
) -> None:
    """Apply the init options to projections drawn at ``base_std``: the weights are rescaled to
    ``t_init_std`` / ``q_init_std`` (no new random draws, so the default draws are unchanged) and
    T's bias is filled with ``t_bias``."""
    with torch.no_grad():
        for proj, std in ((t_proj, options.t_init_std), (q_proj, options.q_init_std)):
            if std is not None:
                check(base_std > 0, "model.init_std", base_std, "a positive number (the CoCA init options rescale it)")
                proj.weight.mul_(std / base_std)
        if options.t_bias is not None:
            check(t_proj.bias is not None, "t_proj.bias", None, "a bias parameter (built with coca_t_bias)")
            t_proj.bias.fill_(options.t_bias)


def t_lr_multipliers(options: CocaOptions, t_proj: torch.nn.Module) -> dict[str, float]:
    """``{"t_proj.weight": m, ...}`` for ``coca_t_lr_mult`` (empty at 1): what an attention module's
    ``lr_multipliers()`` returns (read by :func:`cocattn.train.schedule.param_groups`)."""
    if options.t_lr_mult == 1.0:
        return {}
    return {name: options.t_lr_mult for name, _ in t_proj.named_parameters(prefix="t_proj")}


def score_scale_parameter(options: CocaOptions, n_head: int) -> torch.nn.Parameter | None:
    """The learnable per-head log score multiplier ``ℓ [n_head]`` (``None`` without ``score_scale``)."""
    if options.score_scale is None:
        return None
    return torch.nn.Parameter(torch.full((n_head,), math.log(options.score_scale)))


def scale_queries(q: torch.Tensor, log_scale: torch.Tensor | None) -> torch.Tensor:
    """``q [B, H, N, d]`` times ``exp(ℓ / 2)`` per head: CoCA's score is quadratic in q, so this
    multiplies each head's scores by ``exp(ℓ)``."""
    if log_scale is None:
        return q
    return q * torch.exp(0.5 * log_scale).to(q.dtype)[:, None, None]
