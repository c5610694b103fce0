"""The README's Python examples run as printed, and do what their comments say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
RUNNABLE = [b for b in BLOCKS if "path/to" not in b]  # a placeholder path: shown, not runnable here


def test_the_readme_has_runnable_examples():
    assert len(RUNNABLE) >= 3 and len(BLOCKS) - len(RUNNABLE) <= 1


@pytest.mark.parametrize("block", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_example_runs(block):
    torch.manual_seed(0)
    scope: dict = {}
    exec(compile(block, str(README), "exec"), scope)
    if "step_out" in scope:  # the decoding example: the cached step equals the full forward's last row
        full = scope["attn"](scope["x"])
        torch.testing.assert_close(scope["step_out"][:, -1], full[:, -1], rtol=1e-4, atol=1e-5)
    if "out" in scope and "model" in scope:  # the model example: 32 new tokens after the prompt
        assert scope["out"].shape == (1, 100 + 32)
