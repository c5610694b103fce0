"""Convert a pretrained LLaMA-family model (``LlamaForCausalLM``, GQA included) to CoCA: every
weight is kept except the key projection, which becomes CoCA's T projection, started as K
(``"from_k"``) or at random (``"random"``) (:data:`T_INITS`). CoCA's training options go into the
converted config; one that leaves the paper's function class needs ``allow_deviation=True``.
docs/HF.md, "Converting a LLaMA checkpoint"."""

from __future__ import annotations

import math
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping, cast

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from cocattn._checks import bad_value, check, check_choice
from cocattn.attention.coca_options import CocaOptions
from cocattn.files import atomic_directory, check_replaceable, load_json, mark_output, refuse_pickles
from cocattn.hf.config import COCA_VARIANTS, CocaLlamaConfig
from cocattn.hf.load import refuse_remote_code
from cocattn.hf.modeling import CocaLlamaForCausalLM

__all__ = ["T_INITS", "convert_llama", "convert_llama_dir", "load_llama", "TOKENIZER_FILES"]

# Files a model directory's tokenizer may consist of; copied unchanged by ``convert_llama_dir``.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)


def _t_from_k(
    k_weight: torch.Tensor, k_bias: torch.Tensor | None, config: LlamaConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    return k_weight.clone(), None if k_bias is None else k_bias.clone()


def _t_random(
    k_weight: torch.Tensor, k_bias: torch.Tensor | None, config: LlamaConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    std = getattr(config, "coca_t_init_std", None) or config.initializer_range
    w = torch.randn(k_weight.shape, generator=gen, dtype=torch.float32) * std
    return w.to(k_weight.dtype), None if k_bias is None else torch.zeros_like(k_bias)


T_INITS: dict[str, Callable] = {"from_k": _t_from_k, "random": _t_random}


def load_llama(path: str | Path, dtype: torch.dtype | None = None) -> LlamaForCausalLM:
    """Load a ``LlamaForCausalLM`` directory (safetensors only, no pickles), with clear errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not (path / "config.json").is_file():
        raise bad_value("checkpoint", str(path), "a Hugging Face model directory holding config.json")
    refuse_remote_code(path)
    config = load_json(path / "config.json")
    check(
        isinstance(config, dict),
        "checkpoint",
        str(path),
        f"a config.json holding a JSON object ({path / 'config.json'})",
    )
    model_type = config.get("model_type")
    check(
        model_type == "llama",
        "model_type",
        model_type,
        f"'llama' (a LLaMA-family checkpoint) in {path / 'config.json'}",
    )
    if not any(path.glob("*.safetensors")):
        raise bad_value("checkpoint", str(path), "a directory with model weights in *.safetensors")
    refuse_pickles(path)
    from cocattn.hf.load import from_pretrained_checked

    return from_pretrained_checked(
        LlamaForCausalLM,
        path,
        name="checkpoint",
        dtype=dtype or "auto",
        expected="a loadable LlamaForCausalLM directory with safetensors weights",
    )


def _converted_state(
    state: dict[str, torch.Tensor], config: CocaLlamaConfig, options: CocaOptions, t_init: str, seed: int
) -> dict[str, torch.Tensor]:
    """The LLaMA state dict with each ``k_proj`` replaced by ``t_proj`` (``t_init``) and the
    parameters CoCA's options add (T's bias offset, the per-head score scale)."""
    gen = torch.Generator().manual_seed(int(seed))
    converted = {name: tensor for name, tensor in state.items() if ".self_attn.k_proj." not in name}
    for i in range(config.num_hidden_layers):
        prefix = f"model.layers.{i}.self_attn."
        t_w, t_b = T_INITS[t_init](state[prefix + "k_proj.weight"], state.get(prefix + "k_proj.bias"), config, gen)
        converted[prefix + "t_proj.weight"] = t_w
        if options.t_bias is not None:  # the offset on top of K's bias (or alone)
            t_b = options.t_bias + (torch.zeros(t_w.shape[0], dtype=t_w.dtype) if t_b is None else t_b)
        if t_b is not None:
            converted[prefix + "t_proj.bias"] = t_b
        if options.score_scale is not None:
            converted[prefix + "score_log_scale"] = torch.full(
                (config.num_attention_heads,), math.log(options.score_scale), dtype=t_w.dtype
            )
    return converted


def convert_llama(
    model_or_path: LlamaForCausalLM | str | Path,
    variant: str = "slack",
    t_init: str = "from_k",
    *,
    seed: int = 0,
    coca: Mapping[str, Any] | None = None,
    allow_deviation: bool = False,
) -> CocaLlamaForCausalLM:
    """A :class:`CocaLlamaForCausalLM` with the weights of a LLaMA model and T initialised by ``t_init``.

    Args:
        model_or_path: a ``LlamaForCausalLM`` or the directory of one (safetensors).
        variant: ``"slack"`` or ``"strict"`` (``config.coca_variant``).
        t_init: one of :data:`T_INITS` (see the module docstring).
        seed: seed of ``t_init="random"``.
        coca: CoCA's training options (``CocaOptions`` field names, e.g. ``{"score_scale": 4.0}``).
        allow_deviation: accept options that change the function class (module docstring).

    Returns:
        The converted model, in eval mode, in the source's dtype.
    """
    check_choice("variant", variant, COCA_VARIANTS)
    check_choice("t_init", t_init, T_INITS)

    if isinstance(model_or_path, (str, Path)):
        source = load_llama(model_or_path)
    else:
        source = model_or_path
    if not isinstance(source, LlamaForCausalLM) or getattr(source.config, "model_type", None) != "llama":
        kind = getattr(getattr(source, "config", None), "model_type", None) or type(source).__name__
        raise bad_value("model", kind, "a LlamaForCausalLM (model_type 'llama') or the directory of one")
    head_dim = cast(int, source.config.head_dim)  # LlamaConfig.__post_init__ sets it
    check(
        head_dim % 2 == 0,
        "head_dim",
        head_dim,
        "an even number: CoCA ties the two halves of each rotary plane of T, so this model cannot be converted",
    )
    data = source.config.to_dict()
    for key in ("model_type", "architectures", "transformers_version", "_name_or_path"):
        data.pop(key, None)
    data["coca_variant"] = variant
    options = coca_options(coca, bool(getattr(source.config, "attention_bias", False)), allow_deviation)
    data.update({f"coca_{name}": value for name, value in (coca or {}).items()})
    config = CocaLlamaConfig.from_dict(data)
    config.architectures = ["CocaLlamaForCausalLM"]

    converted = _converted_state(source.state_dict(), config, options, t_init, seed)
    dtype = next(source.parameters()).dtype
    model = CocaLlamaForCausalLM(config).to(dtype)  # type: ignore[arg-type]  # transformers' wrapped .to is typed unbound
    missing, unexpected = model.load_state_dict(converted, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise bad_value(
            "model",
            f"missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)}",
            "a standard LlamaForCausalLM state dict",
        )
    if config.tie_word_embeddings:
        model.tie_weights()
    model.generation_config = source.generation_config
    return model.eval()


def coca_options(coca: Mapping[str, Any] | None, has_bias: bool, allow_deviation: bool) -> CocaOptions:
    """``coca`` checked as :class:`CocaOptions` fields; an option that changes the function class
    (for a model with or without attention biases) is refused unless ``allow_deviation``."""
    names = [f.name for f in fields(CocaOptions)]
    for key in coca or {}:
        check(key in names, "coca", key, f"one of {names}")
    options = CocaOptions(**(coca or {}))
    found = options.deviations(has_bias=has_bias)
    if found and not allow_deviation:
        raise bad_value(
            "coca",
            ", ".join(found),
            "options within the paper's function class; a deviation from it needs allow_deviation=True "
            "(cocattn convert llama --allow-deviation)",
        )
    return options


def convert_llama_dir(
    src: str | Path,
    dst: str | Path,
    variant: str = "slack",
    t_init: str = "from_k",
    *,
    seed: int = 0,
    overwrite: bool = False,
    coca: Mapping[str, Any] | None = None,
    allow_deviation: bool = False,
) -> Path:
    """Convert the LLaMA directory ``src`` and save the CoCA model (safetensors + config.json +
    the tokenizer files of ``src``) to ``dst``, atomically. What ``cocattn convert llama`` runs."""
    src, dst = Path(src), Path(dst)
    check_replaceable(dst, arg="dst", overwrite=overwrite, sources=(src,), tool="cocattn convert")
    model = convert_llama(src, variant=variant, t_init=t_init, seed=seed, coca=coca, allow_deviation=allow_deviation)
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        mark_output(tmp, "cocattn convert llama")
    return dst
