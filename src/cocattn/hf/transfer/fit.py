"""The fit: every CoCA layer, one at a time, trained to reproduce the original layer's attention
output (:func:`transfer_attention`), and the per-layer errors it minimises (:func:`layer_errors`)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, cast

import torch
from transformers import LlamaForCausalLM

from cocattn._checks import check
from cocattn.files import load_safetensors
from cocattn.hf.modeling import CocaLlamaForCausalLM
from cocattn.hf.transfer.settings import TransferSettings
from cocattn.hf.transfer.stack import _check_pair, _relative_error, _Stack
from cocattn.hf.transfer.state import _fingerprint, _open_state, _save_layer


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
    head_dim = cast(int, stack.coca.config.head_dim)  # LlamaConfig.__post_init__ sets it
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
    ``input_ids``.

    Arguments:
        input_ids: ``[sequences, length]`` token ids (e.g. :func:`transfer_tokens`), ``length >= 2``.
        state_dir: where finished layers are kept so that a rerun after an interruption continues
            with the next layer (same result as an uninterrupted run); created if missing.
        on_layer: ``on_layer(record)`` is called after each layer is done and saved.

    Returns:
        One record per layer: ``layer``, ``error_before`` and ``error_after`` (relative MSE
        ``Σ(student − teacher)² / Σ teacher²`` over the first ``settings.check_sequences``
        sequences of the transfer set), ``last_batch_loss``, ``seconds``.
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
            saved = cast(Path, state_path) / f"layer_{layer_idx:04d}.safetensors"  # done: a state was given
            _load_layer(coca, layer_idx, load_safetensors(saved))
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
    """The relative MSE of ``coca``'s attention output against ``source``'s on the original model's
    hidden states for ``input_ids`` (``[sequences, length]``): what the transfer minimises.

    Returns:
        One float per layer, ``Σ(student − teacher)² / Σ teacher²``.
    """
    _check_pair(source, coca)
    stack = _Stack(source, coca, input_ids, chunk=chunk)
    errors = []
    for layer_idx in range(coca.config.num_hidden_layers):
        x, y = stack.teacher()
        errors.append(_relative_error(stack, coca.model.layers[layer_idx].self_attn, x, y))
        stack.advance()
    return errors
