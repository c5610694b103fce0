"""Inference-time RoPE scalings as the evaluators and the CLI name them: ``"none"``, ``"dynamic:4"``
(a type and its factor) or a JSON object of ``rope_parameters`` without ``rope_theta`` (the model
keeps its own base and, unless given, its training length as ``original_max_position_embeddings``).
Every spec is validated by :func:`cocattn.rope.rope_parameters`.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from cocattn._checks import bad_value, check
from cocattn.rope import ROPE_TYPES, rope_parameters
from cocattn.safeparse import loads_json

__all__ = ["parse_scaling", "scaling_name", "DEFAULT_SWEEP"]

DEFAULT_SWEEP = ("none", "dynamic:2", "dynamic:4", "dynamic:8", "linear:4", "yarn:4")
"""The paper's stability study (dynamic NTK 2/4/8) plus linear interpolation and YaRN at 4."""


def parse_scaling(spec: str | Mapping[str, Any] | None, arg: str = "rope") -> dict[str, Any] | None:
    """A validated ``rope_parameters`` dict (or ``None`` for no scaling) from a spec."""
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        data = dict(spec)
    else:
        check(isinstance(spec, str) and spec.strip() != "", arg, spec, "'none', 'TYPE:FACTOR' or a JSON object")
        text = spec.strip()
        if text.lower() in ("none", "default", "off"):
            return None
        if text.startswith("{"):
            try:
                data = loads_json(text, arg)
            except json.JSONDecodeError as err:
                raise bad_value(arg, spec, f"a JSON object of rope_parameters ({err})") from None
            check(isinstance(data, dict), arg, spec, "a JSON object of rope_parameters")
        else:
            name, _, factor = text.partition(":")
            check(name in ROPE_TYPES, arg, spec, f"a type among {list(ROPE_TYPES)}, optionally ':FACTOR'")
            data = {"rope_type": name}
            if factor:
                try:
                    data["factor"] = float(factor)
                except ValueError:
                    raise bad_value(arg, spec, "TYPE:FACTOR with a number as FACTOR, e.g. 'dynamic:4'") from None
    if data.get("rope_type", data.get("type", "default")) == "default" and set(data) <= {"rope_type", "type"}:
        return None
    params = rope_parameters(data).to_dict()
    if "rope_theta" not in data:  # keep the model's own base
        params.pop("rope_theta", None)
    return params


def scaling_name(params: Mapping[str, Any] | None) -> str:
    """A short label: ``"none"``, ``"dynamic x4"``, ``"yarn x4 (beta_fast=16)"``."""
    if not params:
        return "none"
    name = str(params.get("rope_type", "default"))
    if params.get("factor") is not None:
        name += f" x{params['factor']:g}"
    extra = {k: v for k, v in params.items() if k not in ("rope_type", "factor", "original_max_position_embeddings")}
    if extra:
        name += " (" + ", ".join(f"{k}={v}" for k, v in sorted(extra.items())) + ")"
    return name
