"""Benchmarks: ``cocattn bench attention`` and ``cocattn bench train``.

Speed and memory targets live here, not in unit tests. Each measurement is forward + backward
(attention) or a full optimizer step (train): the median of ``repeats`` timed steps after warm-up.
On a GPU the attention kinds of one length are timed in interleaved rounds (at least ``repeats``
steps and 0.25 s each; the JSON keeps the interquartile range), so that ratios at short,
launch-bound lengths compare kinds, not drift.

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
from cocattn.attention.kinds import KINDS

__all__ = ["AttentionCase", "bench_attention", "bench_train", "hardware_name", "format_table"]

ATTENTION_KINDS = (*KINDS, "coca-einsum")
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


_NO_KERNEL = (
    "aten::empty",
    "aten::empty_like",
    "aten::empty_strided",
    "aten::new_empty",
    "aten::new_empty_strided",
    "aten::_unsafe_view",
    "aten::lift_fresh",
)


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


def _proc_status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def _cpu_peak_reset() -> int:
    """Start a CPU peak measurement; returns the baseline. On Linux the peak resident set (VmHWM)
    is reset to the current one (``/proc/self/clear_refs``), so the baseline is the resident set
    now; elsewhere the baseline is the peak so far (``ru_maxrss``), which under-reports a step by
    the gap between an earlier peak and the resident set at its start (issue 14 measured ~6 MiB)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        rss = _proc_status_bytes("VmRSS")
        if rss is not None:
            return rss
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_peak() -> int:
    """The peak resident set since :func:`_cpu_peak_reset`."""
    peak = _proc_status_bytes("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Prepared:
    """One attention case set up and stepped once: its inputs, its ``step()``, the peak memory of
    that first step and the ops one step dispatches; or ``failed`` (an ``oom`` row)."""

    def __init__(self, case: AttentionCase, measure_peak: bool = True):
        self.case = case
        self.failed: dict[str, Any] | None = None
        self.peak = self.ops = self.q = self.k = self.v = self.grad = None
        self.times: list[float] = []
        dtype = getattr(torch, case.dtype)
        kv = case.kv_heads or case.heads
        from cocattn.attention.backends import clear_caches

        clear_caches()  # every kind builds its cos/sin tables (and block masks) in its own first step
        gen = torch.Generator(device="cpu").manual_seed(0)

        def make(h):
            x = torch.randn(case.batch, h, case.length, case.head_dim, generator=gen).to(case.device, dtype)
            return x.requires_grad_(case.backward)

        fn = _attention_fn(case.kind)
        self.fn = torch.compile(fn, dynamic=False) if case.compile else fn
        cuda = case.device.startswith("cuda")
        try:
            self.q, self.k, self.v = make(case.heads), make(kv), make(kv)
            self.grad = torch.randn(case.batch, case.heads, case.length, case.head_dim, generator=gen).to(
                case.device, dtype
            )
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            else:
                base = _cpu_peak_reset()
            self.step()  # warm-up, and the step whose peak memory is measured
            _sync(case.device)
            if measure_peak:
                top = torch.cuda.max_memory_allocated() if cuda else _cpu_peak()
                self.peak = top - base
            self.ops = None if case.compile else count_ops(self.step)
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
            if "out of memory" not in str(err).lower() and not isinstance(err, (torch.OutOfMemoryError, MemoryError)):
                raise
            self.release()
            self.failed = {**asdict(case), "status": "oom", "ms": None, "peak_mib": None}

    def step(self):
        with torch.no_grad() if not self.case.backward else torch.enable_grad():
            out = self.fn(self.q, self.k, self.v)
            if self.case.backward:
                out.backward(self.grad)
                self.q.grad = self.k.grad = self.v.grad = None
        return out

    def timed_step(self) -> None:
        _sync(self.case.device)
        t0 = time.perf_counter()
        self.step()
        _sync(self.case.device)
        self.times.append(time.perf_counter() - t0)

    def release(self) -> None:
        self.q = self.k = self.v = self.grad = None
        if self.case.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def row(self) -> dict[str, Any]:
        if self.failed is not None:
            return self.failed
        t = sorted(self.times)
        q1, q3 = statistics.quantiles(t, n=4)[::2] if len(t) > 1 else (t[0], t[0])
        peak = None if self.peak is None else max(self.peak, 0) / 2**20
        return {
            **asdict(self.case),
            "status": "ok",
            "ms": statistics.median(t) * 1e3,
            "peak_mib": peak,
            "ops": self.ops,
            "samples": len(t),
            "ms_iqr": [q1 * 1e3, q3 * 1e3],
        }


def run_attention_case(case: AttentionCase) -> dict[str, Any]:
    """Time and peak memory of one case in this process (see module docstring)."""
    if not case.device.startswith("cuda") and case.length > 64:
        # Touch every code path once at a tiny size, so that the resident-set growth measured
        # below is data, not code pages and allocator arenas loaded on first use.
        run_attention_case(AttentionCase(**{**asdict(case), "length": 64, "repeats": 1}))
    prepared = _Prepared(case)
    if prepared.failed is None:
        for _ in range(case.repeats):
            prepared.timed_step()
    return prepared.row()


def run_length_interleaved(
    cases: list[AttentionCase], *, warmup: int = 3, min_time: float = 0.0
) -> list[dict[str, Any]]:
    """Every kind of one length, timed in rounds: each round steps every kind once, starting one
    kind later than the round before, so that clock and thermal drift and the launch queue's state
    fall on every kind alike and the ratios between kinds are what the timings compare. Each case
    gets at least ``repeats`` timed steps and at least ``min_time`` seconds of them, after
    ``warmup`` untimed steps. Peak memory and ops come from each kind's first step."""
    # a resident-set peak says nothing about one case among several in a process: CUDA only
    prepared = [_Prepared(case, measure_peak=case.device.startswith("cuda")) for case in cases]
    live = [p for p in prepared if p.failed is None]
    for p in live:
        for _ in range(warmup):
            p.step()
    rounds = 0
    while live:
        for i in range(len(live)):
            live[(i + rounds) % len(live)].timed_step()
        rounds += 1
        if all(len(p.times) >= p.case.repeats and sum(p.times) >= min_time for p in live):
            break
    rows = [p.row() for p in prepared]
    for p in prepared:
        p.release()
    return rows


def _estimate_bytes(case: AttentionCase) -> int:
    """Rough peak of the N×N formulation (scores, probabilities and their grads, fp32)."""
    if case.kind != "coca-einsum":
        return 0
    return 4 * case.batch * case.heads * case.length**2 * 4


def _run_in_subprocess(case: AttentionCase, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "cocattn.bench.attention", json.dumps(asdict(case))]
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
    interleave: bool | None = None,
    min_time: float | None = None,
) -> list[dict[str, Any]]:
    """Forward+backward time and peak memory for every kind over ``lengths``.

    Defaults: CPU: N = 1K…16K, 4 heads, float32, median of 3; CUDA: N = 2K…128K, 16 heads,
    bfloat16, median of at least 10. On CPU, cases of the N×N reference that would not fit
    ``memory_limit_gib`` are reported as ``oom`` without running them; on CUDA every case is
    tried and a real out-of-memory error is recorded as ``oom``. ``compile``: each kind's
    function through ``torch.compile`` (what ``train.compile=true`` runs).

    ``interleave`` (default on CUDA): the kinds of one length run in one process and are timed in
    rounds (:func:`run_length_interleaved`), each for at least ``repeats`` steps and ``min_time``
    seconds (default 0.25 s on CUDA), so that the ratios at short, launch-bound lengths are not
    drift between one kind's run and the next. Otherwise (default on CPU) each case runs alone in
    a fresh subprocess, which the resident-set peak needs.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    interleave = cuda if interleave is None else interleave
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

    if min_time is None:
        min_time = 0.25 if cuda else 0.0
    cases = [
        AttentionCase(k, n, batch, heads, kv_heads, head_dim, dtype, device, repeats, backward, compile)
        for n in lengths
        for k in kinds
    ]
    results = []
    with tqdm(total=len(cases), desc="bench attention", disable=not progress, unit="case") as bar:
        for n in lengths:
            todo = []
            for case in (c for c in cases if c.length == n):
                if _estimate_bytes(case) > memory_limit_gib * 2**30:
                    results.append(
                        {**asdict(case), "status": "oom (skipped: estimated > limit)", "ms": None, "peak_mib": None}
                    )
                elif interleave:
                    todo.append(case)
                else:
                    results.append(_run_in_subprocess(case, timeout))
                    bar.update()
            if todo:
                results.extend(_run_in_process(todo, min_time))
            bar.update(len(todo))
    order = {(c.kind, c.length): i for i, c in enumerate(cases)}
    return sorted(results, key=lambda r: order[(r["kind"], r["length"])])


def _error_row(case: AttentionCase, err: Exception) -> dict[str, Any]:
    first = (str(err).strip().splitlines() or [""])[0][:160]
    return {**asdict(case), "status": f"error: {type(err).__name__}: {first}", "ms": None, "peak_mib": None}


def _run_in_process(cases: list[AttentionCase], min_time: float) -> list[dict[str, Any]]:
    try:
        return run_length_interleaved(cases, min_time=min_time)
    except Exception:  # one failing case (a compile error, say) must not lose the others: one at a time
        rows = []
        for case in cases:
            try:
                rows.append(run_length_interleaved([case], min_time=min_time)[0])
            except Exception as err:
                rows.append(_error_row(case, err))
        return rows


def _cpu_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return 16.0


def matmul_rate(device: str = "cpu", n: int = 1024, repeats: int = 5) -> float:
    """The machine's measured float32 matrix-product rate (FLOP/s): the best of ``repeats``
    [n, n] @ [n, n] products with this process's threads, the yardstick of ``bench train``'s
    FLOP/s (on a GPU, ``n`` = 4096)."""
    n = 4096 if device.startswith("cuda") else n
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):  # the first one warms up
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


class _Usage:
    """CPU time, system time and minor page faults of this process over a stretch of steps."""

    def __init__(self) -> None:
        self.start = resource.getrusage(resource.RUSAGE_SELF)

    def per_step(self, steps: int) -> dict[str, float]:
        end = resource.getrusage(resource.RUSAGE_SELF)
        user, system = end.ru_utime - self.start.ru_utime, end.ru_stime - self.start.ru_stime
        return {
            "page_faults_per_step": (end.ru_minflt - self.start.ru_minflt) / steps,
            "cpu_ms_per_step": 1e3 * (user + system) / steps,
            "system_time_share": system / (user + system) if user + system > 0 else 0.0,
        }


def _train_steps(model, cfg, batch_size: int, steps: int, device: str, dtype: str, compile: bool, chunked: bool):
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
    times, warmup, usage = [], 0.0, _Usage()
    for i in range(steps + 2):
        if i == 2:
            usage = _Usage()
        _sync(device)
        t0 = time.perf_counter()
        with autocast:
            _, loss = fwd(x[:, :-1], x[:, 1:], return_logits=not chunked)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
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
    """Training tokens/s and peak memory of one config for each attention kind (random tokens,
    AdamW, forward + backward + step; median step time after two warm-up steps, whose time,
    compilation included, is ``warmup_s``). Each row also has the model FLOP/s (the count of
    ``cocattn reproduce --plan``) against the machine's measured matmul rate, the minor page
    faults per step, the CPU time per step and the system-time share of the timed steps, and the
    allocator setting in force (:mod:`cocattn._malloc`)."""
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


def format_table(rows: list[dict[str, Any]], baseline: str = "rope", by: str = "length") -> str:
    """Markdown table with each kind's time and memory, and ratios to ``baseline``."""
    if not rows:
        return "(no results)"
    if "tokens_per_s" in rows[0]:
        base = next((r for r in rows if r["kind"] == baseline), None)
        return _train_table(rows, base, baseline)
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
            mr = (
                r["peak_mib"] / base["peak_mib"]
                if base and base.get("peak_mib") and r["peak_mib"] is not None
                else math.nan
            )
            mem = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} (×{mr:.2f})"
            ops = "" if not with_ops else f" / {'–' if r.get('ops') is None else r['ops']}"
            parts.append(f"{r['ms']:.1f} (×{tr:.2f}) / {mem}{ops}")
        lines.append(f"| {n} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def _train_table(rows: list[dict[str, Any]], base: dict[str, Any] | None, baseline: str) -> str:
    lines = [
        f"| kind | ms/step | tokens/s | × {baseline} tokens/s | GFLOP/s (of matmul) | faults/step | system time | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
        peak = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        flops = f"{r['flops_per_s'] / 1e9:.1f} ({r['matmul_fraction']:.0%})" if "flops_per_s" in r else "–"
        faults = f"{r['page_faults_per_step']:,.0f}" if "page_faults_per_step" in r else "–"
        system = f"{r['system_time_share']:.1%}" if "system_time_share" in r else "–"
        lines.append(
            f"| {r['kind']} | {r['ms_per_step']:.1f} | {r['tokens_per_s']:.0f} | {ratio:.2f} | {flops} | {faults} | "
            f"{system} | {peak} |"
        )
    return "\n".join(lines)


def write_results(path: str | Path, kind: str, rows: list[dict[str, Any]], command: str) -> None:
    from cocattn.files import write_json

    device = rows[0].get("device", "cpu") if rows else "cpu"
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # `--out newdir/x.json` (checked writable up front)
    write_json(
        Path(path),
        {
            "benchmark": kind,
            "command": command,
            "date": time.strftime("%Y-%m-%d"),
            "hardware": hardware_name(device),
            "torch": torch.__version__,
            "results": rows,
        },
    )


if __name__ == "__main__":  # worker: one attention case, JSON on the last line of stdout
    result = run_attention_case(AttentionCase(**json.loads(sys.argv[1])))
    print(json.dumps(result))
