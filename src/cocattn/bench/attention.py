"""``cocattn bench attention``: forward + backward time, peak memory and compute ops per attention
kind and length, each case in a fresh CPU subprocess or, on a GPU, the kinds of one length timed in
interleaved rounds. Run as ``python -m cocattn.bench.attention CASE_JSON``: one case, JSON on the
last line of stdout."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from cocattn._checks import check, check_choice
from cocattn.attention.kinds import KINDS
from cocattn.bench.measure import count_ops, cpu_memory_gib, cpu_peak, cpu_peak_reset, sync

__all__ = ["ATTENTION_KINDS", "AttentionCase", "bench_attention", "run_attention_case", "run_length_interleaved"]

ATTENTION_KINDS = (*KINDS, "coca-einsum")
"""``coca-einsum`` is the paper's released formulation (N×N scores), the reference to beat."""


@dataclass
class AttentionCase:
    """One measurement: a kind at a length, its tensors' shapes (``q [batch, heads, length,
    head_dim]``, ``k`` and ``v`` with ``kv_heads``, default ``heads``), dtype and device, the timed
    steps, forward + backward or forward only, eager or through ``torch.compile``."""

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
    """The function of ``kind`` called as ``fn(q, k, v)`` with its defaults (causal, no scaling)."""
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


class _Prepared:
    """One attention case set up and stepped once: its inputs, its ``step()``, the peak memory of
    that first step and the ops one step dispatches; or ``failed`` (an ``oom`` row).

    Peak memory is what the step needed on top of its inputs: on CUDA ``max_memory_allocated``
    over the step; on CPU the growth of the peak resident set over it, which is honest only for a
    process that runs this one case (:func:`run_attention_case` in a fresh subprocess)."""

    def __init__(self, case: AttentionCase, measure_peak: bool = True):
        self.case = case
        self.failed: dict[str, Any] | None = None
        self.peak: int | None = None
        self.ops: int | None = None
        self.q: torch.Tensor | None = None
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.grad: torch.Tensor | None = None
        self.times: list[float] = []
        dtype = getattr(torch, case.dtype)
        kv = case.kv_heads or case.heads
        from cocattn.attention.backends import clear_caches

        clear_caches()  # every kind builds its cos/sin tables (and block masks) in its own first step
        gen = torch.Generator(device="cpu").manual_seed(0)

        def make(h: int) -> torch.Tensor:
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
                base = cpu_peak_reset()
            self.step()  # warm-up, and the step whose peak memory is measured
            sync(case.device)
            if measure_peak:
                top = torch.cuda.max_memory_allocated() if cuda else cpu_peak()
                self.peak = top - base
            self.ops = None if case.compile else count_ops(self.step)
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as err:
            if "out of memory" not in str(err).lower() and not isinstance(err, (torch.OutOfMemoryError, MemoryError)):
                raise
            self.release()
            self.failed = {**asdict(case), "status": "oom", "ms": None, "peak_mib": None}

    def step(self) -> torch.Tensor:
        q, k, v = self.q, self.k, self.v
        assert q is not None and k is not None and v is not None, "stepped after release()"
        with torch.no_grad() if not self.case.backward else torch.enable_grad():
            out = self.fn(q, k, v)
            if self.case.backward:
                out.backward(self.grad)
                q.grad = k.grad = v.grad = None
        return out

    def timed_step(self) -> None:
        sync(self.case.device)
        t0 = time.perf_counter()
        self.step()
        sync(self.case.device)
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
    """Time, peak memory and ops of one case in this process: ``case.repeats`` timed steps after
    one untimed step (on CPU, and longer than 64 tokens, after the same case at 64 tokens, so that
    the resident-set growth is data, not code pages loaded on first use).

    Returns:
        dict[str, Any]: the case's fields and ``status`` (``"ok"`` or ``"oom"``), ``ms`` (median
        step), ``peak_mib``, ``ops`` (``None`` when compiled), ``samples``, ``ms_iqr``
        (``[q1, q3]``); a failed case has ``ms`` and ``peak_mib`` ``None``.
    """
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
    ``warmup`` untimed steps. Peak memory and ops come from each kind's first step.

    Returns:
        list[dict[str, Any]]: one row per case, in the order of ``cases``, as
        :func:`run_attention_case` gives them.
    """
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
    """Forward+backward time, peak memory and compute ops for every kind over ``lengths``.

    Defaults: CPU: N = 1K…16K, 4 heads, float32, median of 3; CUDA: N = 2K…128K, 16 heads,
    bfloat16, median of at least 10. On CPU, N×N reference cases that would not fit
    ``memory_limit_gib`` are reported as ``oom`` unrun; on CUDA a real out-of-memory error is.
    ``compile``: each kind's function through ``torch.compile`` (what ``train.compile=true`` runs).
    ``interleave`` (default on CUDA): the kinds of one length are timed in rounds in one process
    (:func:`run_length_interleaved`), each for at least ``repeats`` steps and ``min_time`` seconds
    (default 0.25 s on CUDA), so that ratios at short, launch-bound lengths are not drift between
    runs; otherwise (default on CPU) each case runs alone in a fresh subprocess, which the
    resident-set peak needs.

    Returns:
        list[dict[str, Any]]: one row per kind and length (lengths outer, kinds in the given order)
        as :func:`run_attention_case` gives them, ``ops`` as :func:`~cocattn.bench.measure.count_ops`
        counts them; a case not measured has ``ms`` ``None`` and its reason in ``status``.
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
        memory_limit_gib = float("inf") if cuda else cpu_memory_gib() * 0.6
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


if __name__ == "__main__":  # worker: one attention case, JSON on the last line of stdout
    result = run_attention_case(AttentionCase(**json.loads(sys.argv[1])))
    print(json.dumps(result))
