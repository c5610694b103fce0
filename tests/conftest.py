"""Shared test fixtures."""

from __future__ import annotations

import email
import json
from pathlib import Path


def build_text_data(root: Path, vocab_size: int, **kwargs) -> Path:
    """A small real-text data directory built with `cocattn data`'s own builder: the modules of
    Python's json and email packages as documents (a few hundred KB of real text)."""
    from cocattn.data.build import build_dataset

    texts = root / "texts"
    texts.mkdir(parents=True)
    for package in (json, email):
        for file in sorted(Path(package.__file__).parent.glob("*.py")):
            (texts / f"{package.__name__}_{file.stem}.txt").write_text(file.read_text(encoding="utf-8"))
    out = root / "data"
    options = {"eval_documents": 0, "val_fraction": 0.2, **kwargs}
    build_dataset(
        preset="custom", sources=[f"text:{texts}"], out_dir=out, vocab_size=vocab_size, progress=False, **options
    )
    return out


# --- the reliability record (docs/RELIABILITY.md quotes it) ----------------------------------------
#
# Every run of the test suite writes, at its end, the outcome of each test in the reliability files
# below and their counts to $COCATTN_RELIABILITY_JSON (default runs/ci-reliability.json in the
# repository), with the date, commit, Python and torch versions. CI uploads it as an artifact;
# docs/RELIABILITY.md quotes this file, never hand-typed counts.

RELIABILITY_FILES = (
    "test_io.py",
    "test_reliability.py",
    "test_fuzz.py",
    "test_bad_inputs.py",
    "test_hostile_inputs.py",
    "test_hf_subprocess.py",
    "test_train.py",
    "test_data_build.py",
    "test_checkpoint.py",
    "test_reproduce.py",
)
_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report):
    if report.nodeid.split("::")[0].rsplit("/", 1)[-1] not in RELIABILITY_FILES:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _OUTCOMES[report.nodeid] = report.outcome


def pytest_sessionfinish(session, exitstatus):
    import datetime
    import os
    import platform
    import subprocess

    if not _OUTCOMES:
        return
    root = Path(__file__).resolve().parents[1]
    path = Path(os.environ.get("COCATTN_RELIABILITY_JSON", root / "runs" / "ci-reliability.json"))
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
            ).stdout.strip()
            or None
        )
    except OSError:
        commit = None
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    per_file: dict[str, dict[str, int]] = {}
    for nodeid, outcome in _OUTCOMES.items():
        counts = per_file.setdefault(nodeid.split("::")[0], {"passed": 0, "failed": 0, "skipped": 0})
        counts[outcome] = counts.get(outcome, 0) + 1
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "python": platform.python_version(),
        "torch": torch_version,
        "cpu": platform.processor() or platform.machine(),
        "exit_status": int(exitstatus),
        "totals": {k: sum(c.get(k, 0) for c in per_file.values()) for k in ("passed", "failed", "skipped")},
        "per_file": per_file,
        "tests": dict(sorted(_OUTCOMES.items())),
    }
    kills = os.environ.get("COCATTN_KILL_RECORD")
    if kills and Path(kills).is_file():
        record["kill_record"] = json.loads(Path(kills).read_text())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only checkout: the run itself is what counts
