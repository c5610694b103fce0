"""Backend choice and caches of the attention functions live in ``cocattn.attention.backends``:
set in code or for a block, from an environment variable read (and checked) there only, every
cache emptied by one ``clear_caches()``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cocattn.attention import backends, coca_attention, rope_attention
from cocattn.rope import arange_tables, inv_freq_and_scaling, rope_parameters

SRC = Path(__file__).resolve().parents[1] / "src" / "cocattn"


def test_use_backends_sets_for_a_block_and_restores():
    before = backends.feature_backend(), backends.alibi_backend()
    with backends.use_backends(features="triton", alibi="sdpa"):
        assert (backends.feature_backend(), backends.alibi_backend()) == ("triton", "sdpa")
        with backends.use_backends(alibi="flex"):
            assert (backends.feature_backend(), backends.alibi_backend()) == ("triton", "flex")
        assert backends.alibi_backend() == "sdpa"
    assert (backends.feature_backend(), backends.alibi_backend()) == before
    with pytest.raises(RuntimeError), backends.use_backends(alibi="sdpa"):
        raise RuntimeError("inside the block")
    assert backends.alibi_backend() == before[1]


def test_unknown_backends_are_refused_before_anything_changes():
    before = backends.feature_backend(), backends.alibi_backend()
    with pytest.raises(ValueError, match="backend='cuda'.*'torch', 'triton'"):
        with backends.use_backends(features="cuda"):
            pass
    with pytest.raises(ValueError, match="backend='flash'"):
        backends.set_alibi_backend("flash")
    assert (backends.feature_backend(), backends.alibi_backend()) == before


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=300)


def test_environment_variables_are_read_and_checked_in_a_new_process():
    code = "from cocattn.attention import backends as B; print(B.feature_backend(), B.alibi_backend())"
    ok = _run(code, COCATTN_FEATURES="triton", COCATTN_ALIBI="sdpa")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["triton", "sdpa"]
    code = "import torch; from cocattn.attention import coca_attention; x = torch.randn(1, 1, 4, 8); coca_attention(x, x, x)"
    bad = _run(code, COCATTN_FEATURES="fast")
    assert bad.returncode != 0
    assert "COCATTN_FEATURES='fast' is not valid: expected one of ('torch', 'triton')" in bad.stderr


def test_triton_kernels_take_cpu_tensors_only_when_built_for_the_interpreter():
    """Triton reads TRITON_INTERPRET when the kernels are defined (on import): setting it later
    must not send CPU tensors to compiled kernels (it did, and failed with "0 active drivers");
    they take the PyTorch path."""
    pytest.importorskip("triton", reason="Triton is not installed")
    code = (
        "import os, torch\n"
        "from cocattn.attention import backends, coca_attention, triton_features\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "x = torch.randn(1, 2, 4, 8, generator=torch.Generator().manual_seed(0))\n"
        "with backends.use_backends(features='triton'):\n"
        "    fused = coca_attention(x, x, x)\n"
        "print(triton_features.available(x), torch.equal(fused, coca_attention(x, x, x)))\n"
    )
    res = _run(code, TRITON_INTERPRET="0")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]


def test_clear_caches_rebuilds_identical_tables():
    inv_freq, scaling = inv_freq_and_scaling(rope_parameters(None), 16, None)
    first = arange_tables(32, inv_freq, scaling, torch.float32, "cpu")[0]
    assert arange_tables(32, inv_freq, scaling, torch.float32, "cpu")[0].data_ptr() == first.data_ptr()  # cached
    q, t, v = (torch.randn(1, 2, 32, 16, generator=torch.Generator().manual_seed(i)) for i in range(3))
    outs = [coca_attention(q, t, v), rope_attention(q, t, v)]
    backends.clear_caches()
    again = arange_tables(32, inv_freq, scaling, torch.float32, "cpu")[0]
    assert again.data_ptr() != first.data_ptr() and torch.equal(again, first)
    assert torch.equal(coca_attention(q, t, v), outs[0]) and torch.equal(rope_attention(q, t, v), outs[1])


def test_no_module_state_is_set_from_the_environment_outside_backends():
    """Module-level code (outside functions) never reads os.environ / os.getenv, except in
    attention/backends.py: a backend is never fixed at import."""

    def run_at_import(body):  # statements executed on import: module and class bodies, not functions
        for stmt in body:
            if isinstance(stmt, ast.ClassDef):
                yield from run_at_import(stmt.body)
            elif not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield stmt

    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "attention" / "backends.py":
            continue
        for stmt in run_at_import(ast.parse(path.read_text(encoding="utf-8")).body):
            for node in ast.walk(stmt):
                if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, offenders
