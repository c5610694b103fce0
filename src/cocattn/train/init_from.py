"""Continued training (``train.init_from``, ``train.stage``): the initial model from a cocattn model
directory or a Hugging Face causal LM, checked against the data's vocabulary, with the paper's
stage set left trainable; and the Hugging Face model directory a run ends with. transformers is
imported only for a Hugging Face model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn._checks import bad_value
from cocattn.config import RunConfig
from cocattn.train.distributed import Dist
from cocattn.train.stages import trainable_parameters_for_stage

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from cocattn.model import GPTConfig

HF_RUN_FILE = "cocattn_train.json"  # the run config and result, next to a Hugging Face model's files


def check_vocabulary(init: Path, model_vocab: int | None, tokenizer: Tokenizer, data_dir: str) -> None:
    """The data directory's tokenizer must be the model's own (token ids mean the same thing)."""
    from cocattn.data.read.tokenizer import load_tokenizer

    size = tokenizer.get_vocab_size()
    problem = None
    if (init / "tokenizer.json").is_file():
        theirs = load_tokenizer(init / "tokenizer.json")
        if theirs.get_vocab(with_added_tokens=True) != tokenizer.get_vocab(with_added_tokens=True):
            problem = (
                f"the model's tokenizer ({init / 'tokenizer.json'}, {theirs.get_vocab_size()} tokens) and "
                f"the data's ({size} tokens) map tokens to different ids"
            )
    elif model_vocab is not None and model_vocab != size:
        problem = (
            f"the model has {model_vocab} token embeddings (and no tokenizer.json to compare), the "
            f"data's tokenizer has {size} tokens"
        )
    if problem is None and model_vocab is not None and size > model_vocab:
        problem = f"the data's tokenizer has {size} tokens, more than the model's {model_vocab} embeddings"
    if problem is not None:
        raise bad_value(
            "data.dir",
            data_dir,
            f"a data directory tokenized with the vocabulary of train.init_from={str(init)!r}: "
            f"{problem}. Build the data with the model's tokenizer (`cocattn data build` trains a "
            "new one, which suits only models trained on that data)",
        )


def continued_model(
    run: RunConfig, tokenizer: Tokenizer, data_dir: str, dist_info: Dist
) -> tuple[torch.nn.Module, GPTConfig | None, bool]:
    """``(model, GPTConfig or None, hf)`` for ``train.init_from``, frozen for ``train.stage``;
    ``hf`` is True for a Hugging Face model (refused under FSDP)."""
    tc = run.train
    model, cfg, kind = initial_model(run, tokenizer, data_dir)
    hf = kind == "hf"
    if hf and dist_info.mode == "fsdp":
        raise bad_value(
            "train.distributed",
            tc.distributed,
            "'ddp' when train.init_from is a Hugging Face model (FSDP is for cocattn models)",
        )
    if tc.stage is not None:
        try:
            trainable_parameters_for_stage(model, tc.stage)
        except ValueError as err:
            raise bad_value(
                "train.stage", tc.stage, f"3 or null for train.init_from={tc.init_from!r} ({err})"
            ) from None
    return model, cfg, hf


def initial_model(run: RunConfig, tokenizer: Tokenizer, data_dir: str) -> tuple[torch.nn.Module, GPTConfig | None, str]:
    """``(model, GPTConfig or None, kind)`` for ``train.init_from`` (kind ``"cocattn"`` or ``"hf"``)."""
    if run.train.init_from is None:
        raise bad_value("train.init_from", None, "a model directory to continue training")
    init = Path(run.train.init_from)
    kind = ckpt.model_dir_kind(init)  # FileNotFoundError / ValueError naming the directory
    files.refuse_pickles(init)
    if kind == "hf":
        from cocattn.hf.load import refuse_remote_code

        refuse_remote_code(init)
    if kind == "cocattn":
        model, cfg = _cocattn_model(init, run.model.max_seq_len, tokenizer, data_dir)
        return model, cfg, kind
    return _hf_model(init, tokenizer, data_dir), None, kind


def _cocattn_model(init: Path, seq_len: int, tokenizer: Tokenizer, data_dir: str) -> tuple[torch.nn.Module, GPTConfig]:
    """A saved cocattn model, rebuilt with the run's training length (the new L0)."""
    from cocattn.model import GPT, GPTConfig

    saved = ckpt.read_model_config(init)
    check_vocabulary(init, saved["model"].get("vocab_size"), tokenizer, data_dir)
    loaded, _ = ckpt.load_model(init)  # its checks (files, shapes) apply
    cfg = GPTConfig.from_dict(dict(loaded.config.to_dict(), max_seq_len=seq_len))  # the new L0
    model = GPT(cfg)
    model.load_state_dict(loaded.state_dict())
    return model, cfg


def _hf_model(init: Path, tokenizer: Tokenizer, data_dir: str) -> Any:
    """A Hugging Face causal LM in fp32 (``coca_llama`` registered), safetensors only (a transformers
    ``PreTrainedModel``: untyped)."""
    import cocattn.hf  # noqa: F401  registers coca_llama with the Auto classes
    from transformers import AutoModelForCausalLM

    declared = files.load_json(init / "config.json").get("vocab_size")
    if isinstance(declared, int):  # fail before loading the weights
        check_vocabulary(init, declared, tokenizer, data_dir)
    from cocattn.hf.load import from_pretrained_checked

    model = from_pretrained_checked(
        AutoModelForCausalLM,
        init,
        name="train.init_from",
        dtype=torch.float32,
        expected="a Hugging Face causal-LM directory with safetensors weights (or a cocattn model directory)",
    )
    if not isinstance(declared, int):
        check_vocabulary(init, model.get_input_embeddings().num_embeddings, tokenizer, data_dir)
    return model


def save_hf_model(directory: Path, model: Any, init: Path, data_dir: str, info: dict[str, Any]) -> None:
    """``save_pretrained`` (safetensors) + the tokenizer files of ``init`` (the data's tokenizer.json
    when it has none; the vocabulary was checked equal), atomically."""
    import shutil

    from cocattn.hf.convert import TOKENIZER_FILES

    with files.atomic_directory(directory) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        copied = False
        for name in TOKENIZER_FILES:
            if (init / name).is_file():
                shutil.copy2(init / name, tmp / name)
                copied = True
        if not copied:  # the model came without a tokenizer: give it the data's (same vocabulary)
            from cocattn.data.read.tokenizer import EOT

            shutil.copy2(Path(data_dir) / "tokenizer.json", tmp / "tokenizer.json")
            files.write_json(
                tmp / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOT}
            )
        (tmp / HF_RUN_FILE).write_text(files.dumps_json(info), encoding="utf-8")
