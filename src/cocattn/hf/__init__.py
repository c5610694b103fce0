"""transformers integration: the ``coca_llama`` model type, conversion of LLaMA checkpoints,
attention transfer and the offline SmolLM2 import. (The stage selection of continued training
is model-agnostic: :mod:`cocattn.train.stages`.)

Importing this package registers ``coca_llama`` with ``AutoConfig``, ``AutoModel`` and
``AutoModelForCausalLM``, so ``AutoModelForCausalLM.from_pretrained(dir)`` loads a saved CoCA
model without ``trust_remote_code``.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from cocattn.hf.config import COCA_VARIANTS, CocaLlamaConfig
from cocattn.hf.convert import T_INITS, convert_llama, convert_llama_dir, load_llama
from cocattn.hf.gguf import gguf_to_hf, smollm2_gguf
from cocattn.hf.modeling import CocaLlamaForCausalLM, CocaLlamaModel
from cocattn.hf.transfer import (
    FITS,
    TransferSettings,
    layer_errors,
    transfer_attention,
    transfer_llama_dir,
    transfer_tokens,
)

__all__ = [
    "COCA_VARIANTS",
    "FITS",
    "TransferSettings",
    "layer_errors",
    "transfer_attention",
    "transfer_llama_dir",
    "transfer_tokens",
    "T_INITS",
    "CocaLlamaConfig",
    "CocaLlamaModel",
    "CocaLlamaForCausalLM",
    "convert_llama",
    "convert_llama_dir",
    "load_llama",
    "gguf_to_hf",
    "smollm2_gguf",
]


def _register() -> None:
    """Register ``coca_llama`` with the Auto classes (idempotent)."""
    try:
        AutoConfig.register(CocaLlamaConfig.model_type, CocaLlamaConfig)
    except ValueError:  # already registered
        pass
    for auto, cls in ((AutoModel, CocaLlamaModel), (AutoModelForCausalLM, CocaLlamaForCausalLM)):
        try:
            auto.register(CocaLlamaConfig, cls)
        except ValueError:
            pass


_register()
