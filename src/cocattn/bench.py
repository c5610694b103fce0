"""Benchmarks: ``cocattn bench attention`` and ``cocattn bench train``.

Speed and memory targets live here, not in unit tests. Each measurement is forward + backward
(attention) or a full optimizer step (train), median of ``repeats`` after one warm-up.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` over the measured step; on CPU each
measurement runs in a fresh subprocess and reports the growth of its peak resident set size
(``ru_maxrss``) from just before the first step to after it, i.e. what the step itself needed on
top of its inputs.

Ops (attention, eager): the ATen operators one step dispatches that compute something (views
and bare allocations left out): about one kernel launch each on a GPU, where short sequences are
launch-bound. The same count on every device, so a CPU run shows what a GPU will launch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from cocattn._checks import check, check_choice

__all__ = ["AttentionCase", "bench_attention", "bench_train", "hardware_name", "format_table"]

ATTENTION_KINDS = ("rope", "coca", "coca-strict", "alibi", "nope", "coca-einsum")
"""``coca-einsum`` is the paper's released formulation (N×N scores), the reference to beat."""


def hardware_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


@dataclass
class AttentionCase:
    kind: str
    length: int
    batch: int = 1
    heads: int = 16
    kv_heads: int | None = None
    head_dim: int = 64
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 3
    backward: bool = True
    compile: bool = False


def _attention_fn(kind: str) -> Callable[..., torch.Tensor]:
    from cocattn.attention import functional as AF
    from cocattn.attention.reference import coca_slack_einsum

    return {
        "rope": lambda q, k, v: AF.rope_attention(q, k, v),
        "coca": lambda q, k, v: AF.coca_attention(q, k, v, variant="slack"),
        "coca-strict": lambda q, k, v: AF.coca_attention(q, k, v, variant="strict"),
        "alibi": lambda q, k, v: AF.alibi_attention(q, k, v),
        "nope": lambda q, k, v: AF.nope_attention(q, k, v),
        "coca-einsum": lambda q, k, v: coca_slack_einsum(q, k, v),
    }[kind]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


_NO_KERNEL = ("aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty", "aten::new_empty_strided",
              "aten::_unsafe_view", "aten::lift_fresh")


def count_ops(step: Callable[[], Any]) -> int:
    """ATen operators dispatched by ``step()`` that compute (see the module docstring)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not getattr(func, "is_view", False) and func.name() not in _NO_KERNEL:
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        step()
    return Count.n


def run_attention_case(case: AttentionCase) -> dict[str, Any]:
    """Time and peak memory of one case in this process (see module docstring)."""
    dtype = getattr(torch, case.dtype)
    kv = case.kv_heads or case.heads
    if not case.device.startswith("cuda") and case.length > 64:
        # Touch every code path once at a tiny size, so that the resident-set growth measured
        # below is data, not code pages and allocator arenas loaded on first use.
        run_attention_case(AttentionCase(**{**asdict(case), "length": 64, "repeats": 1}))
    from cocattn import rope as rope_module

    rope_module._TABLE_CACHE.clear()  # every kind builds its cos/sin tables in its own warm-up step
    gen = torch.Generator(device="cpu").manual_seed(0)

    def make(h):
        return torch.randn(case.batch, h, case.length, case.head_dim, generator=gen).to(case.device, dtype).requires_grad_(case.backward)

    q, k, v = make(case.heads), make(kv), make(kv)
    grad = torch.randn(case.batch, case.heads, case.length, case.head_dim, generator=gen).to(case.device, dtype)
    fn = _attention_fn(case.kind)
    if case.compile:
        fn = torch.compile(fn, dynamic=False)

    def step():
        out = fn(q, k, v)
        if case.backward:
            out.backward(grad)
            q.grad = k.grad = v.grad = None
        return out

    cuda = case.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        with torch.no_grad() if not case.backward else torch.enable_grad():
            step()  # warm-up, and the step whose peak memory is measured
            _sync(case.device)
            if cuda:
                peak = torch.cuda.max_memory_allocated() - base
            else:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
            times = []
            for _ in range(case.repeats):
                _sync(case.device)
                t0 = time.perf_counter()
                step()
                _sync(case.device)
                times.append(time.perf_counter() - t0)
            ops = None if case.compile else count_ops(step)
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
        if "out of memory" not in str(err).lower() and not isinstance(err, (torch.OutOfMemoryError, MemoryError)):
            raise
        del q, k, v, grad
        if cuda:
            torch.cuda.empty_cache()
        return {**asdict(case), "status": "oom", "ms": None, "peak_mib": None}
    result = {**asdict(case), "status": "ok", "ms": statistics.median(times) * 1e3, "peak_mib": max(peak, 0) / 2**20}
    return {**result, "ops": ops}


def _estimate_bytes(case: AttentionCase) -> int:
    """Rough peak of the N×N formulation (scores, probabilities and their grads, fp32)."""
    if case.kind != "coca-einsum":
        return 0
    return 4 * case.batch * case.heads * case.length**2 * 4


def _run_in_subprocess(case: AttentionCase, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "cocattn.bench", json.dumps(asdict(case))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**asdict(case), "status": "timeout", "ms": None, "peak_mib": None}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["killed"])[-1]
        status = "oom" if proc.returncode in (-9, 137) or "memory" in last.lower() else f"error: {last}"
        return {**asdict(case), "status": status, "ms": None, "peak_mib": None}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_attention(
    kinds: tuple[str, ...] = ATTENTION_KINDS,
    lengths: list[int] | None = None,
    *,
    batch: int = 1,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int = 64,
    dtype: str | None = None,
    device: str | None = None,
    repeats: int | None = None,
    backward: bool = True,
    memory_limit_gib: float | None = None,
    timeout: float = 600.0,
    progress: bool = True,
    compile: bool = False,
) -> list[dict[str, Any]]:
    """Forward+backward time and peak memory for every kind over ``lengths``.

    Defaults: CPU: N = 1K…16K, 4 heads, float32, median of 3; CUDA: N = 2K…128K, 16 heads,
    bfloat16, median of 10. On CPU, cases of the N×N reference that would not fit
    ``memory_limit_gib`` are reported as ``oom`` without running them; on CUDA every case is
    tried and a real out-of-memory error is recorded as ``oom``. ``compile``: each kind's
    function through ``torch.compile`` (what ``train.compile=true`` runs).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    for kind in kinds:
        check_choice("kinds", kind, ATTENTION_KINDS)
    lengths = lengths or ([2048 * 2**i for i in range(7)] if cuda else [1024 * 2**i for i in range(5)])
    check(all(isinstance(n, int) and n > 0 for n in lengths), "lengths", lengths, "positive integers")
    heads = heads or (16 if cuda else 4)
    dtype = dtype or ("bfloat16" if cuda else "float32")
    repeats = repeats or (10 if cuda else 3)
    check(isinstance(repeats, int) and repeats > 0, "repeats", repeats, "a positive integer")
    check_choice("dtype", dtype, ("float32", "bfloat16", "float16", "float64"))
    if memory_limit_gib is None:
        memory_limit_gib = float("inf") if cuda else _cpu_memory_gib() * 0.6
    from tqdm import tqdm

    cases = [AttentionCase(k, n, batch, heads, kv_heads, head_dim, dtype, device, repeats, backward, compile) for n in lengths for k in kinds]
    results = []
    for case in tqdm(cases, desc="bench attention", disable=not progress, unit="case"):
        if _estimate_bytes(case) > memory_limit_gib * 2**30:
            results.append({**asdict(case), "status": "oom (skipped: estimated > limit)", "ms": None, "peak_mib": None})
            continue
        results.append(_run_in_process(case) if cuda else _run_in_subprocess(case, timeout))
    return results


def _run_in_process(case: AttentionCase) -> dict[str, Any]:
    try:
        return run_attention_case(case)
    except Exception as err:  # one failing case (a compile error, say) must not lose the others
        first = (str(err).strip().splitlines() or [""])[0][:160]
        return {**asdict(case), "status": f"error: {type(err).__name__}: {first}", "ms": None, "peak_mib": None}


def _cpu_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 16.0


def bench_train(
    model_config: dict[str, Any],
    kinds: tuple[str, ...] = ("rope", "coca", "coca-strict", "alibi", "nope"),
    *,
    batch_size: int = 8,
    steps: int = 10,
    device: str | None = None,
    dtype: str | None = None,
    compile: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Training tokens/s and peak memory of one config for each attention kind (random tokens,
    AdamW, forward + backward + step; median step time after two warm-up steps)."""
    from cocattn.model import GPT, GPTConfig

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    dtype = dtype or ("bfloat16" if cuda else "float32")
    results = []
    from tqdm import tqdm

    for kind in tqdm(kinds, desc="bench train", disable=not progress):
        torch.manual_seed(0)
        cfg = GPTConfig.from_dict({**model_config, "attention": kind})
        model = GPT(cfg).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=cuda)
        fwd = torch.compile(model) if compile else model
        x = torch.randint(0, cfg.vocab_size, (batch_size, cfg.max_seq_len + 1), device=device)
        autocast = torch.autocast("cuda", dtype=getattr(torch, dtype)) if cuda and dtype != "float32" else torch.autocast("cpu", enabled=False)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(steps + 2):
            _sync(device)
            t0 = time.perf_counter()
            with autocast:
                _, loss = fwd(x[:, :-1], x[:, 1:])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            _sync(device)
            if i >= 2:
                times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        results.append({
            "kind": kind, "device": device, "dtype": dtype, "batch_size": batch_size, "seq_len": cfg.max_seq_len,
            "parameters": sum(p.numel() for p in model.parameters()),
            "ms_per_step": sec * 1e3, "tokens_per_s": batch_size * cfg.max_seq_len / sec,
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        })
        del model, opt
    return results


def format_table(rows: list[dict[str, Any]], baseline: str = "rope", by: str = "length") -> str:
    """Markdown table with each kind's time and memory, and ratios to ``baseline``."""
    if not rows:
        return "(no results)"
    if "tokens_per_s" in rows[0]:
        base = next((r for r in rows if r["kind"] == baseline), None)
        lines = ["| kind | ms/step | tokens/s | × " + baseline + " tokens/s | peak MiB |", "|---|---|---|---|---|"]
        for r in rows:
            ratio = r["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
            peak = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            lines.append(f"| {r['kind']} | {r['ms_per_step']:.1f} | {r['tokens_per_s']:.0f} | {ratio:.2f} | {peak} |")
        return "\n".join(lines)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    lengths = sorted({r[by] for r in rows})
    cell = {(r["kind"], r[by]): r for r in rows}
    with_ops = any(r.get("ops") is not None for r in rows)
    unit = " / ops" if with_ops else ""
    head = "| N | " + " | ".join(f"{k} ms (×{baseline}) / MiB (×){unit}" for k in kinds) + " |"
    lines = [head, "|" + "---|" * (len(kinds) + 1)]
    for n in lengths:
        base = cell.get((baseline, n))
        parts = []
        for k in kinds:
            r = cell.get((k, n))
            if r is None or r["ms"] is None:
                parts.append(r["status"] if r else "–")
                continue
            tr = r["ms"] / base["ms"] if base and base["ms"] else math.nan
            mr = r["peak_mib"] / base["peak_mib"] if base and base.get("peak_mib") else math.nan
            ops = "" if not with_ops else f" / {'–' if r.get('ops') is None else r['ops']}"
            parts.append(f"{r['ms']:.1f} (×{tr:.2f}) / {r['peak_mib']:.0f} (×{mr:.2f}){ops}")
        lines.append(f"| {n} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def write_results(path: str | Path, kind: str, rows: list[dict[str, Any]], command: str) -> None:
    from cocattn.io import write_json

    device = rows[0].get("device", "cpu") if rows else "cpu"
    write_json(Path(path), {
        "benchmark": kind, "command": command, "date": time.strftime("%Y-%m-%d"),
        "hardware": hardware_name(device), "torch": torch.__version__, "results": rows,
    })


if __name__ == "__main__":  # worker: one attention case, JSON on the last line of stdout
    result = run_attention_case(AttentionCase(**json.loads(sys.argv[1])))
    print(json.dumps(result))
