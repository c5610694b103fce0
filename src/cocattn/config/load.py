"""Loading a run configuration: the shipped presets (by name), YAML / JSON files (by path) and
``section.key=value`` overrides."""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from cocattn._checks import bad_value, check_choice, unknown_key
from cocattn.config.run import SECTIONS, RunConfig
from cocattn.safeparse import loads_json, loads_yaml

__all__ = ["preset_names", "preset_path", "read_config_file", "parse_override", "apply_overrides", "load_config"]


def preset_names() -> list[str]:
    """Names of the presets shipped in ``cocattn/configs``."""
    folder = resources.files("cocattn") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> Path:
    """Path of a shipped preset."""
    check_choice("config", name, preset_names())
    return Path(str(resources.files("cocattn") / "configs" / f"{name}.yaml"))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a YAML or JSON config file into a dict (no validation)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: not UTF-8 text ({err})"
        ) from None
    try:
        data = loads_json(text, str(path)) if path.suffix == ".json" else loads_yaml(text, str(path))
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping with sections {', '.join(SECTIONS[2:])}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=3e-4'`` → ``(['train', 'lr'], 3e-4)`` (the value parsed as YAML)."""
    if "=" not in text:
        raise bad_value("override", text, "section.key=value, e.g. train.lr=3e-4")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise bad_value("override", text, "section.key=value, e.g. train.lr=3e-4")
    try:
        value = loads_yaml(raw, f"override {text[:60]!r}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 5e4 (no dot) as a string
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            pass
    return parts, value


def apply_overrides(d: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of the config dict with ``section.key=value`` overrides applied."""
    import copy

    out = copy.deepcopy(d)
    for text in overrides:
        parts, value = parse_override(text)
        if parts[0] not in SECTIONS:
            raise unknown_key("the run config", parts[0], SECTIONS)
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise bad_value("override", text, f"a key inside a mapping ({part!r} is not one)")
            node = child
        node[parts[-1]] = value
    return out


def load_config(name_or_path: str | os.PathLike | dict, overrides: Iterable[str] = ()) -> RunConfig:
    """Load a preset (by name), a YAML/JSON file (by path) or a dict, apply overrides, validate."""
    if isinstance(name_or_path, dict):
        d = name_or_path
    elif isinstance(name_or_path, RunConfig):
        d = name_or_path.to_dict()
    elif not isinstance(name_or_path, (str, os.PathLike)):
        raise bad_value("config", name_or_path, "a preset name, a config file path or a mapping")
    else:
        text = os.fspath(name_or_path)
        if Path(text).is_file():
            d = read_config_file(text)
        elif "/" in text or text.endswith((".yaml", ".yml", ".json")):
            raise FileNotFoundError(f"config file {text} does not exist")
        else:
            d = read_config_file(preset_path(text))
            d.setdefault("name", text)
    return RunConfig.from_dict(apply_overrides(d, overrides))
