"""Which implementation runs CoCA's feature maps (``"torch"`` or fused ``"triton"``:
:func:`set_feature_backend`, ``$COCATTN_FEATURES``) and ALiBi (``"auto"``, ``"flex"`` or
``"sdpa"``: :func:`set_alibi_backend`, ``$COCATTN_ALIBI``), each checked when set;
``use_backends(...)`` sets them for a block. Also the one place that holds attention state: the
FlexAttention failure record and every cache, emptied by :func:`clear_caches`
(docs/ARCHITECTURE.md, "Attention core").
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Protocol, TypeVar

import torch

from cocattn import rope
from cocattn._checks import bad_value, check_choice

__all__ = [
    "FEATURE_BACKENDS",
    "ALIBI_BACKENDS",
    "set_feature_backend",
    "set_alibi_backend",
    "feature_backend",
    "alibi_backend",
    "use_backends",
    "use_triton",
    "record_flex_failure",
    "flex_failure",
    "register_cache",
    "clear_caches",
]

FEATURE_BACKENDS = ("torch", "triton")
ALIBI_BACKENDS = ("auto", "flex", "sdpa")

_ENV = {"features": ("COCATTN_FEATURES", "torch", FEATURE_BACKENDS), "alibi": ("COCATTN_ALIBI", "auto", ALIBI_BACKENDS)}
_CHOICE: dict[str, str] = {}  # "features" / "alibi" -> the backend in force, once set or read
_FLEX_FAILURE: list[str] = []  # the error that disabled FlexAttention in this process, if any


def _current(which: str) -> str:
    if which not in _CHOICE:  # first use: the environment variable, validated once, here only
        var, default, accepted = _ENV[which]
        value = os.environ.get(var, default)
        if value not in accepted:
            raise bad_value(var, value, f"one of {accepted}")
        _CHOICE[which] = value
    return _CHOICE[which]


def feature_backend() -> str:
    """The backend of CoCA's feature maps in force: ``"torch"`` or ``"triton"``."""
    return _current("features")


def alibi_backend() -> str:
    """The ALiBi backend in force: ``"auto"``, ``"flex"`` or ``"sdpa"``."""
    return _current("alibi")


def set_feature_backend(name: str) -> None:
    """How CoCA's feature maps run: ``"torch"`` (default; four to six PyTorch ops per map and
    per gradient, any device and dtype) or ``"triton"`` (one fused kernel per map and per gradient, for CUDA tensors of
    float32 / bfloat16 / float16 when Triton is installed; other inputs keep the PyTorch path).
    The environment variable ``COCATTN_FEATURES`` sets the initial value."""
    check_choice("backend", name, FEATURE_BACKENDS)
    _CHOICE["features"] = name


def set_alibi_backend(name: str) -> None:
    """``"auto"`` (FlexAttention on CUDA), ``"flex"`` (also on CPU, forward only) or ``"sdpa"``.
    The environment variable ``COCATTN_ALIBI`` sets the initial value."""
    check_choice("backend", name, ALIBI_BACKENDS)
    _CHOICE["alibi"] = name


@contextmanager
def use_backends(*, features: str | None = None, alibi: str | None = None) -> Iterator[None]:
    """Use these backends inside the block (``None``: keep the current one), then restore."""
    before = (feature_backend() if features is not None else None, alibi_backend() if alibi is not None else None)
    if features is not None:
        set_feature_backend(features)
    if alibi is not None:
        set_alibi_backend(alibi)
    try:
        yield
    finally:
        if before[0] is not None:
            _CHOICE["features"] = before[0]
        if before[1] is not None:
            _CHOICE["alibi"] = before[1]


def use_triton(x: torch.Tensor) -> bool:
    """Whether CoCA's feature maps for ``x`` run on the Triton kernels (backend ``"triton"``, a
    tensor they take, and not inside a ``torch.compile`` graph, which fuses the PyTorch ops)."""
    if feature_backend() != "triton" or getattr(torch.compiler, "is_compiling", lambda: False)():
        return False
    from cocattn.attention import triton_features

    return triton_features.available(x)


def record_flex_failure(reason: str) -> None:
    """FlexAttention failed (``reason``): ALiBi takes the SDPA path from now on."""
    _FLEX_FAILURE[:] = [reason]


def flex_failure() -> str | None:
    """Why FlexAttention was disabled in this process, or ``None``."""
    return _FLEX_FAILURE[0] if _FLEX_FAILURE else None


class _Clearable(Protocol):
    def clear(self) -> None: ...


C = TypeVar("C", bound=_Clearable)
_CACHES: list[tuple[_Clearable, bool]] = []


def register_cache(cache: C, *, compiled: bool = False) -> C:
    """Put ``cache`` (anything with ``clear()``) behind :func:`clear_caches`; ``compiled``: it holds
    compiled code or what compiled code is keyed on (cleared only with ``compiled=True``)."""
    _CACHES.append((cache, compiled))
    return cache


def clear_caches(*, compiled: bool = False) -> None:
    """Empty the caches of values (RoPE frequencies and tables, ALiBi block masks); they refill on
    the next call with identical values. ``compiled=True`` also drops the ALiBi slopes, score
    functions and the compiled FlexAttention (the next ALiBi call on a GPU compiles again)."""
    rope.clear_caches()
    for cache, is_compiled in _CACHES:
        if compiled or not is_compiled:
            cache.clear()
