"""The allocator setting of cocattn's processes (``cocattn._malloc``): with it, a
step's large blocks are reused instead of mapped and unmapped, so repeating an allocation costs
no page faults; ``COCATTN_MALLOC=default`` leaves glibc as it is. Each case runs in a fresh process,
since the setting is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cocattn._malloc import _libc

SCRIPT = """
import json, resource, sys
from cocattn._malloc import keep_freed_memory, allocator_setting
import torch
applied = keep_freed_memory() if sys.argv[1] == "cocattn" else allocator_setting()
torch.empty(16 * 2**20).fill_(1.0)  # 64 MiB, the tiny-cpu logits' size; first touch not counted
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(16 * 2**20).fill_(1.0)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _run(mode: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_libc() is None, reason="glibc only")
def test_kept_memory_makes_repeated_large_blocks_fault_free():
    """Guarantee: with cocattn's setting, ten 64 MiB blocks allocated and freed one after the other
    cost no page faults each (at most one more block's first touch), where glibc's default maps and faults in each one afresh."""
    default = _run("plain", {})
    kept = _run("cocattn", {})
    opted_out = _run("cocattn", {"COCATTN_MALLOC": "default"})
    assert (default["applied"], kept["applied"], opted_out["applied"]) == ("default", "keep", "default")
    assert default["faults"] > 10 * 16_000  # ten blocks of 16,384 pages each, faulted in afresh
    assert opted_out["faults"] > 10 * 16_000
    # the heap may grow by a block once more (a small allocation landing in the freed space), never per block
    assert kept["faults"] < 2 * 16_384 + 1_000
