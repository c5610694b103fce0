"""Attention transfer: fit each CoCA layer to reproduce the original LLaMA layer's attention output
(after LoLCATs), so a converted model keeps its language model; docs/HF.md, "Attention transfer".

The settings (:mod:`~.settings`), the transfer set (:mod:`~.data`), the original model's residual
stream (:mod:`~.stack`), the fit (:mod:`~.fit`), the resumable state (:mod:`~.state`) and the
directory-to-directory driver (:mod:`~.directory`)."""

from __future__ import annotations

from cocattn.hf.transfer.data import transfer_tokens
from cocattn.hf.transfer.directory import RECORD_FILE, transfer_llama_dir
from cocattn.hf.transfer.fit import layer_errors, transfer_attention
from cocattn.hf.transfer.settings import FITS, TransferSettings
from cocattn.hf.transfer.state import STATE_FORMAT, state_dir_for

__all__ = [
    "FITS",
    "RECORD_FILE",
    "STATE_FORMAT",
    "TransferSettings",
    "transfer_tokens",
    "transfer_attention",
    "layer_errors",
    "transfer_llama_dir",
    "state_dir_for",
]
