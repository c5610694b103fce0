"""The resumable state of a transfer: after each layer its fitted weights and the progress record
go to a state directory (``.<dst>.transfer-state``), keyed by a fingerprint of the settings, the
models and the transfer set, so a rerun continues with the next layer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaForCausalLM

from cocattn._checks import bad_value
from cocattn.files import load_json, write_json, write_safetensors
from cocattn.hf.modeling import CocaLlamaForCausalLM
from cocattn.hf.transfer.settings import TransferSettings

STATE_FORMAT = "cocattn-transfer-state"


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _fingerprint(
    source: LlamaForCausalLM, coca: CocaLlamaForCausalLM, input_ids: torch.Tensor, settings: TransferSettings
) -> str:
    tensors = [t for _, t in sorted(source.state_dict().items())] + [t for _, t in sorted(coca.state_dict().items())]
    options = asdict(coca.config.coca_options)
    return _digest(asdict(settings), coca.config.coca_variant, options, input_ids, *tensors)


def _open_state(state_dir: Path | None, fingerprint: str) -> list[dict]:
    """Done layers recorded in ``state_dir`` for this fingerprint (a state of other settings,
    written by this module, is discarded; anything else there is refused)."""
    if state_dir is None:
        return []
    progress = state_dir / "progress.json"
    if state_dir.exists():
        if not progress.is_file() or load_json(progress).get("format") != STATE_FORMAT:
            raise bad_value(
                "state_dir",
                str(state_dir),
                "a new directory or a transfer state written by cocattn "
                "(this one holds something else; it is left untouched)",
            )
        state = load_json(progress)
        if state.get("fingerprint") == fingerprint:
            return list(state.get("layers", []))
        shutil.rmtree(state_dir)  # our own state for other settings or weights
    state_dir.mkdir(parents=True)
    write_json(progress, {"format": STATE_FORMAT, "fingerprint": fingerprint, "layers": []})
    return []


def _save_layer(state_path: Path, layer_idx: int, weights: dict[str, torch.Tensor], records: list[dict]) -> None:
    """A finished layer into the state directory: its weights, then the progress record."""
    write_safetensors(state_path / f"layer_{layer_idx:04d}.safetensors", weights)
    state = load_json(state_path / "progress.json")
    state["layers"] = records
    write_json(state_path / "progress.json", state)


def state_dir_for(dst: str | os.PathLike) -> Path:
    """The state directory of a transfer writing ``dst``: ``.<name>.transfer-state`` beside it."""
    dst = Path(dst)
    return dst.parent / f".{dst.name}.transfer-state"
