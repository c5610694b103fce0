"""scripts/compare_runs.py, run as a maintainer runs it (a new process): equal runs pass, a changed
number or weight fails naming the file, while timings and paths are left aside."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_runs.py"


def _run_dir(root: Path, ppl: float, weight: float, wall_s: float, data: str) -> Path:
    (root / "results").mkdir(parents=True)
    record = {"metric": "ppl", "values": [ppl, 2 * ppl], "wall_s": wall_s, "created": f"2026-12-07T{int(wall_s)}"}
    (root / "results" / "ppl-rope-plain.json").write_text(json.dumps(record))
    (root / "reproduce.json").write_text(json.dumps({"notes": [f"Data: `{data}`"], "timings_s": {"train_s": wall_s}}))
    (root / "model").mkdir()
    save_file({"w": torch.full((2, 2), weight)}, str(root / "model" / "model.safetensors"), metadata={"format": "pt"})
    return root


def _compare(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(a), str(b)], capture_output=True, text=True, timeout=120)


def test_runs_that_differ_only_in_timings_and_paths_are_equal(tmp_path):
    a = _run_dir(tmp_path / "a", 146.835, 0.5, 11.0, "/tmp/base-cache/data")
    b = _run_dir(tmp_path / "b", 146.835, 0.5, 99.0, "/tmp/after-cache/data")
    done = _compare(a, b)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "compared 2 JSON files and 1 safetensors files: 0 differ" in done.stdout


def test_a_changed_number_or_weight_fails_naming_the_file(tmp_path):
    a = _run_dir(tmp_path / "a", 146.835, 0.5, 11.0, "/tmp/x")
    b = _run_dir(tmp_path / "b", 146.836, 0.5, 11.0, "/tmp/x")
    done = _compare(a, b)
    assert done.returncode == 1 and "ppl-rope-plain.json" in done.stdout and ".values[0]" in done.stdout
    c = _run_dir(tmp_path / "c", 146.835, 0.5000001, 11.0, "/tmp/x")
    done = _compare(a, c)
    assert done.returncode == 1 and "model.safetensors" in done.stdout and "\n    w" in done.stdout
