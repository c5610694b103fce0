"""Model directories: ``model.safetensors``, ``config.json`` (``{"format": "cocattn", "model":
<GPTConfig dict>, "files": {name: {"size", "sha256"}}, ...}``) and, when given, ``tokenizer.json``;
written atomically, never pickled, and checked (files, then shapes) before a model is built."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from cocattn import files
from cocattn._checks import bad_value, check
from cocattn.files import sha256_file
from cocattn.safeparse import loads_json

if TYPE_CHECKING:
    from cocattn.model import GPT, GPTConfig

FORMAT = "cocattn"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model under ``torch.compile`` / DDP wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = cast(torch.nn.Module, model._orig_mod)  # set by torch.compile
        elif isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def model_config(model: torch.nn.Module) -> GPTConfig:
    """The ``GPTConfig`` a model was built from."""
    model = unwrap(model)
    for name in ("config", "cfg"):
        cfg = getattr(model, name, None)
        if cfg is not None and hasattr(cfg, "to_dict"):
            return cfg
    raise bad_value("model", type(model).__name__, "a cocattn GPT (with a .config)")


def _state_for_saving(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Model tensors with tied (shared-storage) duplicates dropped; the first name is kept."""
    state = unwrap(model).state_dict()
    out: dict[str, torch.Tensor] = {}
    seen: dict[tuple, str] = {}
    for name, tensor in state.items():
        if hasattr(tensor, "full_tensor"):  # a DTensor (FSDP2): gather it
            tensor = tensor.full_tensor()
        key = (
            (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.dtype)
            if tensor.device.type != "meta"
            else (name,)
        )
        if key in seen:
            continue
        seen[key] = name
        out[name] = tensor
    return out


def _write_tokenizer(directory: Path, tokenizer: Any) -> None:
    if tokenizer is None:
        return
    if isinstance(tokenizer, (str, os.PathLike)):
        source = Path(tokenizer)
        if source.is_dir():
            source = source / TOKENIZER_FILE
        if not source.is_file():
            raise FileNotFoundError(f"tokenizer={str(tokenizer)!r}: {source} does not exist")
        shutil.copyfile(source, directory / TOKENIZER_FILE)
    elif hasattr(tokenizer, "to_str"):
        (directory / TOKENIZER_FILE).write_text(tokenizer.to_str(), encoding="utf-8")
    else:
        raise bad_value(
            "tokenizer", type(tokenizer).__name__, "None, a tokenizers.Tokenizer or the path of a tokenizer.json"
        )


def _file_records(directory: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{name: {"size", "sha256"}}`` for the files of ``names`` present in ``directory``."""
    return {
        name: {"size": (directory / name).stat().st_size, "sha256": files.sha256_file(directory / name)}
        for name in names
        if (directory / name).is_file()
    }


def verify_files(directory: str | os.PathLike, files: Any, listed_in: str | os.PathLike) -> None:
    """Check the files a ``config.json`` / ``trainer.json`` lists under ``files`` (size, then sha256).

    A missing, truncated or corrupt file (a bit flip the safetensors parser cannot see, a
    tokenizer that still parses) raises an error naming it. Directories written before checksums
    were recorded (no ``files``) pass unchecked.
    """
    if files is None:
        return
    directory = Path(directory)
    if not isinstance(files, dict):
        raise ValueError(f"{listed_in} is corrupt: 'files' is {type(files).__name__}, expected a mapping")
    for name, entry in files.items():
        path = directory / name
        if "/" in name or "\\" in name or name in ("", ".", "..") or not isinstance(entry, dict):
            raise ValueError(f"{listed_in} is corrupt: files[{name!r}] = {entry!r} is not a file entry")
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (listed in {listed_in})")
        size = path.stat().st_size
        if size != entry.get("size"):
            raise ValueError(
                f"{path} has {size} bytes but {listed_in} says {entry.get('size')!r}: the file is truncated or corrupt"
            )
        actual = sha256_file(path)  # the argument `files` hides the module
        if actual != entry.get("sha256"):
            raise ValueError(
                f"{path} is corrupt: sha256 {actual} does not match the {entry.get('sha256')!r} recorded in {listed_in}"
            )


def _save_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """``safetensors.torch.save_file``, with an I/O failure (disk full, read-only) raised as the
    ``OSError`` it is, so that atomic writes report it clearly (safetensors wraps it in its own
    error type)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(tensors, str(path), metadata=metadata)
    except SafetensorError as err:
        code = re.search(r"os error (\d+)|code: (\d+)", str(err))
        if code is None:
            raise
        number = int(code.group(1) or code.group(2))
        raise OSError(number, os.strerror(number), str(path)) from err


def _write_model_files(directory: Path, model: torch.nn.Module, tokenizer: Any, extra: dict[str, Any] | None) -> None:
    cfg = model_config(model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in _state_for_saving(model).items()}
    _save_safetensors(tensors, directory / MODEL_FILE, {"format": "pt", "producer": FORMAT})
    _write_tokenizer(directory, tokenizer)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": cfg.to_dict(),
        "files": _file_records(directory, (MODEL_FILE, TOKENIZER_FILE)),
    }
    for key, value in (extra or {}).items():
        check(key not in config, f"extra[{key!r}]", value, f"a key other than {sorted(config)}")
        config[key] = value
    (directory / CONFIG_FILE).write_text(files.dumps_json(config), encoding="utf-8")


def save_model(
    directory: str | os.PathLike, model: torch.nn.Module, tokenizer: Any = None, extra: dict[str, Any] | None = None
) -> Path:
    """Write a model directory atomically (replacing an existing one); return its path."""
    directory = Path(directory)
    with files.atomic_directory(directory) as tmp:
        _write_model_files(tmp, model, tokenizer, extra)
    return directory


def read_model_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a model directory, checked to be a cocattn one."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"model directory {directory} does not exist")
    config = files.load_json(directory / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != FORMAT or not isinstance(config.get("model"), dict):
        raise ValueError(
            f"{directory / CONFIG_FILE} is not a cocattn model config "
            f"(expected {{'format': {FORMAT!r}, 'model': {{...}}}})"
        )
    return config


def check_compatible(found: dict[str, Any], expected: Any, where: str) -> None:
    """Raise if a saved model config differs from ``expected`` in vocabulary size or attention kind."""
    if expected is None:
        return
    expected = expected.to_dict() if hasattr(expected, "to_dict") else dict(expected)
    for key in ("vocab_size", "attention"):
        if key in expected and expected[key] is not None and found.get(key) != expected[key]:
            raise ValueError(
                f"{where}: {key}={found.get(key)!r} in the checkpoint does not match the "
                f"requested {key}={expected[key]!r}; use a checkpoint trained with the "
                f"same {key}, or change the configuration"
            )


def load_model(
    directory: str | os.PathLike, map_location: str | torch.device = "cpu", expected_config: Any = None
) -> tuple[GPT, Any]:
    """Load ``(model, tokenizer)`` from a model directory; ``tokenizer`` is None when absent.

    Refuses directories holding pickles. ``expected_config`` (a GPTConfig or dict) makes a
    mismatching vocabulary size or attention kind a clear error.
    """
    from cocattn.model import GPT, GPTConfig

    directory = Path(directory)
    files.refuse_pickles(directory) if directory.is_dir() else None
    config = read_model_config(directory)
    check_compatible(config["model"], expected_config, str(directory))
    verify_files(directory, config.get("files"), directory / CONFIG_FILE)
    cfg = GPTConfig.from_dict(config["model"])
    check_config_against_weights(cfg, directory / MODEL_FILE, directory / CONFIG_FILE)
    tokenizer = _load_tokenizer(directory / TOKENIZER_FILE, cfg.vocab_size)
    model = GPT(cfg)
    load_weights(model, directory / MODEL_FILE)
    model.to(map_location)
    return model, tokenizer


def _load_tokenizer(path: Path, vocab_size: int) -> Any:
    """The model directory's tokenizer (None when absent); every id it can produce must be an
    id of the model's vocabulary (a larger one would index past the embedding)."""
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises its own exception type
        raise ValueError(f"{path} is not a valid tokenizer file: {err}") from None
    top = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1)
    if top >= vocab_size:
        raise ValueError(
            f"{path} holds token id {top}, beyond the model's vocabulary (vocab_size={vocab_size} in "
            f"{path.parent / CONFIG_FILE}): the tokenizer does not belong to this model"
        )
    return tokenizer


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor in a safetensors file, from its header alone (no tensor data
    is read; the parser bounds the header's size)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with safe_open(str(path), "pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path} is not a valid safetensors file (corrupt or truncated?): {err}") from None


def check_config_against_weights(cfg: Any, weights: Path, config_file: Path) -> None:
    """Refuse a model config whose shapes are not those of the tensors in ``weights``, from the
    safetensors header, before the model is built: the layer count first (a config asking for a
    million layers would build them), then every tensor's shape on a model built on the meta
    device (no memory), so a vocabulary or width edited in ``config.json`` is named, not
    allocated."""
    from cocattn.model import GPT

    shapes = weight_shapes(weights)
    layers = {int(name.split(".")[1]) for name in shapes if name.startswith("blocks.") and name.split(".")[1].isdigit()}
    if cfg.n_layer != len(layers):
        raise ValueError(
            f"{config_file}: model.n_layer={cfg.n_layer} does not match {weights}, which holds {len(layers)} "
            "layers: the config does not describe these weights"
        )
    with torch.device("meta"):
        skeleton = GPT(cfg)
    for name, tensor in skeleton.state_dict().items():
        if name in shapes and shapes[name] != tuple(tensor.shape):
            raise ValueError(
                f"{config_file} describes {name} of shape {tuple(tensor.shape)}, but {weights} holds "
                f"{shapes[name]}: the config does not describe these weights"
            )


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into ``model``; tied duplicates may be absent, nothing else."""
    tensors = files.load_safetensors(path)
    target = unwrap(model)
    state = target.state_dict()
    unknown = sorted(set(tensors) - set(state))
    if unknown:
        raise ValueError(f"{path}: tensors {unknown[:5]} do not belong to this model")
    for name, tensor in tensors.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{path}: {name} has shape {tuple(tensor.shape)}, the model expects {tuple(state[name].shape)}"
            )
    missing = set(state) - set(tensors)
    ptr = {name: (t.untyped_storage().data_ptr(), t.storage_offset()) for name, t in state.items()}
    saved_ptrs = {ptr[name] for name in tensors}
    untied_missing = sorted(name for name in missing if ptr[name] not in saved_ptrs)
    if untied_missing:
        raise ValueError(f"{path} lacks tensors {untied_missing[:5]} (corrupt or from another model?)")
    target.load_state_dict(tensors, strict=False)


def model_dir_kind(path: str | Path) -> str:
    """``"cocattn"`` or ``"hf"`` for a model directory; a clear ValueError for anything else."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    config = path / "config.json"
    if not path.is_dir() or not config.is_file():
        raise bad_value(
            "checkpoint",
            str(path),
            "a model directory holding config.json (a cocattn checkpoint or a Hugging Face model)",
        )
    try:
        data = loads_json(config.read_text(encoding="utf-8"), str(config))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise bad_value("checkpoint", str(path), f"a directory with a valid config.json ({err})") from None
    if isinstance(data, dict) and data.get("format") == "cocattn":
        return "cocattn"
    if isinstance(data, dict) and "model_type" in data:
        return "hf"
    raise bad_value(
        "checkpoint",
        str(path),
        'a cocattn checkpoint (config.json with "format": "cocattn") or a Hugging Face model '
        '(config.json with "model_type")',
    )
