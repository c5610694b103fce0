"""The attention kinds and what each one is: one registry, read by every part of the package that
needs a kind's properties (instead of comparing bare strings).

A kind declares

* ``rotary``: queries and keys are rotated by RoPE, so ``rope_parameters`` (and inference-time
  scalings such as dynamic NTK) apply to it;
* ``coca``: the CoCA variant (``"slack"``: paper eq. 10, the released code; ``"strict"``: eq. 9)
  or ``None`` for the other kinds; a CoCA kind has a T projection where the others have a key;
* ``bias``: the scores get an additive positional bias (ALiBi);
* ``positional_free``: nothing but the causal mask carries order (NoPE).

Adding a kind is its attention function, one :func:`register_kind` line here, and its branch in
:meth:`cocattn.attention.module.Attention.attend` (CONTRIBUTING.md lists the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

from cocattn._checks import check_choice

__all__ = [
    "Kind",
    "KINDS",
    "VARIANTS",
    "ROTARY_KINDS",
    "register_kind",
    "get_kind",
    "is_rotary",
    "is_rope_free",
    "is_coca",
    "coca_variant",
    "coca_kind",
]


@dataclass(frozen=True)
class Kind:
    """One attention kind's properties (see the module docstring)."""

    name: str
    rotary: bool
    coca: str | None = None
    bias: bool = False
    positional_free: bool = False


_REGISTRY: dict[str, Kind] = {}


def register_kind(kind: Kind) -> Kind:
    """Add ``kind`` to the registry (its position in :data:`KINDS` is the registration order)."""
    _REGISTRY[kind.name] = kind
    return kind


register_kind(Kind("rope", rotary=True))
register_kind(Kind("coca", rotary=True, coca="slack"))
register_kind(Kind("coca-strict", rotary=True, coca="strict"))
register_kind(Kind("alibi", rotary=False, bias=True))
register_kind(Kind("nope", rotary=False, positional_free=True))

KINDS: tuple[str, ...] = tuple(_REGISTRY)
"""Every kind, in the order the report lists them: rope, coca, coca-strict, alibi, nope."""
VARIANTS: tuple[str, ...] = tuple(k.coca for k in _REGISTRY.values() if k.coca)
"""CoCA's variants: ``("slack", "strict")``."""
ROTARY_KINDS: tuple[str, ...] = tuple(k.name for k in _REGISTRY.values() if k.rotary)
"""The kinds RoPE scalings apply to: ``("rope", "coca", "coca-strict")``."""


def get_kind(name: str, arg: str = "attention") -> Kind:
    """The registered kind called ``name``; an unknown name is a ``ValueError`` naming ``arg``."""
    check_choice(arg, name, tuple(_REGISTRY))
    return _REGISTRY[name]


def is_rotary(name: str) -> bool:
    """True for the kinds RoPE (and its scalings) apply to; ``False`` for names not registered."""
    kind = _REGISTRY.get(name)
    return kind is not None and kind.rotary


def is_rope_free(name: str) -> bool:
    """True for the registered kinds without a rotary embedding (ALiBi, NoPE), where RoPE scalings
    do not apply; ``False`` for rotary kinds and for names not registered (other models)."""
    kind = _REGISTRY.get(name)
    return kind is not None and not kind.rotary


def is_coca(name: str) -> bool:
    """True for CoCA's kinds (Slack and Strict); ``False`` for names not registered."""
    kind = _REGISTRY.get(name)
    return kind is not None and kind.coca is not None


def coca_variant(name: str) -> str | None:
    """The CoCA variant of kind ``name`` (``"slack"``, ``"strict"``), ``None`` for other kinds."""
    kind = _REGISTRY.get(name)
    return None if kind is None else kind.coca


def coca_kind(variant: str) -> str:
    """The kind whose CoCA variant is ``variant`` (``"slack"`` → ``"coca"``)."""
    check_choice("variant", variant, VARIANTS)
    return next(k.name for k in _REGISTRY.values() if k.coca == variant)
