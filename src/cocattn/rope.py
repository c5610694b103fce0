"""Rotary position embedding (RoPE): tables, rotation and the scaling registry.

Layout is "rotate half" (transformers' LLaMA and GPT-NeoX): plane ``j`` pairs dims ``j`` and
``j + d/2``, and its angle at position ``p`` is ``p * inv_freq[j]`` with
``inv_freq[j] = base ** (-2j / d)``.

Scaling methods are pure functions in one registry keyed by the names transformers v5 uses in
``rope_parameters`` (``default``, ``linear``, ``dynamic``, ``yarn``, ``longrope``, ``llama3``),
with its field names, plus ``ntk`` (static NTK-aware base change). Each maps
``(params, head_dim, seq_len)`` to ``(inv_freq, attention_scaling)``; ``attention_scaling``
multiplies cos and sin (so query-key scores scale by its square), as in transformers.
Everything is computed in float64 here; callers cast.

A new scaling is one function plus one :func:`register_rope_type` line. One file on purpose:
the registry, the validation of its fields and the tables built from it are one concept, and
every scaling reads best next to the others.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Mapping, TypeVar

import torch

from cocattn._checks import bad_value, check, check_choice, unknown_key
from cocattn._lru import LRU

__all__ = [
    "RopeParameters",
    "rope_parameters",
    "inv_freq_and_scaling",
    "rope_cos_sin",
    "arange_cos_sin",
    "arange_tables",
    "is_length_dependent",
    "apply_rope",
    "rotate_half",
    "register_rope_type",
    "ROPE_TYPES",
]


@dataclass(frozen=True)
class RopeParameters:
    """RoPE settings, field names as in transformers v5 ``config.rope_parameters``."""

    rope_type: str = "default"
    """One of :data:`ROPE_TYPES`."""
    rope_theta: float = 10000.0
    """The base of the frequencies."""
    factor: float | None = None
    """Scaling factor (linear, dynamic, ntk, yarn, llama3; optional for longrope)."""
    original_max_position_embeddings: int | None = None
    """Training length L0 (dynamic, yarn, longrope, llama3). Models fill in their own."""
    attention_factor: float | None = None
    """Multiplier of cos/sin (yarn, longrope); derived from ``factor`` when unset."""
    beta_fast: float | None = None
    """YaRN: rotations above which dims extrapolate (default 32)."""
    beta_slow: float | None = None
    """YaRN: rotations below which dims interpolate (default 1)."""
    mscale: float | None = None
    """YaRN (DeepSeek form) attention-factor numerator multiplier."""
    mscale_all_dim: float | None = None
    """YaRN (DeepSeek form) attention-factor denominator multiplier."""
    truncate: bool | None = None
    """YaRN: round the correction range to whole dims (default True)."""
    low_freq_factor: float | None = None
    """Llama 3: wavelengths above L0 / low_freq_factor are interpolated."""
    high_freq_factor: float | None = None
    """Llama 3: wavelengths below L0 / high_freq_factor are kept."""
    short_factor: tuple[float, ...] | None = None
    """LongRoPE: per-plane divisors used up to L0."""
    long_factor: tuple[float, ...] | None = None
    """LongRoPE: per-plane divisors used beyond L0."""

    def to_dict(self) -> dict[str, Any]:
        """The transformers-style dict, without unset fields."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def with_training_length(self, length: int) -> "RopeParameters":
        """Fill ``original_max_position_embeddings`` where the type uses it and it is unset."""
        if self.original_max_position_embeddings is None and self.rope_type in _NEEDS_L0:
            return dataclasses.replace(self, original_max_position_embeddings=int(length))
        return self


RopeScaling = Callable[[RopeParameters, int, int | None], tuple[torch.Tensor, float]]
"""``fn(params, head_dim, seq_len) -> (inv_freq, attention_scaling)``: one scaling method."""


@dataclass(frozen=True)
class _RopeType:
    fn: RopeScaling
    required: frozenset[str]
    optional: frozenset[str]
    length_dependent: bool = False


_REGISTRY: dict[str, _RopeType] = {}
_FIELDS = {f.name for f in dataclasses.fields(RopeParameters)}
_NEEDS_L0 = {"dynamic", "yarn", "longrope", "llama3"}


def register_rope_type(
    name: str,
    required: AbstractSet[str] = frozenset(),
    optional: AbstractSet[str] = frozenset(),
    length_dependent: bool = False,
) -> Callable[[RopeScaling], RopeScaling]:
    """Decorator registering ``fn(params, head_dim, seq_len) -> (inv_freq, attention_scaling)``.

    ``length_dependent``: the frequencies depend on the current length ``seq_len`` (dynamic NTK,
    LongRoPE); for the others the attention functions never compute it, which on a GPU saves a
    device-to-host synchronisation per call."""

    def wrap(fn: RopeScaling) -> RopeScaling:
        _REGISTRY[name] = _RopeType(fn, frozenset(required), frozenset(optional) | {"rope_theta"}, length_dependent)
        return fn

    return wrap


_T = TypeVar("_T")


def _required(value: _T | None, name: str) -> _T:
    """A field the rope type requires (:func:`inv_freq_and_scaling` checks that they are all set
    before any scaling runs; this names the field if a scaling is called without that check)."""
    if value is None:
        raise bad_value(f"rope_parameters.{name}", None, "a value (required by this rope_type)")
    return value


def _l0(p: RopeParameters) -> int:
    """The training length of a rope type that requires it."""
    return _required(p.original_max_position_embeddings, "original_max_position_embeddings")


def is_length_dependent(params: RopeParameters | Mapping[str, Any] | None) -> bool:
    """True when the frequencies change with the current sequence length."""
    if not isinstance(params, RopeParameters):
        params = rope_parameters(params)
    return _REGISTRY[params.rope_type].length_dependent


_INV_FREQ: LRU[torch.Tensor] = LRU(64)  # dynamic NTK: a base per length


def _base_inv_freq(base: float, head_dim: int) -> torch.Tensor:
    """``1 / base^(2j / d)`` in float64, cached (every layer of every step asks for it; callers
    derive new tensors from it and never write into it). Inside a compiled graph it is computed
    there. Always built on the CPU (``device="cpu"``): transformers builds models inside a
    ``torch.device("meta")`` context, and a table made there (no data) would poison the cache
    for every later forward pass."""

    def compute() -> torch.Tensor:
        return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device="cpu") / head_dim))

    if getattr(torch.compiler, "is_compiling", lambda: False)():
        return compute()
    return _INV_FREQ.get((float(base), int(head_dim)), compute)


@register_rope_type("default")
def _default(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    return _base_inv_freq(p.rope_theta, head_dim), 1.0


@register_rope_type("linear", required={"factor"})
def _linear(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    """Position interpolation (Chen et al. 2023): all frequencies divided by ``factor``."""
    return _base_inv_freq(p.rope_theta, head_dim) / _required(p.factor, "factor"), 1.0


@register_rope_type("ntk", required={"factor"})
def _ntk(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    """Static NTK-aware scaling: ``base' = base * factor ** (d / (d - 2))`` at every length."""
    base = p.rope_theta * _required(p.factor, "factor") ** (head_dim / (head_dim - 2))
    return _base_inv_freq(base, head_dim), 1.0


@register_rope_type("dynamic", required={"factor", "original_max_position_embeddings"}, length_dependent=True)
def _dynamic(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    """Dynamic NTK (transformers' formula): for the current length L > L0,
    ``base' = base * (factor * L / L0 - (factor - 1)) ** (d / (d - 2))``; unchanged up to L0."""
    l0, factor = _l0(p), _required(p.factor, "factor")
    length = max(int(seq_len) if seq_len is not None else l0, l0)
    base = p.rope_theta * ((factor * length / l0) - (factor - 1)) ** (head_dim / (head_dim - 2))
    return _base_inv_freq(base, head_dim), 1.0


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


@register_rope_type(
    "yarn",
    required={"factor", "original_max_position_embeddings"},
    optional={"attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim", "truncate"},
)
def _yarn(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    """YaRN (Peng et al. 2023): interpolate low-frequency planes, keep high-frequency ones, ramp
    in between; cos/sin scaled by ``attention_factor`` (default ``0.1 ln(factor) + 1``)."""
    base, dim, factor = p.rope_theta, head_dim, _required(p.factor, "factor")
    attention = p.attention_factor
    if attention is None:
        if p.mscale and p.mscale_all_dim:
            attention = _yarn_mscale(factor, p.mscale) / _yarn_mscale(factor, p.mscale_all_dim)
        else:
            attention = _yarn_mscale(factor)
    beta_fast = p.beta_fast or 32
    beta_slow = p.beta_slow or 1
    l0 = _l0(p)

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(l0 / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if p.truncate is None or p.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float64, device="cpu") - low) / (high - low)).clamp(0, 1)
    extrapolation = _base_inv_freq(base, dim)
    interpolation = extrapolation / factor
    keep = 1 - ramp  # 1 where the plane keeps its original frequency
    return interpolation * (1 - keep) + extrapolation * keep, float(attention)


@register_rope_type(
    "longrope",
    required={"short_factor", "long_factor", "original_max_position_embeddings"},
    optional={"factor", "attention_factor"},
    length_dependent=True,
)
def _longrope(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    """LongRoPE (Ding et al. 2024): per-plane divisors, ``long_factor`` once L exceeds L0."""
    l0 = _l0(p)
    factor = p.factor if p.factor is not None else 1.0
    attention = p.attention_factor
    if attention is None:
        attention = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(l0))
    long = seq_len is not None and seq_len > l0
    ext = _required(p.long_factor, "long_factor") if long else _required(p.short_factor, "short_factor")
    ext_t = torch.tensor(ext, dtype=torch.float64, device="cpu")
    if ext_t.numel() != head_dim // 2:
        raise bad_value(
            "rope_parameters.short_factor/long_factor", list(ext), f"{head_dim // 2} numbers (head_dim / 2)"
        )
    return _base_inv_freq(p.rope_theta, head_dim) / ext_t, float(attention)


@register_rope_type(
    "llama3", required={"factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"}
)
def _llama3(p: RopeParameters, head_dim: int, seq_len: int | None) -> tuple[torch.Tensor, float]:
    """Llama 3.1: long wavelengths divided by ``factor``, short ones kept, smooth in between."""
    inv_freq = _base_inv_freq(p.rope_theta, head_dim)
    l0, factor = _l0(p), _required(p.factor, "factor")
    low = _required(p.low_freq_factor, "low_freq_factor")
    high = _required(p.high_freq_factor, "high_freq_factor")
    low_wavelen = l0 / low
    high_wavelen = l0 / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (l0 / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
    return torch.where(medium, smoothed, scaled), 1.0


ROPE_TYPES = tuple(_REGISTRY)


def rope_parameters(value: RopeParameters | Mapping[str, Any] | None = None, **overrides: Any) -> RopeParameters:
    """Validate RoPE settings given as a transformers-style dict (or ``None`` for the default).

    Accepts ``type`` as an alias of ``rope_type`` (transformers v4 ``rope_scaling``); rejects unknown
    types, unknown fields and missing required fields with a message naming them.
    """
    data = _given_fields(value, overrides)
    rope_type = data.setdefault("rope_type", "default")
    check_choice("rope_parameters.rope_type", rope_type, _REGISTRY)
    _check_field_names(data, rope_type)
    _check_scalars(data)
    _check_lengths_and_factors(data)
    if rope_type == "llama3":
        _check_llama3_band(data)
    return RopeParameters(**data)


def _given_fields(value: RopeParameters | Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as a plain dict: ``value``'s fields, then the overrides that are not ``None``,
    with ``type`` renamed ``rope_type``."""
    if value is None:
        data: dict[str, Any] = {}
    elif isinstance(value, RopeParameters):
        data = value.to_dict()
    elif isinstance(value, Mapping):
        data = dict(value)
    else:
        raise bad_value("rope", value, "a dict of RoPE parameters, a RopeParameters or None")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "type" in data:
        data.setdefault("rope_type", data.pop("type"))
    return data


def _check_field_names(data: Mapping[str, Any], rope_type: str) -> None:
    """Every field is a :class:`RopeParameters` field, and one that ``rope_type`` takes (or unset)."""
    spec = _REGISTRY[rope_type]
    for key in data:
        if key not in _FIELDS:
            raise unknown_key("rope_parameters", key, _FIELDS)
    allowed = spec.required | spec.optional | {"rope_type", "original_max_position_embeddings"}
    for key, val in data.items():
        if key not in allowed and val is not None:
            raise bad_value(
                f"rope_parameters.{key}",
                val,
                f"no {key!r} for rope_type {rope_type!r} (it takes {sorted(allowed - {'rope_type'})})",
            )


def _number(x: Any) -> bool:
    """A finite real number (not a bool, not a string, not inf/NaN)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


_POSITIVE_FLOATS = (
    "attention_factor",
    "beta_fast",
    "beta_slow",
    "mscale",
    "mscale_all_dim",
    "low_freq_factor",
    "high_freq_factor",
)


def _check_scalars(data: dict[str, Any]) -> None:
    """Check the real-valued fields (and the truncate flag); store the numbers as floats."""
    if "rope_theta" in data:
        theta = data["rope_theta"]
        check(_number(theta) and theta > 1, "rope_parameters.rope_theta", theta, "a finite number > 1")
        data["rope_theta"] = float(theta)
    if data.get("factor") is not None:
        f = data["factor"]
        check(_number(f) and f >= 1, "rope_parameters.factor", f, "a finite number >= 1")
        data["factor"] = float(f)
    for key in _POSITIVE_FLOATS:
        if data.get(key) is not None:
            low = 0 if key.startswith("mscale") else None  # mscale fields may be 0 (DeepSeek form off)
            ok = _number(data[key]) and (data[key] >= 0 if low == 0 else data[key] > 0)
            check(ok, f"rope_parameters.{key}", data[key], f"a finite number {'>= 0' if low == 0 else '> 0'}")
            data[key] = float(data[key])
    if data.get("truncate") is not None:
        check(isinstance(data["truncate"], bool), "rope_parameters.truncate", data["truncate"], "true or false")


def _check_lengths_and_factors(data: dict[str, Any]) -> None:
    """Check the training length and LongRoPE's per-plane factors (stored as tuples of floats)."""
    if data.get("original_max_position_embeddings") is not None:
        l0 = data["original_max_position_embeddings"]
        check(
            isinstance(l0, int) and not isinstance(l0, bool) and l0 > 0,
            "rope_parameters.original_max_position_embeddings",
            l0,
            "a positive integer",
        )
    for key in ("short_factor", "long_factor"):
        if data.get(key) is not None:
            seq = data[key]
            check(
                isinstance(seq, (list, tuple)) and all(_number(x) and x > 0 for x in seq),
                f"rope_parameters.{key}",
                seq,
                "a list of positive numbers, one per RoPE plane",
            )
            data[key] = tuple(float(x) for x in seq)


def _check_llama3_band(data: Mapping[str, Any]) -> None:
    """Llama 3: the high-frequency factor lies above the low one (when both are given)."""
    if all(data.get(k) is not None for k in ("low_freq_factor", "high_freq_factor")):
        check(
            data["high_freq_factor"] > data["low_freq_factor"],
            "rope_parameters.high_freq_factor",
            data["high_freq_factor"],
            f"a number greater than low_freq_factor={data['low_freq_factor']}",
        )


def _check_complete(params: RopeParameters) -> None:
    spec = _REGISTRY[params.rope_type]
    missing = sorted(k for k in spec.required if getattr(params, k) is None)
    if missing:
        hint = (
            " (models fill original_max_position_embeddings with their training length)"
            if "original_max_position_embeddings" in missing
            else ""
        )
        raise bad_value(
            "rope_parameters",
            params.to_dict(),
            f"the field(s) {missing} required by rope_type {params.rope_type!r}{hint}",
        )


def inv_freq_and_scaling(
    params: RopeParameters | Mapping[str, Any] | None, head_dim: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (float64, ``[head_dim / 2]``) and the cos/sin multiplier.

    ``seq_len`` is the current total length (largest position + 1); it matters for ``dynamic``
    (the base grows with it) and ``longrope`` (long factors beyond L0).

    Returns:
        ``(inv_freq, attention_scaling)``: ``inv_freq [head_dim / 2]`` float64, and the float that
        multiplies cos and sin.
    """
    if not isinstance(params, RopeParameters):
        params = rope_parameters(params)
    check(
        isinstance(head_dim, int) and head_dim > 0 and head_dim % 2 == 0,
        "head_dim",
        head_dim,
        "a positive even integer",
    )
    _check_complete(params)
    inv_freq, scaling = _REGISTRY[params.rope_type].fn(params, head_dim, seq_len)
    return inv_freq, float(scaling)


def rope_cos_sin(
    positions: torch.Tensor, inv_freq: torch.Tensor, attention_scaling: float = 1.0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[..., seq, head_dim]`` for integer ``positions [..., seq]``.

    Angles are formed in float64 (exact up to very long lengths), then cast to ``dtype``
    (float32 by default; pass float64 for float64 work).
    """
    angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq.to(positions.device, torch.float64)
    angles = torch.cat([angles, angles], dim=-1)
    return (angles.cos() * attention_scaling).to(dtype), (angles.sin() * attention_scaling).to(dtype)


_TABLE_CACHE: LRU[tuple[torch.Tensor, ...]] = LRU(8)

TableDerivation = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


def clear_caches() -> None:
    """Empty the frequency and table caches (they refill on the next call, with identical values);
    :func:`cocattn.attention.backends.clear_caches` calls this with the attention caches."""
    _INV_FREQ.clear()
    _TABLE_CACHE.clear()


def arange_cos_sin(
    length: int, inv_freq: torch.Tensor, attention_scaling: float, dtype: torch.dtype, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`rope_cos_sin` for positions ``0 … length − 1``, cached per (frequencies, scaling,
    dtype, device) and sliced, so that the common case (default positions) builds its tables once
    instead of at every layer and step. Values are identical to the uncached computation."""
    cos, sin = arange_tables(length, inv_freq, attention_scaling, dtype, device)
    return cos, sin


def arange_tables(
    length: int,
    inv_freq: torch.Tensor,
    attention_scaling: float,
    dtype: torch.dtype,
    device: torch.device | str,
    derive: TableDerivation | None = None,
) -> tuple[torch.Tensor, ...]:
    """Tables for positions ``0 … length − 1``: ``(cos, sin)``, or ``derive(cos, sin)`` — any
    tuple of tables computed position by position from them (so that slicing the first
    ``length`` rows of a longer table gives the same values) — cached under ``derive``'s name
    with the tables it came from. Inside a ``torch.compile`` graph nothing is cached: the tables
    are computed there and fused."""

    def make() -> tuple[torch.Tensor, ...]:
        tables = rope_cos_sin(
            torch.arange(length, device=device, dtype=torch.int64), inv_freq, attention_scaling, dtype
        )
        return tables if derive is None else tuple(derive(*tables))

    if length == 0 or getattr(torch.compiler, "is_compiling", lambda: False)():
        return make()
    device = torch.device(device)
    name = None if derive is None else f"{derive.__module__}.{derive.__qualname__}"
    key = (inv_freq.detach().cpu().numpy().tobytes(), float(attention_scaling), dtype, str(device), name)
    hit = _TABLE_CACHE.get(key, make, stale=lambda tables: tables[0].shape[0] < length)
    return tuple(x[:length] for x in hit)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the last dim: the 90° rotation of every plane."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every plane of ``x [..., d]`` by the angles whose ``cos``/``sin [..., d]`` are given
    (broadcast against x).

    Returns:
        the rotated ``x``, same shape, in the tables' and x's promoted dtype.
    """
    return x * cos + rotate_half(x) * sin
