"""What a finished run reports (:class:`TrainResult`, also ``run_dir/train_result.json``), and the
figures of a run that had already finished when it was resumed."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cocattn import files
from cocattn.train.rundir import METRICS_FILE, RESULT_FILE


@dataclass
class TrainResult:
    """What a finished run reports (also written to ``run_dir/train_result.json``)."""

    run_dir: str
    model_dir: str
    steps: int
    tokens: int
    final_loss: float
    val_loss: float | None
    seconds: float
    tokens_per_s: float
    resumed_from: int | None
    world_size: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def finite_dict(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with NaN / inf floats as None (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def finished_run_figures(run_dir: Path, step: int, tokens_per_step: int) -> tuple[float, float | None, float, float]:
    """``(final_loss, val_loss, seconds, tokens_per_s)`` of a run that had reached ``step`` before
    this invocation: from its ``train_result.json`` when that describes ``step``, else from
    ``metrics.jsonl`` (the loss and validation loss logged at the last step; the training time
    summed over the logged windows, ``tokens / tok_per_s`` each, so restarts are not counted)."""
    recorded = _recorded_figures(run_dir / RESULT_FILE, step)
    if recorded is not None:
        return recorded
    path = run_dir / METRICS_FILE
    records = [r for r in files.read_jsonl(path) if int(r.get("step", 0)) <= step] if path.is_file() else []
    losses = [r for r in records if isinstance(r.get("loss"), (int, float))]
    vals = [r for r in records if isinstance(r.get("val_loss"), (int, float))]
    final_loss = float(losses[-1]["loss"]) if losses else float("nan")
    val_loss = float(vals[-1]["val_loss"]) if vals else None
    seconds, done, prev = 0.0, 0, 0
    for r in losses:
        rate = r.get("tok_per_s")
        if isinstance(rate, (int, float)) and rate > 0 and int(r["step"]) > prev:
            tokens = (int(r["step"]) - prev) * tokens_per_step
            seconds += tokens / rate
            done += tokens
        prev = int(r["step"])
    return final_loss, val_loss, seconds, (done / seconds if seconds > 0 else 0.0)


def _recorded_figures(previous: Path, step: int) -> tuple[float, float | None, float, float] | None:
    """The figures of ``train_result.json`` when it describes ``step`` with a throughput, else None."""
    if not previous.is_file():
        return None
    try:
        old = files.load_json(previous)
    except ValueError:
        return None
    if (
        isinstance(old, dict)
        and old.get("steps") == step
        and isinstance(old.get("final_loss"), (int, float))
        and isinstance(old.get("tokens_per_s"), (int, float))
        and old["tokens_per_s"] > 0
    ):
        return (
            float(old["final_loss"]),
            old.get("val_loss"),
            float(old.get("seconds") or 0.0),
            float(old["tokens_per_s"]),
        )
    return None
