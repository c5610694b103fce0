"""Attention transfer: fit each CoCA layer to reproduce the original LLaMA layer's attention output.

Converting a pretrained LLaMA model to CoCA (:func:`cocattn.hf.convert_llama`) keeps every weight
but replaces the key projection by CoCA's T projection, whose tied, non-negative keys and cubic
scores match nothing the model learned: SmolLM2-135M's perplexity goes from ~20 to thousands.
Following LoLCATs (arXiv 2410.10254), this module trains the new attention of every layer, one
layer at a time, to reproduce that layer's original attention output:

- **teacher**: the original layer's attention output (after ``o_proj``) on the hidden states the
  ORIGINAL model computes for real text (the input of layer ``l`` is the original model's residual
  stream after layers ``0 .. l-1``, so errors do not compound during fitting);
- **student**: the CoCA attention of the same layer on the same (normalised) hidden states;
- **loss**: mean squared error, minimised with Adam over ``steps`` mini-batches of ``batch_size``
  sequences, learning rate ``lr`` with a cosine decay to 10 %.

What is fitted (``fit``, :data:`FITS`): ``"t"`` (always) the T projection; ``"q"`` the query
projection; ``"gain"`` one output gain per query head, folded into the columns of ``o_proj`` when
the layer is done (the model keeps its architecture). Nothing else changes. (A closed-form ridge
least-squares refit of ``o_proj`` lowered every layer's error a further 10-30 % but raised the
held-out perplexity, 66 -> 81, so it is not offered; docs/HF.md.)

Memory is that of one layer: the transfer set's hidden states (``tokens x hidden`` floats, three
copies: residual stream, normalised input, teacher output) plus one attention layer's gradients.
Each layer is seeded from ``(seed, layer)``, and after each layer its fitted weights go to a state
directory, so an interrupted transfer resumes at the next layer and gives the same weights as an
uninterrupted one (the residual stream is recomputed with the original layers, which never change).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.func import functional_call
from transformers import LlamaForCausalLM
from transformers.masking_utils import create_causal_mask

from cocattn._checks import bad_value, check, check_choice
from cocattn.hf.convert import TOKENIZER_FILES, convert_llama, load_llama
from cocattn.hf.modeling import CocaLlamaForCausalLM
from cocattn.files import (
    atomic_directory,
    check_replaceable,
    dumps_json,
    load_json,
    load_safetensors,
    mark_output,
    write_json,
    write_safetensors,
)

__all__ = [
    "FITS",
    "TransferSettings",
    "transfer_tokens",
    "transfer_attention",
    "layer_errors",
    "transfer_llama_dir",
    "state_dir_for",
]

FITS = ("t", "q", "gain")
STATE_FORMAT = "cocattn-transfer-state"
RECORD_FILE = "cocattn_transfer.json"


@dataclass(frozen=True)
class TransferSettings:
    """How to fit the CoCA attention (defaults: the ones that measured best on SmolLM2-135M,
    docs/HF.md)."""

    tokens: int = 65_536
    seq_len: int = 512
    steps: int = 300
    lr: float = 1e-2
    batch_size: int = 1
    fit: tuple[str, ...] = ("t", "q", "gain")
    seed: int = 0
    check_sequences: int = 4  # the per-layer errors reported are measured on this many sequences

    def __post_init__(self) -> None:
        check(isinstance(self.tokens, int) and self.tokens >= 1, "tokens", self.tokens, "a positive integer")
        check(isinstance(self.seq_len, int) and self.seq_len >= 2, "seq_len", self.seq_len, "an integer >= 2")
        check(isinstance(self.steps, int) and self.steps >= 0, "steps", self.steps, "an integer >= 0")
        check(
            isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
            "lr",
            self.lr,
            "a positive number",
        )
        check(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
            "batch_size",
            self.batch_size,
            "a positive integer",
        )
        fit = tuple(self.fit)
        for name in fit:
            check_choice("fit", name, FITS)
        check("t" in fit, "fit", ",".join(fit), "a list that includes 't' (the T projection is always fitted)")
        object.__setattr__(self, "fit", tuple(sorted(set(fit), key=FITS.index)))
        check(isinstance(self.seed, int), "seed", self.seed, "an integer")
        check(
            isinstance(self.check_sequences, int) and self.check_sequences >= 1,
            "check_sequences",
            self.check_sequences,
            "a positive integer",
        )

    @property
    def sequences(self) -> int:
        """Sequences of ``seq_len`` tokens wanted: ``ceil(tokens / seq_len)``."""
        return -(-self.tokens // self.seq_len)


# ---------------------------------------------------------------------------------------------
# Transfer data


def _windows(stream: np.ndarray, count: int, seq_len: int, where: str) -> torch.Tensor:
    """``count`` windows of ``seq_len`` tokens evenly spaced over ``stream`` (non-overlapping when it
    is long enough; at most ``len // seq_len`` of them)."""
    if len(stream) < seq_len:
        raise bad_value(
            "transfer data",
            where,
            f"at least one sequence of seq_len={seq_len} tokens "
            f"(it has {len(stream)} tokens with the model's tokenizer)",
        )
    count = min(count, len(stream) // seq_len)
    starts = (
        np.linspace(0, len(stream) - seq_len, count).round().astype(np.int64) if count > 1 else np.zeros(1, np.int64)
    )
    return torch.from_numpy(np.stack([stream[s : s + seq_len] for s in starts]).astype(np.int64))


def _read_texts(path: Path) -> list[str]:
    """A ``.txt`` file whole, or a ``.jsonl`` file read as ``cocattn data build`` reads one
    (``jsonl:`` source; documents marked ``"split": "eval"`` are held out, so left out here)."""
    if path.suffix == ".txt":
        return [path.read_text(encoding="utf-8")]
    from cocattn.data.build.sources import jsonl_file

    return [d.text for d in jsonl_file(path).documents if d.meta.get("split") != "eval"]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def transfer_tokens(data: str | os.PathLike, tokenizer: Any, settings: TransferSettings) -> torch.Tensor:
    """The transfer set: ``[sequences, seq_len]`` token ids of the model's ``tokenizer`` (a
    transformers tokenizer) from ``data``.

    ``data`` is a cocattn data directory (its **training split** ``train.bin``, never the held-out
    or validation text: windows evenly spaced over it, decoded with the data's tokenizer and
    re-encoded with the model's unless the two are the same), a ``.jsonl`` file of
    ``{"text": ...}`` lines or a ``.txt`` file (documents joined with the tokenizer's end-of-sequence
    token, windows evenly spaced). Deterministic. Fewer tokens than one sequence is an error.
    """
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"transfer data {path} does not exist")
    count, seq_len = settings.sequences, settings.seq_len
    if path.is_dir():
        return _data_dir_windows(path, tokenizer, count, seq_len)
    check(
        path.suffix in (".jsonl", ".txt"),
        "transfer data",
        str(path),
        'a cocattn data directory, a .jsonl file of {"text": ...} lines or a .txt file',
    )
    eos = getattr(tokenizer, "eos_token_id", None)
    ids: list[int] = []
    for text in _read_texts(path):
        ids += _encode(tokenizer, text)
        if eos is not None:
            ids.append(int(eos))
    return _windows(np.asarray(ids, dtype=np.int64), count, seq_len, str(path))


def _data_dir_windows(path: Path, tokenizer: Any, count: int, seq_len: int) -> torch.Tensor:
    from cocattn.data.read.shards import load_manifest, verify_file
    from cocattn.data.read.tokenizer import load_tokenizer

    manifest = load_manifest(path)
    verify_file(path, "train.bin", manifest, verify="size")
    dtype = np.dtype(manifest["files"]["train.bin"].get("dtype", "uint16"))
    train = np.memmap(path / "train.bin", dtype=dtype, mode="r")
    theirs = load_tokenizer(path)
    ours = tokenizer.backend_tokenizer if hasattr(tokenizer, "backend_tokenizer") else None
    if ours is not None and ours.get_vocab(with_added_tokens=True) == theirs.get_vocab(with_added_tokens=True):
        return _windows(np.asarray(train, dtype=np.int64), count, seq_len, str(path / "train.bin"))
    # Another vocabulary: decode spans of the data's tokens and re-encode them with the model's.
    if len(train) == 0:
        raise bad_value("transfer data", str(path), "a data directory with training tokens (train.bin is empty)")
    rows: list[list[int]] = []
    span = 2 * seq_len
    last = max(0, len(train) - span)
    starts = np.linspace(0, last, count).round().astype(np.int64) if count > 1 else np.zeros(1, np.int64)
    for start in starts.tolist():
        width = span
        while True:
            start = max(0, min(start, len(train) - width))
            chunk = np.asarray(train[start : start + width], dtype=np.int64).tolist()
            ids = _encode(tokenizer, theirs.decode(chunk, skip_special_tokens=False))
            if len(ids) >= seq_len or width >= len(train):
                break
            width *= 2
        if len(ids) >= seq_len:
            rows.append(ids[:seq_len])
    if not rows:
        raise bad_value(
            "transfer data",
            str(path),
            f"at least one sequence of seq_len={seq_len} tokens with the model's tokenizer in train.bin",
        )
    return torch.tensor(rows, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# Layer by layer


def _check_pair(source: LlamaForCausalLM, coca: CocaLlamaForCausalLM) -> None:
    if not isinstance(source, LlamaForCausalLM) or getattr(source.config, "model_type", None) != "llama":
        kind = getattr(getattr(source, "config", None), "model_type", None) or type(source).__name__
        raise bad_value("source", kind, "a LlamaForCausalLM (model_type 'llama'), the model CoCA was converted from")
    if not isinstance(coca, CocaLlamaForCausalLM):
        raise bad_value("coca", type(coca).__name__, "a CocaLlamaForCausalLM (cocattn.hf.convert_llama)")
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim"):
        a, b = getattr(source.config, key), getattr(coca.config, key)
        check(a == b, f"coca.config.{key}", b, f"{a}, as in the source model")


class _Stack:
    """The original model's residual stream over the transfer set, advanced one layer at a time."""

    def __init__(self, source: LlamaForCausalLM, coca: CocaLlamaForCausalLM, input_ids: torch.Tensor, chunk: int):
        self.source, self.coca, self.chunk = source, coca, chunk
        device = source.model.embed_tokens.weight.device
        self.input_ids = input_ids.to(device)
        n, length = self.input_ids.shape
        self.positions = torch.arange(length, device=device).unsqueeze(0)
        with torch.no_grad():
            self.hidden = torch.cat(
                [source.model.embed_tokens(self.input_ids[i : i + chunk]) for i in range(0, n, chunk)]
            )
            self.llama_rot = source.model.rotary_emb(self.hidden[:1], self.positions)
            self.coca_rot = coca.model.rotary_emb(self.positions, self.positions, torch.float32)
        self.layer = 0

    def mask(self, model, x: torch.Tensor):
        return create_causal_mask(
            config=model.config, inputs_embeds=x, attention_mask=None, cache=None, position_ids=self.positions
        )

    def teacher(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(normalised input, original attention output)`` of the current layer, no grad."""
        layer = self.source.model.layers[self.layer]
        xs, ys = [], []
        with torch.no_grad():
            for i in range(0, self.hidden.shape[0], self.chunk):
                x = layer.input_layernorm(self.hidden[i : i + self.chunk])
                y, _ = layer.self_attn(x, position_embeddings=self.llama_rot, attention_mask=self.mask(self.source, x))
                xs.append(x)
                ys.append(y)
        return torch.cat(xs), torch.cat(ys)

    def student(self, attn: torch.nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out, _ = functional_call(
            attn, params, (x,), {"position_embeddings": self.coca_rot, "attention_mask": self.mask(self.coca, x)}
        )
        return out

    def advance(self) -> None:
        layer = self.source.model.layers[self.layer]
        with torch.no_grad():
            for i in range(0, self.hidden.shape[0], self.chunk):
                h = self.hidden[i : i + self.chunk]
                self.hidden[i : i + self.chunk] = layer(
                    h,
                    attention_mask=self.mask(self.source, h),
                    position_ids=self.positions,
                    position_embeddings=self.llama_rot,
                )
        self.layer += 1


def _relative_error(
    stack: _Stack,
    attn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: dict[str, torch.Tensor] | None = None,
) -> float:
    """``sum (student - teacher)^2 / sum teacher^2`` over the whole transfer set."""
    params = params if params is not None else {}
    err = ref = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], stack.chunk):
            out = stack.student(attn, params, x[i : i + stack.chunk])
            err += float((out - y[i : i + stack.chunk]).double().pow(2).sum())
            ref += float(y[i : i + stack.chunk].double().pow(2).sum())
    return err / max(ref, 1e-30)


def _gain_columns(gain: torch.Tensor, head_dim: int) -> torch.Tensor:
    return gain.repeat_interleave(head_dim).unsqueeze(0)


def _fit_layer(
    stack: _Stack,
    layer_idx: int,
    x: torch.Tensor,
    y: torch.Tensor,
    settings: TransferSettings,
    on_step: Callable[[int, float], None] | None,
) -> tuple[dict[str, torch.Tensor], float]:
    """Fit one layer; returns the layer's new attention weights (module-relative names) and the
    last mini-batch loss (relative MSE)."""
    attn = stack.coca.model.layers[layer_idx].self_attn
    named = dict(attn.named_parameters())
    trainable: dict[str, torch.Tensor] = {}
    for proj in ("t", "q"):
        if proj in settings.fit:
            for name, p in named.items():
                if name.startswith(f"{proj}_proj.") or (proj == "q" and name == "score_log_scale"):
                    trainable[name] = p.detach().clone().requires_grad_(True)
    gain = None
    if "gain" in settings.fit:
        gain = torch.ones(
            stack.coca.config.num_attention_heads,
            dtype=named["o_proj.weight"].dtype,
            device=named["o_proj.weight"].device,
            requires_grad=True,
        )
    o_weight = named["o_proj.weight"].detach()
    leaves = list(trainable.values()) + ([gain] if gain is not None else [])
    opt = torch.optim.Adam(leaves, lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, settings.steps) / max(settings.steps, 1)))
    )
    gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + layer_idx)
    n = x.shape[0]
    head_dim = stack.coca.config.head_dim
    last = float("nan")
    for step in range(settings.steps):
        idx = torch.randint(n, (min(settings.batch_size, n),), generator=gen)
        params = dict(trainable)
        if gain is not None:
            params["o_proj.weight"] = o_weight * _gain_columns(gain, head_dim)
        out = stack.student(attn, params, x[idx])
        target = y[idx]
        loss = (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-30)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        last = float(loss.detach())
        if on_step is not None:
            on_step(step, last)
    result = {name: t.detach().clone() for name, t in trainable.items()}
    if gain is not None:
        result["o_proj.weight"] = (o_weight * _gain_columns(gain.detach(), head_dim)).clone()
    return result, last


def _load_layer(coca: CocaLlamaForCausalLM, layer_idx: int, weights: dict[str, torch.Tensor]) -> None:
    attn = coca.model.layers[layer_idx].self_attn
    named = dict(attn.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            named[name].copy_(value)


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


def _fingerprint(source, coca, input_ids: torch.Tensor, settings: TransferSettings) -> str:
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


def _transfer_layer(
    stack: _Stack, layer_idx: int, settings: TransferSettings, bar: Any | None
) -> tuple[dict[str, torch.Tensor], dict]:
    """Fit layer ``layer_idx`` of ``stack.coca`` (in place) on the current teacher pair; returns the
    layer's new attention weights and its record (errors before and after, last loss, seconds)."""
    start = time.perf_counter()
    x, y = stack.teacher()
    attn = stack.coca.model.layers[layer_idx].self_attn
    k = settings.check_sequences
    before = _relative_error(stack, attn, x[:k], y[:k])

    def show(step: int, loss: float) -> None:
        if bar is not None and (step % 10 == 0 or step == settings.steps - 1):
            bar.set_postfix_str(f"layer {layer_idx} step {step + 1}/{settings.steps} loss {loss:.4f}")

    weights, last = _fit_layer(stack, layer_idx, x, y, settings, show if bar is not None else None)
    _load_layer(stack.coca, layer_idx, weights)
    after = _relative_error(stack, attn, x[:k], y[:k])
    if bar is not None:
        bar.write(f"layer {layer_idx:3d}: relative error {before:.4f} -> {after:.4f}")
    record = {
        "layer": layer_idx,
        "error_before": before,
        "error_after": after,
        "last_batch_loss": last,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return weights, record


def _save_layer(state_path: Path, layer_idx: int, weights: dict[str, torch.Tensor], records: list[dict]) -> None:
    """A finished layer into the state directory: its weights, then the progress record."""
    write_safetensors(state_path / f"layer_{layer_idx:04d}.safetensors", weights)
    state = load_json(state_path / "progress.json")
    state["layers"] = records
    write_json(state_path / "progress.json", state)


def transfer_attention(
    source: LlamaForCausalLM,
    coca: CocaLlamaForCausalLM,
    input_ids: torch.Tensor,
    settings: TransferSettings | None = None,
    *,
    state_dir: str | os.PathLike | None = None,
    progress: bool = True,
    on_layer: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Fit every layer of ``coca`` (in place) to the attention outputs of ``source`` on
    ``input_ids`` (``[sequences, length]``, e.g. :func:`transfer_tokens`).

    Returns one record per layer: ``layer``, ``error_before`` and ``error_after`` (relative MSE
    ``Σ(student − teacher)² / Σ teacher²`` over the first ``settings.check_sequences`` sequences
    of the transfer set), ``last_batch_loss``,
    ``seconds``. ``state_dir``: where finished layers are kept so that a rerun after an interruption
    continues with the next layer (same result as an uninterrupted run); created if missing.
    ``on_layer(record)`` is called after each layer is done and saved.
    """
    from tqdm import tqdm

    settings = settings or TransferSettings()
    _check_pair(source, coca)
    check(
        isinstance(input_ids, torch.Tensor)
        and input_ids.dim() == 2
        and input_ids.shape[0] >= 1
        and input_ids.shape[1] >= 2,
        "input_ids",
        getattr(input_ids, "shape", input_ids),
        "a [sequences, length] tensor of token ids with length >= 2",
    )
    source.eval()
    coca.eval()
    for p in list(source.parameters()) + list(coca.parameters()):
        p.requires_grad_(False)
    state_path = Path(state_dir) if state_dir is not None else None
    done = _open_state(state_path, _fingerprint(source, coca, input_ids, settings)) if state_path else []
    layers = coca.config.num_hidden_layers
    records: list[dict] = []
    stack = _Stack(source, coca, input_ids, chunk=max(1, settings.batch_size))
    bar = tqdm(range(layers), desc="attention transfer", unit="layer", disable=not progress)
    for layer_idx in bar:
        if layer_idx < len(done):
            _load_layer(coca, layer_idx, load_safetensors(state_path / f"layer_{layer_idx:04d}.safetensors"))
            records.append(done[layer_idx])
            stack.advance()
            continue
        weights, record = _transfer_layer(stack, layer_idx, settings, bar if progress else None)
        if state_path is not None:
            _save_layer(state_path, layer_idx, weights, records + [record])
        records.append(record)
        stack.advance()
        if on_layer is not None:
            on_layer(record)
    return records


def layer_errors(
    source: LlamaForCausalLM, coca: CocaLlamaForCausalLM, input_ids: torch.Tensor, chunk: int = 4
) -> list[float]:
    """Per layer, the relative MSE of ``coca``'s attention output against ``source``'s on the
    original model's hidden states for ``input_ids`` (what the transfer minimises)."""
    _check_pair(source, coca)
    stack = _Stack(source, coca, input_ids, chunk=chunk)
    errors = []
    for layer_idx in range(coca.config.num_hidden_layers):
        x, y = stack.teacher()
        errors.append(_relative_error(stack, coca.model.layers[layer_idx].self_attn, x, y))
        stack.advance()
    return errors


# ---------------------------------------------------------------------------------------------
# Directories (what `cocattn convert llama --transfer` runs)


def state_dir_for(dst: str | os.PathLike) -> Path:
    """The state directory of a transfer writing ``dst``: ``.<name>.transfer-state`` beside it."""
    dst = Path(dst)
    return dst.parent / f".{dst.name}.transfer-state"


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
    cost). ``t_init`` is where T starts before the fit: ``"random"`` (default: near-uniform
    attention, measured to fit better than ``"from_k"``, whose large wrong scores the optimiser
    must first undo). ``coca`` and ``allow_deviation``: CoCA's training options, as in
    :func:`~cocattn.hf.convert.convert_llama` (a deviation is refused unless asked for). Resumable: rerun the same call after an interruption (the state is kept in
    :func:`state_dir_for` ``(dst)`` and removed once ``dst`` is written)."""
    from transformers import AutoTokenizer

    settings = settings or TransferSettings()
    src, dst = Path(src), Path(dst)
    check_replaceable(dst, arg="dst", overwrite=overwrite, sources=(src, data), tool="cocattn convert")
    if not Path(data).exists():
        raise FileNotFoundError(f"transfer data {data} does not exist")
    start = time.perf_counter()
    source = load_llama(src, dtype=torch.float32)
    options = dict(coca or {})
    coca = convert_llama(
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
        source, coca, input_ids, settings, state_dir=state_dir_for(dst), progress=progress, on_layer=on_layer
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
        coca.save_pretrained(tmp, safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        (tmp / RECORD_FILE).write_text(dumps_json(record), encoding="utf-8")
        mark_output(tmp, "cocattn convert llama --transfer")
    shutil.rmtree(state_dir_for(dst), ignore_errors=True)
    return dst
