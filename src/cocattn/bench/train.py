"""``cocattn bench train``: training tokens/s, FLOP/s against the machine's matmul rate, page
faults, CPU time and peak memory of one model config for each attention kind."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import torch

from cocattn.attention.kinds import KINDS
from cocattn.bench.measure import Usage, matmul_rate, sync

if TYPE_CHECKING:
    from cocattn.model import GPT, GPTConfig

__all__ = ["bench_train"]


def _train_steps(
    model: GPT, cfg: GPTConfig, batch_size: int, steps: int, device: str, dtype: str, compile: bool, chunked: bool
) -> tuple[float, list[float], dict[str, float]]:
    """Warm-up (2 steps, compilation included) and ``steps`` timed optimizer steps of ``model``:
    ``(warm-up seconds, step times, usage over the timed steps)``."""
    cuda = device.startswith("cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
    fwd = torch.compile(model) if compile else model
    x = torch.randint(0, cfg.vocab_size, (batch_size, cfg.max_seq_len + 1), device=device)
    autocast = (
        torch.autocast("cuda", dtype=getattr(torch, dtype))
        if cuda and dtype != "float32"
        else torch.autocast("cpu", enabled=False)
    )
    times: list[float] = []
    warmup, usage = 0.0, Usage()
    for i in range(steps + 2):
        if i == 2:
            usage = Usage()
        sync(device)
        t0 = time.perf_counter()
        with autocast:
            _, loss = fwd(x[:, :-1], x[:, 1:], return_logits=not chunked)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
        else:
            warmup += time.perf_counter() - t0
    return warmup, times, usage.per_step(steps)


def bench_train(
    model_config: dict[str, Any],
    kinds: tuple[str, ...] = KINDS,
    *,
    batch_size: int = 8,
    steps: int = 10,
    device: str | None = None,
    dtype: str | None = None,
    compile: bool = False,
    chunked_loss: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Training tokens/s and peak memory of one config for each attention kind: random tokens,
    AdamW, forward + backward + step; the median step time after two warm-up steps, whose time,
    compilation included, is ``warmup_s``.

    Args:
        model_config: a ``GPTConfig`` dict (its ``attention`` is replaced by each kind).
        kinds: the attention kinds, in the rows' order.
        batch_size, steps: sequences per step (of the config's ``max_seq_len`` tokens); timed steps.
        device, dtype: ``cuda`` and ``bfloat16`` where a GPU is, else ``cpu`` and ``float32``
            (another dtype runs under autocast on CUDA only).
        compile, chunked_loss: the model through ``torch.compile``; the loss a chunk at a time.

    Returns:
        list[dict[str, Any]]: one row per kind: its settings (``kind``, ``device``, ``dtype``,
        ``batch_size``, ``seq_len``, ``parameters``, ``compile``, ``chunked_loss``, the
        ``allocator`` setting of :mod:`cocattn._malloc`, ``threads``), ``ms_per_step``,
        ``tokens_per_s``, ``warmup_s``, the model FLOP per step (the count of ``cocattn
        reproduce --plan``) and per second, the machine's ``matmul_flops_per_s`` and the
        ``matmul_fraction`` reached, the minor page faults per step, the CPU time per step and
        the system-time share of the timed steps, and ``peak_mib`` (CUDA; ``None`` on CPU).
    """
    from cocattn._malloc import allocator_setting
    from cocattn.model import GPT, GPTConfig
    from cocattn.bench.flops import ModelShape

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    dtype = dtype or ("bfloat16" if cuda else "float32")
    rate = matmul_rate(device)
    results = []
    from tqdm import tqdm

    for kind in tqdm(kinds, desc="bench train", disable=not progress):
        torch.manual_seed(0)
        cfg = GPTConfig.from_dict({**model_config, "attention": kind})
        model = GPT(cfg).to(device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        warmup, times, usage = _train_steps(model, cfg, batch_size, steps, device, dtype, compile, chunked_loss)
        sec = statistics.median(times)
        flops = 3.0 * batch_size * ModelShape.from_config(cfg.to_dict()).forward_flops(cfg.max_seq_len, cfg.max_seq_len)
        results.append(
            {
                "kind": kind,
                "device": device,
                "dtype": dtype,
                "batch_size": batch_size,
                "seq_len": cfg.max_seq_len,
                "parameters": sum(p.numel() for p in model.parameters()),
                "compile": compile,
                "chunked_loss": chunked_loss,
                "allocator": allocator_setting(),
                "threads": torch.get_num_threads(),
                "ms_per_step": sec * 1e3,
                "tokens_per_s": batch_size * cfg.max_seq_len / sec,
                "warmup_s": warmup,
                "flops_per_step": flops,
                "flops_per_s": flops / sec,
                "matmul_flops_per_s": rate,
                "matmul_fraction": flops / sec / rate,
                **usage,
                "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            }
        )
        del model
    return results
