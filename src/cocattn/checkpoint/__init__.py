"""Model files, never pickled: model directories (:mod:`~cocattn.checkpoint.model_dir`), and
trainer checkpoints (:mod:`~cocattn.checkpoint.trainer`: a model directory plus the trainer's
state, :mod:`~cocattn.checkpoint.state`)."""

from __future__ import annotations

from cocattn.checkpoint.model_dir import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    TOKENIZER_FILE,
    check_compatible,
    check_config_against_weights,
    load_model,
    load_weights,
    model_config,
    model_dir_kind,
    read_model_config,
    save_model,
    unwrap,
    verify_files,
    weight_shapes,
)
from cocattn.checkpoint.state import flatten_state, rng_state, set_rng_state, unflatten_state
from cocattn.checkpoint.trainer import (
    CHECKPOINTS,
    LATEST,
    TRAINER_JSON,
    TRAINER_TENSORS,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    step_dir_name,
)

__all__ = [
    "CHECKPOINTS",
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "LATEST",
    "MODEL_FILE",
    "TOKENIZER_FILE",
    "TRAINER_JSON",
    "TRAINER_TENSORS",
    "check_compatible",
    "check_config_against_weights",
    "flatten_state",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model",
    "load_weights",
    "model_config",
    "model_dir_kind",
    "read_model_config",
    "rng_state",
    "save_checkpoint",
    "save_model",
    "set_rng_state",
    "step_dir_name",
    "unflatten_state",
    "unwrap",
    "verify_files",
    "weight_shapes",
]
