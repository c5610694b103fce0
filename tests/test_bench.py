"""`cocattn bench attention|train`: what they measure and report (not how fast anything is)."""

from __future__ import annotations

import pytest
import torch

from cocattn.attention import functional as AF
from cocattn.bench.attention import bench_attention
from cocattn.bench.measure import count_ops
from cocattn.bench.results import format_table
from cocattn.bench.train import bench_train


def _step(fn, n=64, heads=4, d=64, dtype=torch.bfloat16):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, heads, n, d, generator=gen).to(dtype).requires_grad_() for _ in range(3))

    def step():
        fn(q, k, v).sum().backward()

    step()  # caches filled, as in a training step after the first
    return step


def test_count_ops_counts_compute_not_views():
    x = torch.randn(4, 8)
    assert count_ops(lambda: x[:, :4].unsqueeze(0).transpose(0, 1)) == 0  # views only
    assert count_ops(lambda: (x * 2 + 1).relu()) == 3


@pytest.mark.parametrize("variant", ["slack", "strict"])
def test_coca_launches_no_more_ops_than_rope(variant):
    """Short sequences on a GPU are launch-bound: CoCA's forward+backward must not dispatch more
    compute ops (≈ kernel launches) than vanilla RoPE's."""
    coca = count_ops(_step(lambda q, k, v: AF.coca_attention(q, k, v, variant=variant)))
    rope = count_ops(_step(lambda q, k, v: AF.rope_attention(q, k, v)))
    assert coca <= rope, (coca, rope)


def test_bench_attention_reports_time_memory_and_ops_per_kind():
    rows = bench_attention(("rope", "coca"), [64], heads=2, repeats=1, progress=False)
    assert [(r["kind"], r["status"]) for r in rows] == [("rope", "ok"), ("coca", "ok")]
    for r in rows:
        assert r["ms"] > 0 and r["peak_mib"] >= 0 and r["ops"] > 0
    table = format_table(rows)
    assert "rope ms (×rope) / MiB (×) / ops" in table and "| 64 |" in table


def test_bench_attention_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="kinds.*flash"):
        bench_attention(("flash",), [64], progress=False)


def test_interleaved_timing_gives_every_kind_its_steps_and_time():
    """The GPU default: the kinds of one length are timed in rounds in one process. Each kind gets
    at least ``repeats`` steps and ``min_time`` seconds of them; rows keep the requested order."""
    rows = bench_attention(
        ("coca", "rope", "coca-strict"), [32, 96], heads=2, repeats=4, min_time=0.02, interleave=True, progress=False
    )
    assert [(r["kind"], r["length"]) for r in rows] == [
        ("coca", 32),
        ("rope", 32),
        ("coca-strict", 32),
        ("coca", 96),
        ("rope", 96),
        ("coca-strict", 96),
    ]
    for r in rows:
        assert r["status"] == "ok" and r["ops"] > 0
        assert r["samples"] >= 4 and r["samples"] * r["ms_iqr"][1] / 1e3 >= 0.02 * 0.5
        assert r["ms_iqr"][0] <= r["ms"] <= r["ms_iqr"][1]
        assert r["peak_mib"] is None  # one process for several CPU cases: no honest resident-set peak
    for n in (32, 96):  # whole rounds: every kind of a length is stepped equally often
        assert len({r["samples"] for r in rows if r["length"] == n}) == 1
    assert "– / " in format_table(rows)


_PEAK_SCRIPT = r"""
import json, sys, torch
import cocattn.bench.attention as B
extra = int(sys.argv[1])
def fn(q, k, v):
    if extra:
        block = torch.ones(extra // 4)  # float32, every page written
        q = q + block[:1].sum()
    return q * 1.0
B._attention_fn = lambda kind: fn
prepared = B._Prepared(B.AttentionCase(kind="rope", length=8, heads=1, head_dim=8, backward=False, repeats=1))
print(json.dumps({"peak": prepared.peak}))
"""


def test_cpu_peak_memory_measures_a_known_allocation():
    """The measurement behind every memory ratio (`peak_mib`) checked against a known allocation.
    On CPU each case runs in a fresh process and reports the growth of its peak resident set over
    the step (VmHWM reset first): a step that writes a 64 MiB tensor must report 64 MiB more than
    the same step without it, within 4 MiB (6%: RSS is page-granular and the step's own
    temporaries and allocator arenas vary between the two processes; measured excess 2.0 MiB on a
    2-core CPU)."""
    import json
    import os
    import subprocess
    import sys

    def peak(extra: int) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, str(extra)],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])["peak"]

    size = 64 * 2**20
    base, grown = peak(0), peak(size)
    assert abs((grown - base) - size) <= 4 * 2**20, (base, grown)


def test_bench_train_reports_throughput_faults_system_time_and_flops_as_json():
    """`cocattn bench train` rows carry tokens/s, minor page faults per step, the
    system-time share, the model FLOP/s against the machine's measured matmul rate and the
    allocator setting, all finite numbers that JSON records."""
    import json
    import math

    model = {"vocab_size": 256, "n_layer": 1, "n_head": 2, "n_embd": 32, "max_seq_len": 32}
    rows = bench_train(model, ("rope", "coca"), batch_size=2, steps=2, device="cpu", progress=False)
    chunked = bench_train(model, ("rope",), batch_size=2, steps=2, device="cpu", chunked_loss=True, progress=False)
    assert [r["kind"] for r in rows + chunked] == ["rope", "coca", "rope"] and chunked[0]["chunked_loss"]
    for r in rows + chunked:
        for key in ("tokens_per_s", "flops_per_s", "matmul_flops_per_s", "matmul_fraction", "page_faults_per_step"):
            assert math.isfinite(r[key]) and r[key] >= 0, key
        assert r["tokens_per_s"] > 0 and r["matmul_flops_per_s"] > 1e8
        assert 0.0 <= r["system_time_share"] <= 1.0
        assert r["flops_per_s"] == pytest.approx(r["flops_per_step"] * r["tokens_per_s"] / (2 * 32))
        assert r["allocator"] in ("default", "keep", "unavailable")
    json.dumps(rows, allow_nan=False)
    assert "faults/step" in format_table(rows)
