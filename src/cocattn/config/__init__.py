"""Run configuration: one YAML/JSON file with sections ``model``, ``data``, ``train``, ``eval``.

Presets ship in ``cocattn/configs/`` and load by name (``load_config("tiny-cpu")``) or by path.
Overrides are ``section.key=value`` (``train.lr=3e-4``, ``model.rope_parameters.rope_theta=50000``),
parsed as YAML and coerced to the field's type. Unknown keys, wrong types and out-of-range values
raise a ``ValueError`` naming the key, the value and what is accepted.
"""

from cocattn.config.choices import AUTOCAST_DTYPES, DISTRIBUTED, DTYPES, SCHEDULES
from cocattn.config.coerce import coerce
from cocattn.config.evaluation import EVAL_KEYS, EvalConfig
from cocattn.config.load import (
    apply_overrides,
    load_config,
    parse_override,
    preset_names,
    preset_path,
    read_config_file,
)
from cocattn.config.run import SECTIONS, RunConfig, eval_config
from cocattn.config.sections import DataConfig, TrainConfig

__all__ = [
    "RunConfig",
    "DataConfig",
    "TrainConfig",
    "EvalConfig",
    "eval_config",
    "load_config",
    "preset_names",
    "preset_path",
    "read_config_file",
    "parse_override",
    "apply_overrides",
    "coerce",
    "SECTIONS",
    "EVAL_KEYS",
    "SCHEDULES",
    "DTYPES",
    "AUTOCAST_DTYPES",
    "DISTRIBUTED",
]
