"""Setting a run up: the configuration, processes and device, the data, the model (a new GPT or
``train.init_from``), the resumed checkpoint, the optimizer, and the run directory's records."""

from __future__ import annotations

import dataclasses
import os
import random
from typing import cast
from pathlib import Path

import numpy as np
import torch

from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn.config import RunConfig, TrainConfig, load_config
from cocattn.model import GPTConfig
from cocattn.train.batches import Batches
from cocattn.train.distributed import Dist, autocast_for, device_for, init_distributed, wrap
from cocattn.train.init_from import continued_model
from cocattn.train.metrics import TensorBoard, trim_metrics
from cocattn.train.rundir import METRICS_FILE, prepare_run_dir
from cocattn.train.schedule import param_groups
from cocattn.train.session import Session
from cocattn.train.state import restore_trainer_state, resume_state


def resolve_config(config: RunConfig | str | os.PathLike | dict, data_dir: str | os.PathLike | None) -> RunConfig:
    """The run configuration of ``config`` (a RunConfig, preset, file or dict), ``data_dir`` applied."""
    run = config if isinstance(config, RunConfig) else load_config(config)
    if data_dir is not None:
        run = dataclasses.replace(run, data=dataclasses.replace(run.data, dir=os.fspath(data_dir)))
    return run


def set_up(
    config: RunConfig | str | os.PathLike | dict, run_dir: Path, resume: bool, data_dir: str | os.PathLike | None
) -> Session:
    """Everything a run needs before its first step, in the order its errors are checked."""
    run = resolve_config(config, data_dir)
    tc = run.train
    dist_info = init_distributed(tc)
    _check_batch_size(tc, dist_info)
    device = device_for(tc, dist_info)
    if tc.threads and device.type == "cpu":
        torch.set_num_threads(tc.threads)
    autocast = autocast_for(tc, device)
    seq_len = run.model.max_seq_len
    batches = Batches(run, seq_len, dist_info, device)
    cfg = _new_model_config(run, batches) if tc.init_from is None else None
    latest = prepare_run_dir(run_dir, resume, dist_info)
    _seed(tc.seed)
    model, cfg, hf = _model(run, cfg, batches, dist_info)
    if cfg is not None:  # the model trained (its vocabulary filled; for init_from, the new length)
        run = dataclasses.replace(run, model=cfg, vocab_from_data=False)
    state = resume_state(latest, model, cfg, tc, seq_len)
    model.to(device)
    model = wrap(model, dist_info, device)
    raw_model = ckpt.unwrap(model)
    groups = [g for g in param_groups(model, tc.weight_decay) if g["params"]]  # frozen weights left out
    optimizer = torch.optim.AdamW(groups, lr=tc.lr, betas=(tc.betas[0], tc.betas[1]), eps=tc.eps)
    sampler = torch.Generator().manual_seed(tc.seed + 1)
    step, tokens = 0, 0
    if state is not None and latest is not None:  # a state comes from a checkpoint
        step, tokens = restore_trainer_state(state, model, optimizer, sampler, dist_info, latest)
    if tc.compile:
        model = cast(torch.nn.Module, torch.compile(model))  # an OptimizedModule, typed as a callable
    if dist_info.main:
        trim_metrics(run_dir / METRICS_FILE, step)
    session = Session(
        run=run,
        run_dir=run_dir,
        dist=dist_info,
        device=device,
        autocast=autocast,
        batches=batches,
        model=model,
        raw_model=raw_model,
        cfg=cfg,
        hf=hf,
        optimizer=optimizer,
        sampler=sampler,
        board=TensorBoard(run_dir, tc.tensorboard and dist_info.main),
        seq_len=seq_len,
        step=step,
        tokens=tokens,
        resumed_from=step if state is not None else None,
    )
    if dist_info.main:
        files.write_json(run_dir / ckpt.CONFIG_FILE, session.record)
    return session


def _check_batch_size(tc: TrainConfig, dist_info: Dist) -> None:
    if tc.batch_size % (tc.grad_accum * dist_info.world):
        raise ValueError(
            f"train.batch_size={tc.batch_size} is not valid: expected a multiple of "
            f"train.grad_accum × world size = {tc.grad_accum * dist_info.world}"
        )


def _new_model_config(run: RunConfig, batches: Batches) -> GPTConfig:
    """The GPTConfig of a new model, its vocabulary size filled from the data's tokenizer."""
    vocab = batches.tokenizer.get_vocab_size()
    cfg = run.model_config(vocab_size=vocab)
    if vocab > cfg.vocab_size:
        raise ValueError(
            f"model.vocab_size={cfg.vocab_size} is not valid: expected at least the "
            f"tokenizer's {vocab} tokens ({batches.data_dir})"
        )
    return cfg


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _model(
    run: RunConfig, cfg: GPTConfig | None, batches: Batches, dist_info: Dist
) -> tuple[torch.nn.Module, GPTConfig | None, bool]:
    """``(model, GPTConfig or None, hf)``: a new GPT of ``cfg``, or the ``train.init_from`` model."""
    if cfg is not None:  # a new model (no train.init_from)
        from cocattn.model import GPT

        return GPT(cfg), cfg, False
    return continued_model(run, batches.tokenizer, batches.data_dir, dist_info)
