"""Trainer checkpoints: ``run_dir/checkpoints/step_XXXXXXX/`` is a model directory plus
``trainer.safetensors`` (every tensor of the trainer state) and ``trainer.json`` (the rest, and the
structure that puts the tensors back). ``checkpoints/latest`` names the newest complete one and is
replaced after the checkpoint is published, so a crash at any moment leaves a loadable one."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from cocattn import files
from cocattn._checks import check
from cocattn.checkpoint.model_dir import (
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    _file_records,
    _save_safetensors,
    _write_model_files,
    check_compatible,
    load_weights,
    read_model_config,
    verify_files,
)
from cocattn.checkpoint.state import flatten_state, unflatten_state

TRAINER_TENSORS = "trainer.safetensors"
TRAINER_JSON = "trainer.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
_STEP_DIR = re.compile(r"^step_(\d{7,})$")


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, path)``, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    found = []
    if root.is_dir():
        for entry in root.iterdir():
            match = _STEP_DIR.match(entry.name)
            if match and entry.is_dir() and (entry / TRAINER_JSON).is_file():
                found.append((int(match.group(1)), entry))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The checkpoint named by ``checkpoints/latest`` (or the newest complete one); None if none."""
    root = Path(run_dir) / CHECKPOINTS
    pointer = root / LATEST
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if _STEP_DIR.match(name) and (root / name / TRAINER_JSON).is_file():
            return root / name
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    trainer_state: dict[str, Any],
    tokenizer: Any = None,
    extra: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write ``run_dir/checkpoints/step_XXXXXXX/`` atomically, point ``latest`` at it, keep ``keep``.

    ``trainer_state`` is any nested state (optimizer ``state_dict()``, RNG, sampler generator,
    counters, the run config); tensors go to safetensors, the rest to JSON.
    """
    check(keep >= 1, "keep", keep, "an integer >= 1")
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    files.clean_temporaries(root)
    target = root / step_dir_name(step)
    skeleton, tensors = flatten_state(trainer_state)
    with files.atomic_directory(target) as tmp:
        _write_model_files(tmp, model, tokenizer, extra)
        _save_safetensors(tensors, tmp / TRAINER_TENSORS, {"producer": FORMAT})
        (tmp / TRAINER_JSON).write_text(
            files.dumps_json(
                {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "step": step,
                    "state": skeleton,
                    "files": _file_records(tmp, (TRAINER_TENSORS,)),
                }
            ),
            encoding="utf-8",
        )
    files.write_text(root / LATEST, target.name + "\n")
    for _old_step, old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(
    checkpoint: str | os.PathLike, model: torch.nn.Module | None = None, expected_config: Any = None
) -> dict[str, Any]:
    """Read a trainer checkpoint: load its weights into ``model`` (if given) and return the trainer
    state. Refuses pickles; a vocabulary size or attention kind differing from ``expected_config``
    is a clear error."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    files.refuse_pickles(checkpoint)
    config = read_model_config(checkpoint)
    check_compatible(config["model"], expected_config, str(checkpoint))
    meta = files.load_json(checkpoint / TRAINER_JSON)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "state" not in meta:
        raise ValueError(f"{checkpoint / TRAINER_JSON} is not a cocattn trainer state")
    verify_files(checkpoint, config.get("files"), checkpoint / CONFIG_FILE)
    verify_files(checkpoint, meta.get("files"), checkpoint / TRAINER_JSON)
    tensors = files.load_safetensors(checkpoint / TRAINER_TENSORS)
    if model is not None:
        load_weights(model, checkpoint / MODEL_FILE)
    state = unflatten_state(meta["state"], tensors)
    state.setdefault("step", meta.get("step"))
    return state
