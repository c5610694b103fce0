"""Training throughput: tokens/s of a configuration, measured by a short run."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from cocattn import files
from cocattn._checks import check
from cocattn.config import RunConfig, load_config
from cocattn.train.loop import train
from cocattn.train.rundir import METRICS_FILE


def train_throughput(
    config: RunConfig | str | os.PathLike | dict,
    steps: int = 10,
    data_dir: str | os.PathLike | None = None,
    warmup_steps: int = 2,
) -> float:
    """Training tokens/s of ``config`` measured over ``steps`` steps (after ``warmup_steps``), in a
    temporary run directory that is removed afterwards."""
    check(steps >= 1, "steps", steps, "an integer >= 1")
    run = config if isinstance(config, RunConfig) else load_config(config)
    total = steps + warmup_steps
    times: list[float] = []
    train_cfg = dataclasses.replace(
        run.train,
        steps=total,
        warmup=min(run.train.warmup, total),
        eval_interval=0,
        checkpoint_interval=0,
        log_interval=1,
        progress=False,
    )
    run = dataclasses.replace(run, train=train_cfg)
    with tempfile.TemporaryDirectory() as tmp:
        train(run, Path(tmp) / "run", data_dir=data_dir)
        for record in files.read_jsonl(Path(tmp) / "run" / METRICS_FILE):
            if record["step"] > warmup_steps:
                times.append(run.train.batch_size * run.model.max_seq_len / record["tok_per_s"])
    return steps * run.train.batch_size * run.model.max_seq_len / sum(times)
