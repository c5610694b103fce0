"""Moved: the stage selection is model-agnostic and lives in :mod:`cocattn.train.stages`. These
names stay importable here, with a DeprecationWarning, until cocattn 0.3.0."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "STAGES": "cocattn.train.stages.STAGES",
        "stage_of_parameter": "cocattn.train.stages.stage_of_parameter",
        "trainable_parameters_for_stage": "cocattn.train.stages.trainable_parameters_for_stage",
    },
)
