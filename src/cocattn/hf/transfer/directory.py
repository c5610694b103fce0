"""What ``cocattn convert llama --transfer`` runs: convert a LLaMA directory, fit its attention on
the transfer data and save it atomically with its tokenizer and ``cocattn_transfer.json`` (settings,
per-layer errors, wall time and peak memory)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from cocattn._checks import bad_value
from cocattn.files import atomic_directory, check_replaceable, dumps_json, mark_output
from cocattn.hf.convert import TOKENIZER_FILES, convert_llama, load_llama
from cocattn.hf.transfer.data import transfer_tokens
from cocattn.hf.transfer.fit import transfer_attention
from cocattn.hf.transfer.settings import TransferSettings
from cocattn.hf.transfer.state import state_dir_for

RECORD_FILE = "cocattn_transfer.json"


def _peak_rss_mb() -> float | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, AttributeError):
        return None


def transfer_llama_dir(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    data: str | os.PathLike,
    settings: TransferSettings | None = None,
    *,
    variant: str = "slack",
    t_init: str = "random",
    overwrite: bool = False,
    progress: bool = True,
    on_layer: Callable[[dict], None] | None = None,
    coca: Mapping[str, Any] | None = None,
    allow_deviation: bool = False,
) -> Path:
    """Convert the LLaMA directory ``src`` to CoCA, fit its attention on ``data``
    (:func:`transfer_tokens`, :func:`transfer_attention`) and save it to ``dst`` atomically, with
    the tokenizer files of ``src`` and ``cocattn_transfer.json`` (settings, per-layer errors,
    cost). Resumable: rerun the same call after an interruption (the state is kept in
    :func:`state_dir_for` ``(dst)`` and removed once ``dst`` is written).

    Arguments:
        t_init: where T starts before the fit: ``"random"`` (default: near-uniform attention,
            measured to fit better than ``"from_k"``, whose large wrong scores the optimiser must
            first undo).
        coca, allow_deviation: CoCA's training options, as in
            :func:`~cocattn.hf.convert.convert_llama` (a deviation is refused unless asked for).
        on_layer: called with each layer's record once the layer is done and saved.

    Returns:
        ``dst`` as a :class:`~pathlib.Path`.
    """
    from transformers import AutoTokenizer

    settings = settings or TransferSettings()
    src, dst = Path(src), Path(dst)
    check_replaceable(dst, arg="dst", overwrite=overwrite, sources=(src, data), tool="cocattn convert")
    if not Path(data).exists():
        raise FileNotFoundError(f"transfer data {data} does not exist")
    start = time.perf_counter()
    source = load_llama(src, dtype=torch.float32)
    options = dict(coca or {})
    model = convert_llama(
        source, variant=variant, t_init=t_init, seed=settings.seed, coca=options, allow_deviation=allow_deviation
    )
    if not any((src / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise bad_value(
            "src",
            str(src),
            "a model directory with its tokenizer files (tokenizer.json), to tokenize the transfer data",
        )
    tokenizer = AutoTokenizer.from_pretrained(src, local_files_only=True)
    input_ids = transfer_tokens(data, tokenizer, settings)
    records = transfer_attention(
        source, model, input_ids, settings, state_dir=state_dir_for(dst), progress=progress, on_layer=on_layer
    )
    record = {
        "source": str(src),
        "data": str(data),
        "variant": variant,
        "t_init": t_init,
        "coca_options": options,
        "settings": asdict(settings),
        "sequences": int(input_ids.shape[0]),
        "seq_len": int(input_ids.shape[1]),
        "tokens": int(input_ids.numel()),
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": _peak_rss_mb(),
        "layers": records,
    }
    del source
    with atomic_directory(dst, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        (tmp / RECORD_FILE).write_text(dumps_json(record), encoding="utf-8")
        mark_output(tmp, "cocattn convert llama --transfer")
    shutil.rmtree(state_dir_for(dst), ignore_errors=True)
    return dst
