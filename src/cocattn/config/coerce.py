"""YAML / JSON values into a dataclass's fields: coerced to each field's type annotation, unknown
keys refused naming the closest valid ones."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import TYPE_CHECKING, Any, TypeVar, Union

import yaml

from cocattn._checks import bad_value, unknown_key
from cocattn.safeparse import loads_yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["coerce", "type_hints", "type_name", "build_section"]


def type_hints(cls: type) -> dict[str, Any]:
    """``{field: annotation}`` of dataclass ``cls`` (``Any`` for every field if one cannot be resolved)."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a hint that cannot be resolved: fall back to the defaults' types
        return {f.name: Any for f in dataclasses.fields(cls)}


def coerce(name: str, value: Any, hint: Any) -> Any:
    """Coerce ``value`` to the type ``hint`` (int, float, bool, str, list[...], dict, Optional).

    Args:
        name: the setting's dotted name (``train.lr``), named by the error.
        value: the parsed YAML / JSON value (or a string from an override).
        hint: the field's type annotation.

    Returns:
        The value as ``hint``; a ``ValueError`` (``name=value is not valid: expected ...``) if it is none.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(name, value, arg)
            except ValueError:
                pass
        raise bad_value(name, value, " or ".join(type_name(a) for a in args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise bad_value(name, value, "true or false")
    if hint is int:
        if isinstance(value, bool):
            raise bad_value(name, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, (float, str)):
            try:
                number = float(value)
            except ValueError:
                raise bad_value(name, value, "an integer") from None
            if math.isfinite(number) and number == int(number):
                return int(number)
        raise bad_value(name, value, "an integer")
    if hint is float:
        if isinstance(value, bool):
            raise bad_value(name, value, "a number")
        if isinstance(value, (int, float, str)):
            try:
                return float(value)
            except (ValueError, OverflowError):  # not a number, or an integer past float's range
                pass
        raise bad_value(name, value, "a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad_value(name, value, "a string")
    if origin in (list, tuple) or hint in (list, tuple):
        if isinstance(value, str):
            try:
                value = loads_yaml(value, name)
            except yaml.YAMLError:
                raise bad_value(name, value, "a list, e.g. [0.9, 0.95]") from None
        if not isinstance(value, (list, tuple)):
            raise bad_value(name, value, "a list")
        inner = args[0] if args else Any
        return [coerce(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise bad_value(name, value, "a mapping")
        return dict(value)
    return value


def type_name(hint: Any) -> str:
    """How an error names the type ``hint`` (``an integer``, ``a number``, ...)."""
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        hint, str(hint)
    )


_Section = TypeVar("_Section", bound="DataclassInstance")


def build_section(cls: type[_Section], values: Any, where: str) -> _Section:
    """The dataclass ``cls`` from the mapping ``values`` of section ``where`` (``train``), each value
    coerced to its field's type; an unknown key or a non-mapping is a ``ValueError`` naming it."""
    if not isinstance(values, dict):
        raise bad_value(where, values, f"a mapping of {where} settings")
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise unknown_key(f"section {where!r}", str(key), names)
        kwargs[key] = coerce(f"{where}.{key}", value, hints.get(key, Any))
    return cls(**kwargs)
