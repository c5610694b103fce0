"""Loading a model directory as a :class:`~cocattn.evaluate.protocol.LanguageModel`: :func:`load_lm`
hands a cocattn checkpoint or a Hugging Face directory to its adapter (:mod:`.lm_native`,
:mod:`.lm_hf`, which alone imports transformers); :func:`training_mix` reads the retrieval warm-up
a model was trained with, which every result record repeats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cocattn._checks import bad_value
from cocattn.checkpoint import model_dir_kind as _model_dir_kind
from cocattn.evaluate.lm_hf import load_hf
from cocattn.evaluate.lm_native import load_native
from cocattn.evaluate.protocol import LanguageModel as _LanguageModel
from cocattn.safeparse import loads_json

__all__ = ["load_lm", "training_mix"]


def training_mix(path: str | Path) -> dict[str, Any] | None:
    """What ``cocattn train`` mixed into a model's training (``retrieval_fraction``,
    ``retrieval_tasks``), read from its directory (``config.json``'s ``run``, or
    ``cocattn_train.json`` beside a Hugging Face model); None when it was not trained by cocattn."""
    path = Path(path)
    for name in ("config.json", "cocattn_train.json"):
        try:
            data = loads_json((path / name).read_text(encoding="utf-8"), str(path / name))
        except (OSError, ValueError):
            continue
        run = data.get("run") if isinstance(data, dict) else None
        section = run.get("data") if isinstance(run, dict) else None
        if isinstance(section, dict) and "retrieval_fraction" in section:
            fraction = section.get("retrieval_fraction") or 0.0
            tasks = section.get("retrieval_tasks") or ["passkey"]
            return {"retrieval_fraction": fraction, "retrieval_tasks": list(tasks) if fraction else []}
    return None


def load_lm(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    training_length: int | None = None,
    name: str | None = None,
    autocast: torch.dtype | None = None,
) -> _LanguageModel:
    """Load a cocattn checkpoint or a Hugging Face model directory as a :class:`LanguageModel`.

    ``dtype`` converts the weights; ``autocast`` (cocattn checkpoints) keeps them and runs every
    forward pass under ``torch.autocast`` in that dtype, as training did on a GPU."""
    path = Path(path)
    kind = _model_dir_kind(path)
    label = name or path.name
    if kind == "cocattn":
        lm: _LanguageModel = load_native(path, device=device, dtype=dtype, name=label, autocast=autocast)
        if training_length:
            lm.training_length = int(training_length)
    else:
        if autocast is not None:
            raise bad_value("autocast", autocast, "None for a Hugging Face model (pass dtype= to convert its weights)")
        lm = load_hf(path, device=device, dtype=dtype, name=label, training_length=training_length)
    lm.training_mix = training_mix(path)
    return lm
