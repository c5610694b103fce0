"""The trainer: one loop for one process, DDP and FSDP2 (under ``torchrun``).

``train(config, run_dir)`` trains a GPT on a data directory with AdamW, warm-up then cosine or
linear decay, gradient clipping and accumulation, bf16 autocast on CUDA (fp32 on CPU), optional
``torch.compile``; it writes ``run_dir/metrics.jsonl``, atomic checkpoints every
``train.checkpoint_interval`` steps (``run_dir/checkpoints/``) and the final model directory
``run_dir/model/``. ``resume=True`` continues from the newest checkpoint with the model,
optimizer, schedule, RNG and data position restored, so the run is bit-identical on CPU (fp32)
to one that was never interrupted.

Batches: every step draws one *global* batch of ``train.batch_size`` rows from a generator that
is identical on every rank; rank r takes its contiguous share and splits it into
``train.grad_accum`` micro-batches. Gradients are averaged over ranks (DDP / FSDP) and micro-steps,
so a step sees the same rows and, up to float summation order, the same update at any world size.

Continued training (``train.init_from``, ``train.stage``): instead of a new GPT the run starts from
a saved model, a cocattn model directory or a Hugging Face causal LM (``coca_llama`` from
``cocattn convert llama``, or a plain LLaMA for a RoPE baseline). ``train.stage`` freezes all but
the paper's stage set (:func:`cocattn.hf.trainable_parameters_for_stage`) before the optimizer is
built, so frozen weights are not in it. A Hugging Face model is trained on
``model(input_ids=x).logits`` against the trainer's shifted targets, checkpointed and resumed
(exactly, as native runs) with the same machinery, and saved at the end with ``save_pretrained``
plus its tokenizer files, so ``run_dir/model`` loads with ``AutoModelForCausalLM`` and the
evaluators. FSDP is refused for Hugging Face models (DDP is not refused, but untested with them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cocattn import checkpoint as ckpt
from cocattn import io
from cocattn._checks import bad_value
from cocattn.config import RunConfig, load_config
from cocattn.errors import NonFiniteLossError

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "train_result.json"
MODEL_DIR = "model"
HF_RUN_FILE = "cocattn_train.json"  # the run config and result, next to a Hugging Face model's files


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


# ---------------------------------------------------------------------------------------------
# Schedule and optimizer


def learning_rate(step: int, train_cfg) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up, then decay to min_lr."""
    lr, min_lr, warmup, total = train_cfg.lr, train_cfg.min_lr, train_cfg.warmup, train_cfg.steps
    if step < warmup:
        return lr * (step + 1) / warmup
    if train_cfg.schedule == "constant" or total <= warmup:
        return lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup - 1))  # the last step uses min_lr
    if train_cfg.schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - progress)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices of linear layers only; norms, biases, embeddings
    (and the head tied to them) are not decayed."""
    no_decay_ids: set[int] = set()
    for module in model.modules():
        is_norm = "norm" in type(module).__name__.lower()
        if isinstance(module, torch.nn.Embedding) or is_norm:
            no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
    decay, no_decay = [], []
    for _name, param in model.named_parameters():  # shared (tied) parameters appear once
        if not param.requires_grad:
            continue
        (no_decay if param.dim() < 2 or id(param) in no_decay_ids else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------------
# Distributed setup


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp
    owns_group: bool = False  # train() created the process group and destroys it at the end

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(train_cfg) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if train_cfg.distributed == "none":
        raise ValueError(
            f"train.distributed='none' is not valid under torchrun (WORLD_SIZE={world}): expected 'ddp' or 'fsdp'"
        )
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = train_cfg.device != "cpu" and torch.cuda.is_available()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(rank=rank, world=world, local_rank=local_rank, mode=train_cfg.distributed, owns_group=owns)


def _device(train_cfg, dist_info: _Dist) -> torch.device:
    name = train_cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist_info.world > 1:
        name = f"cuda:{dist_info.local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())  # set_device needs an index
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"train.device={train_cfg.device!r} is not valid: expected cpu (no CUDA device here)")
        torch.cuda.set_device(device)
    return device


def _autocast_dtype(train_cfg, device: torch.device) -> torch.dtype | None:
    if train_cfg.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return None if train_cfg.dtype == "float32" else getattr(torch, train_cfg.dtype)


def _all_reduce_mean(value: torch.Tensor, dist_info: _Dist) -> torch.Tensor:
    if dist_info.world > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist_info.world
    return value


def _block_list(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (the largest ModuleList), sharded one by one under FSDP."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def _wrap(model: torch.nn.Module, dist_info: _Dist, device: torch.device) -> torch.nn.Module:
    if dist_info.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if dist_info.mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in _block_list(model):
            fully_shard(block)
        fully_shard(model)
    return model


# ---------------------------------------------------------------------------------------------
# Data


class _Batches:
    """Global batches from the data directory, drawn with one generator shared by all ranks."""

    def __init__(self, run: RunConfig, seq_len: int, dist_info: _Dist, device: torch.device):
        from cocattn.data.batches import sample_batch
        from cocattn.data.retrieval import mix_retrieval_rows
        from cocattn.data.shards import load_tokens, verify_file
        from cocattn.data.tokenizer import load_tokenizer

        data_dir = run.data.dir
        if not data_dir:
            raise ValueError(
                "data.dir=None is not valid: expected the directory written by "
                "`cocattn data build` (pass --data DIR or data.dir=DIR)"
            )
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"data directory {data_dir} does not exist (build it with `cocattn data build`)")
        self._sample, self._mix = sample_batch, mix_retrieval_rows
        self.data_dir = data_dir
        self.train = load_tokens(data_dir, "train")
        self.val = load_tokens(data_dir, "val")
        verify_file(data_dir, "tokenizer.json")  # a tokenizer that differs from the manifest's is refused
        self.tokenizer = load_tokenizer(data_dir)
        self.seq_len = seq_len
        self.dist = dist_info
        self.device = device
        self.retrieval_fraction = run.data.retrieval_fraction
        self.retrieval_tasks = list(run.data.retrieval_tasks)
        for split, tokens in (("train", self.train), ("val", self.val)):
            if len(tokens) < seq_len + 2:
                raise ValueError(
                    f"{data_dir}: the {split} split has {len(tokens)} tokens, fewer than "
                    f"model.max_seq_len + 2 = {seq_len + 2}"
                )
        if self.retrieval_fraction > 0:  # fail now, not at the first retrieval row
            from cocattn.data.retrieval import PASSKEY, make_retrieval_row, make_task_row

            for task in self.retrieval_tasks:
                try:
                    for seed in range(4):  # cases differ in length: try a few
                        if task == PASSKEY:
                            make_retrieval_row(torch.Generator().manual_seed(seed), self.tokenizer, self.train, seq_len)
                        else:
                            make_task_row(
                                torch.Generator().manual_seed(seed), self.tokenizer, self.train, seq_len, task
                            )
                except ValueError as err:
                    raise ValueError(
                        f"model.max_seq_len={seq_len} is not valid with data.retrieval_fraction="
                        f"{self.retrieval_fraction} and data.retrieval_tasks={self.retrieval_tasks}: a "
                        f"{task} row does not fit ({err}); raise model.max_seq_len, drop the task or "
                        "give it fewer keys / values / hops"
                    ) from None

    def global_batch(
        self, tokens: np.ndarray, batch_size: int, generator: torch.Generator, retrieval: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self._sample(tokens, batch_size, self.seq_len, generator)
        if retrieval and self.retrieval_fraction > 0:
            x, y = self._mix(x, y, self.retrieval_fraction, self.tokenizer, tokens, generator, self.retrieval_tasks)
        return x, y

    def local_micro_batches(self, x: torch.Tensor, y: torch.Tensor, grad_accum: int):
        share = x.shape[0] // self.dist.world
        lo = self.dist.rank * share
        x, y = x[lo : lo + share], y[lo : lo + share]
        micro = share // grad_accum
        return [
            (
                x[i * micro : (i + 1) * micro].to(self.device, non_blocking=True),
                y[i * micro : (i + 1) * micro].to(self.device, non_blocking=True),
            )
            for i in range(grad_accum)
        ]


# ---------------------------------------------------------------------------------------------
# Continued training: the initial model


def _check_vocabulary(init: Path, model_vocab: int | None, tokenizer, data_dir: str) -> None:
    """The data directory's tokenizer must be the model's own (token ids mean the same thing)."""
    from cocattn.data.tokenizer import load_tokenizer

    size = tokenizer.get_vocab_size()
    problem = None
    if (init / "tokenizer.json").is_file():
        theirs = load_tokenizer(init / "tokenizer.json")
        if theirs.get_vocab(with_added_tokens=True) != tokenizer.get_vocab(with_added_tokens=True):
            problem = (
                f"the model's tokenizer ({init / 'tokenizer.json'}, {theirs.get_vocab_size()} tokens) and "
                f"the data's ({size} tokens) map tokens to different ids"
            )
    elif model_vocab is not None and model_vocab != size:
        problem = (
            f"the model has {model_vocab} token embeddings (and no tokenizer.json to compare), the "
            f"data's tokenizer has {size} tokens"
        )
    if problem is None and model_vocab is not None and size > model_vocab:
        problem = f"the data's tokenizer has {size} tokens, more than the model's {model_vocab} embeddings"
    if problem is not None:
        raise bad_value(
            "data.dir",
            data_dir,
            f"a data directory tokenized with the vocabulary of train.init_from={str(init)!r}: "
            f"{problem}. Build the data with the model's tokenizer (`cocattn data build` trains a "
            "new one, which suits only models trained on that data)",
        )


def _initial_model(run: RunConfig, tokenizer, data_dir: str):
    """``(model, GPTConfig or None, kind)`` for ``train.init_from`` (kind ``"cocattn"`` or ``"hf"``)."""
    from cocattn.checkpoint import model_dir_kind

    init = Path(run.train.init_from)
    kind = model_dir_kind(init)  # FileNotFoundError / ValueError naming the directory
    io.refuse_pickles(init)
    if kind == "hf":
        io.refuse_remote_code(init)
    seq_len = int(run.model["max_seq_len"])
    if kind == "cocattn":
        from cocattn.model import GPT, GPTConfig

        saved = ckpt.read_model_config(init)
        _check_vocabulary(init, saved["model"].get("vocab_size"), tokenizer, data_dir)
        loaded, _ = ckpt.load_model(init)  # its checks (files, shapes) apply
        cfg = GPTConfig.from_dict(dict(loaded.config.to_dict(), max_seq_len=seq_len))  # the new L0
        model = GPT(cfg)
        model.load_state_dict(loaded.state_dict())
        return model, cfg, kind
    import cocattn.hf  # noqa: F401  registers coca_llama with the Auto classes
    from transformers import AutoModelForCausalLM

    declared = io.load_json(init / "config.json").get("vocab_size")
    if isinstance(declared, int):  # fail before loading the weights
        _check_vocabulary(init, declared, tokenizer, data_dir)
    from cocattn.hf.load import from_pretrained_checked

    model = from_pretrained_checked(
        AutoModelForCausalLM,
        init,
        name="train.init_from",
        dtype=torch.float32,
        expected="a Hugging Face causal-LM directory with safetensors weights (or a cocattn model directory)",
    )
    if not isinstance(declared, int):
        _check_vocabulary(init, model.get_input_embeddings().num_embeddings, tokenizer, data_dir)
    return model, None, kind


def _lm_loss(model, x: torch.Tensor, y: torch.Tensor, hf: bool) -> torch.Tensor:
    """Mean next-token cross-entropy; ``y`` is already shifted (targets of -100 are ignored)."""
    if not hf:
        return model(x, y)[1]
    logits = model(input_ids=x, use_cache=False).logits  # no labels=: transformers would shift again
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=-100)


def _save_hf_model(directory: Path, model, init: Path, data_dir: str, info: dict[str, Any]) -> None:
    """``save_pretrained`` (safetensors) + the tokenizer files of ``init`` (the data's tokenizer.json
    when it has none; the vocabulary was checked equal), atomically."""
    import shutil

    from cocattn.hf.convert import TOKENIZER_FILES

    with io.atomic_directory(directory) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        copied = False
        for name in TOKENIZER_FILES:
            if (init / name).is_file():
                shutil.copy2(init / name, tmp / name)
                copied = True
        if not copied:  # the model came without a tokenizer: give it the data's (same vocabulary)
            from cocattn.data.tokenizer import EOT

            shutil.copy2(Path(data_dir) / "tokenizer.json", tmp / "tokenizer.json")
            io.write_json(
                tmp / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": EOT}
            )
        (tmp / HF_RUN_FILE).write_text(io.dumps_json(info), encoding="utf-8")


def _check_same_init(saved_run: dict[str, Any] | None, tc, where: Path) -> None:
    """A run resumes with the init_from and stage it started with."""
    saved = (saved_run or {}).get("train") or {}
    for key in ("init_from", "stage"):
        old, new = saved.get(key), getattr(tc, key)
        same = old == new
        if key == "init_from" and old is not None and new is not None:
            same = Path(old).resolve() == Path(new).resolve()
        if not same:
            raise bad_value(f"train.{key}", new, f"{old!r}, the value of the run being resumed ({where})")
    # what the sampler, the schedule and the tokens seen depend on: a resume with another value
    # would silently continue a different run (issue 14)
    for key in ("batch_size", "grad_accum"):
        old, new = saved.get(key), getattr(tc, key)
        if old is not None and old != new:
            raise bad_value(f"train.{key}", new, f"{old!r}, the value of the run being resumed ({where})")


def _check_same_length(saved_run: dict[str, Any] | None, seq_len: int, where: Path) -> None:
    """A run resumes with the training length it started with."""
    old = ((saved_run or {}).get("model") or {}).get("max_seq_len")
    if old is not None and int(old) != seq_len:
        raise bad_value("model.max_seq_len", seq_len, f"{old!r}, the value of the run being resumed ({where})")


# ---------------------------------------------------------------------------------------------
# State (checkpoints)


def _full_model_state(model: torch.nn.Module, dist_info: _Dist) -> dict[str, torch.Tensor] | None:
    """Full (unsharded) model state on rank 0 (None elsewhere); a collective under FSDP."""
    if dist_info.mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if dist_info.main else None
    return ckpt.unwrap(model).state_dict() if dist_info.main else None


def _optimizer_state(model, optimizer, dist_info: _Dist) -> dict[str, Any] | None:
    if dist_info.mode == "fsdp":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        state = get_optimizer_state_dict(
            model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        return {"kind": "fqn", "state": state} if dist_info.main else None
    return {"kind": "torch", "state": optimizer.state_dict()} if dist_info.main else None


def _load_optimizer_state(model, optimizer, saved: dict[str, Any], dist_info: _Dist, where: Path) -> None:
    expected = "fqn" if dist_info.mode == "fsdp" else "torch"
    if saved.get("kind") != expected:
        saved_by = "an FSDP run" if saved.get("kind") == "fqn" else "a single-process or DDP run"
        needed = (
            "under torchrun with train.distributed=fsdp"
            if saved.get("kind") == "fqn"
            else "in one process or under torchrun with train.distributed=ddp"
        )
        raise ValueError(f"{where}: the optimizer state was saved by {saved_by}; resume it {needed}")
    if expected == "fqn":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(
            model, optimizer, optim_state_dict=saved["state"], options=StateDictOptions(full_state_dict=True)
        )
    else:
        optimizer.load_state_dict(saved["state"])


def _model_for_saving(model, cfg, state: dict[str, torch.Tensor] | None, dist_info: _Dist):
    """The model to write: the model itself, or under FSDP a CPU copy holding the gathered state."""
    if dist_info.mode != "fsdp":
        return ckpt.unwrap(model)
    from cocattn.model import GPT

    shadow = GPT(cfg)
    shadow.load_state_dict(state)
    return shadow


# ---------------------------------------------------------------------------------------------
# The loop


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit="step", dynamic_ncols=True, disable=not (enabled and sys.stderr.isatty())
    )


def _prepare_run_dir(run_dir: Path, resume: bool, dist_info: _Dist) -> Path | None:
    latest = ckpt.latest_checkpoint(run_dir)
    if not resume and (latest is not None or (run_dir / MODEL_DIR).exists()):
        raise FileExistsError(
            f"run directory {run_dir} already holds a run; pass --resume (resume=True) "
            "to continue it, or choose another --out"
        )
    if dist_info.main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            io.clean_temporaries(run_dir)
        except OSError as err:
            raise io.AtomicWriteError(err.errno, f"cannot create run directory {run_dir}: {err.strerror}") from err
    return latest if resume else None


def _trim_metrics(path: Path, step: int) -> None:
    """Drop metrics recorded after ``step`` (work lost by a crash and about to be redone)."""
    if not path.is_file():
        return
    kept = [r for r in io.read_jsonl(path) if int(r.get("step", 0)) <= step]
    io.write_jsonl(path, kept)


class _TensorBoard:
    def __init__(self, run_dir: Path, enabled: bool):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ValueError(
                    "train.tensorboard=True is not valid here: expected the tensorboard "
                    f"package to be installed ({err})"
                ) from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> None:
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@torch.no_grad()
def _validation_loss(model, batches: _Batches, run: RunConfig, autocast, hf: bool = False) -> float:
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(run.train.seed + 2)  # the same batches every time
    total = torch.zeros((), dtype=torch.float64)
    for _ in range(run.train.eval_iters):
        x, y = batches.global_batch(batches.val, run.train.batch_size, generator, retrieval=False)
        parts = batches.local_micro_batches(x, y, run.train.grad_accum)
        for xm, ym in parts:
            with autocast():
                loss = _lm_loss(model, xm, ym, hf)
            total += loss.detach().double().cpu()
    total = _all_reduce_mean(total / (run.train.eval_iters * len(parts)), batches.dist)
    model.train(was_training)
    return float(total)


# what `cocattn train` writes into a run directory; anything else makes it a foreign directory
RUN_ENTRIES = frozenset(
    {"config.json", METRICS_FILE, RESULT_FILE, MODEL_DIR, ckpt.CHECKPOINTS, "tensorboard", io.LOCK_FILE}
)


def _check_run_dir(run_dir: Path) -> None:
    """Refuse a non-empty ``run_dir`` that is not a cocattn run directory (issue 14): its
    ``config.json`` must be a run config and it may hold only what a run writes, so a foreign
    project's config.json or ``.tmp-*`` entries are never overwritten or deleted."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise bad_value("--out", str(run_dir), "a run directory (it is a file)")
    entries = [p.name for p in run_dir.iterdir()]
    foreign = sorted(n for n in entries if n not in RUN_ENTRIES and not n.startswith(".tmp-"))
    if foreign:
        raise bad_value(
            "--out",
            str(run_dir),
            "an empty or new directory, or a cocattn run directory; it holds "
            f"{', '.join(foreign[:5])}{', …' if len(foreign) > 5 else ''}, which cocattn train does not write",
        )
    config = run_dir / "config.json"
    if config.exists():
        try:
            data = io.load_json(config)
        except (OSError, ValueError):
            data = None
        if not (isinstance(data, dict) and isinstance(data.get("train"), dict) and isinstance(data.get("data"), dict)):
            raise bad_value("--out", str(run_dir), f"a cocattn run directory ({config} is not a cocattn run config)")
    elif any(not n.startswith(".tmp-") and n != io.LOCK_FILE for n in entries):
        raise bad_value("--out", str(run_dir), "a cocattn run directory (it has no config.json)")


def train(
    config: RunConfig | str | os.PathLike | dict,
    run_dir: str | os.PathLike,
    resume: bool = False,
    data_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train the model of ``config`` into ``run_dir``; see the module docstring.

    ``config`` is a :class:`RunConfig`, a preset name, a config file or a dict; ``data_dir``
    overrides ``data.dir``; ``progress`` overrides ``train.progress``.

    The run directory must be new, empty or a cocattn run directory; the process writing it
    holds an exclusive lock on it (``.cocattn.lock``), and a second writer is refused naming
    the holder's PID.
    """
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 owns the directory
        return _train(config, run_dir, resume, data_dir, progress)
    _check_run_dir(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise io.AtomicWriteError(err.errno, f"cannot create run directory {run_dir}: {err.strerror}") from err
    lock = io.DirectoryLock(run_dir, "run directory")
    try:
        return _train(config, run_dir, resume, data_dir, progress)
    finally:
        lock.release()
        if created and [p.name for p in run_dir.iterdir()] == [io.LOCK_FILE]:  # failed before writing
            with contextlib.suppress(OSError):
                (run_dir / io.LOCK_FILE).unlink()
                run_dir.rmdir()


def _train(
    config: RunConfig | str | os.PathLike | dict,
    run_dir: Path,
    resume: bool,
    data_dir: str | os.PathLike | None,
    progress: bool | None,
) -> TrainResult:
    run = config if isinstance(config, RunConfig) else load_config(config)
    if data_dir is not None:
        run = dataclasses.replace(run, data=dataclasses.replace(run.data, dir=os.fspath(data_dir)))
    tc = run.train
    run_dir = Path(run_dir)
    dist_info = _init_distributed(tc)
    if tc.batch_size % (tc.grad_accum * dist_info.world):
        raise ValueError(
            f"train.batch_size={tc.batch_size} is not valid: expected a multiple of "
            f"train.grad_accum × world size = {tc.grad_accum * dist_info.world}"
        )
    device = _device(tc, dist_info)
    if tc.threads and device.type == "cpu":
        torch.set_num_threads(tc.threads)
    amp_dtype = _autocast_dtype(tc, device)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=amp_dtype)

    seq_len = int(run.model["max_seq_len"])
    batches = _Batches(run, seq_len, dist_info, device)
    if tc.init_from is None:
        cfg = run.model_config(vocab_size=batches.tokenizer.get_vocab_size())
        if batches.tokenizer.get_vocab_size() > cfg.vocab_size:
            raise ValueError(
                f"model.vocab_size={cfg.vocab_size} is not valid: expected at least the "
                f"tokenizer's {batches.tokenizer.get_vocab_size()} tokens ({batches.data_dir})"
            )

    latest = _prepare_run_dir(run_dir, resume, dist_info)

    from cocattn.model import GPT

    torch.manual_seed(tc.seed)
    np.random.seed(tc.seed % 2**32)
    import random

    random.seed(tc.seed)
    hf = False
    if tc.init_from is None:
        model = GPT(cfg)
    else:
        model, cfg, kind = _initial_model(run, batches.tokenizer, batches.data_dir)
        hf = kind == "hf"
        if hf and dist_info.mode == "fsdp":
            raise bad_value(
                "train.distributed",
                tc.distributed,
                "'ddp' when train.init_from is a Hugging Face model (FSDP is for cocattn models)",
            )
        if tc.stage is not None:
            from cocattn.hf.stages import trainable_parameters_for_stage

            try:
                trainable_parameters_for_stage(model, tc.stage)
            except ValueError as err:
                raise bad_value(
                    "train.stage", tc.stage, f"3 or null for train.init_from={tc.init_from!r} ({err})"
                ) from None
    # what the run records: the GPTConfig, or for a Hugging Face model the one field it reads
    run = dataclasses.replace(run, model=cfg.to_dict() if cfg is not None else {"max_seq_len": seq_len})
    state = None
    if latest is not None:
        state = ckpt.load_checkpoint(latest, None, expected_config=cfg)
        _check_same_init(state.get("run"), tc, latest)
        _check_same_length(state.get("run"), seq_len, latest)
        ckpt.load_weights(model, latest / ckpt.MODEL_FILE)
    model.to(device)
    model = _wrap(model, dist_info, device)
    raw_model = ckpt.unwrap(model)
    groups = [g for g in param_groups(model, tc.weight_decay) if g["params"]]  # frozen weights left out
    optimizer = torch.optim.AdamW(groups, lr=tc.lr, betas=tuple(tc.betas), eps=tc.eps)
    sampler = torch.Generator().manual_seed(tc.seed + 1)
    step, tokens_seen, resumed_from = 0, 0, None
    if state is not None:
        _load_optimizer_state(model, optimizer, state["optimizer"], dist_info, latest)
        sampler.set_state(state["sampler"].to(torch.uint8))
        ckpt.set_rng_state(state["rng"])
        step, tokens_seen = int(state["step"]), int(state["tokens"])
        resumed_from = step
    if tc.compile:
        model = torch.compile(model)

    metrics_path = run_dir / METRICS_FILE
    if dist_info.main:
        _trim_metrics(metrics_path, step)
        run.save(run_dir / "config.json")
    board = _TensorBoard(run_dir, tc.tensorboard and dist_info.main)
    tokens_per_step = tc.batch_size * seq_len

    def save_checkpoint_now() -> None:
        full = _full_model_state(model, dist_info)
        opt_state = _optimizer_state(model, optimizer, dist_info)
        if not dist_info.main:
            return
        trainer_state = {
            "step": step,
            "tokens": tokens_seen,
            "optimizer": opt_state,
            "sampler": sampler.get_state(),
            "rng": ckpt.rng_state(),
            "run": run.to_dict(),
            "world_size": dist_info.world,
        }
        ckpt.save_checkpoint(
            run_dir,
            step,
            _model_for_saving(model, cfg, full, dist_info),
            trainer_state,
            tokenizer=Path(batches.data_dir) / "tokenizer.json",
            extra={"run": run.to_dict()},
            keep=tc.keep_checkpoints,
        )

    model.train()
    bar = _progress(tc.steps, step, tc.progress if progress is None else progress) if dist_info.main else None
    start = time.perf_counter()
    start_step = step
    last_loss, val_loss = float("nan"), None
    window_t, window_tokens = time.perf_counter(), 0
    try:
        while step < tc.steps:
            lr = learning_rate(step, tc)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = batches.global_batch(batches.train, tc.batch_size, sampler, retrieval=True)
            micro = batches.local_micro_batches(x, y, tc.grad_accum)
            loss_sum = torch.zeros((), dtype=torch.float64)
            for i, (xm, ym) in enumerate(micro):
                last_micro = i == len(micro) - 1
                sync = contextlib.nullcontext()
                if dist_info.mode == "ddp" and not last_micro:
                    sync = model.no_sync()
                elif dist_info.mode == "fsdp" and hasattr(raw_model, "set_requires_gradient_sync"):
                    raw_model.set_requires_gradient_sync(last_micro)
                with sync:
                    with autocast():
                        loss = _lm_loss(model, xm, ym, hf)
                    (loss / tc.grad_accum).backward()
                loss_sum += loss.detach().double().cpu()
            loss_value = float(_all_reduce_mean(loss_sum / tc.grad_accum, dist_info))
            grad_norm = None
            if tc.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
                grad_norm = float(norm)
            if not math.isfinite(loss_value) or (grad_norm is not None and not math.isfinite(grad_norm)):
                good = ckpt.latest_checkpoint(run_dir)
                what = "loss" if not math.isfinite(loss_value) else "gradient norm"
                raise NonFiniteLossError(
                    f"the {what} became {loss_value if what == 'loss' else grad_norm} at step {step + 1}; "
                    f"training stopped before applying that update. Last good checkpoint: "
                    f"{good if good else 'none (no checkpoint was written yet)'}. Lower train.lr, raise "
                    "train.warmup or enable train.grad_clip, then resume with --resume."
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += tokens_per_step
            window_tokens += tokens_per_step
            last_loss = loss_value

            record: dict[str, Any] | None = None
            if step % tc.log_interval == 0 or step == tc.steps:
                now = time.perf_counter()
                record = {
                    "step": step,
                    "loss": loss_value,
                    "lr": lr,
                    "tokens": tokens_seen,
                    "tok_per_s": window_tokens / max(now - window_t, 1e-9),
                    "elapsed_s": now - start,
                }
                if grad_norm is not None:
                    record["grad_norm"] = grad_norm
                window_t, window_tokens = now, 0
            if tc.eval_interval and (step % tc.eval_interval == 0 or step == tc.steps):
                val_loss = _validation_loss(model, batches, run, autocast, hf)
                record = record or {"step": step}
                record["val_loss"] = val_loss
            if record is not None and dist_info.main:
                io.append_jsonl(metrics_path, record)
                board.log(record)
            if tc.checkpoint_interval and step % tc.checkpoint_interval == 0:
                save_checkpoint_now()
            if bar is not None:
                elapsed = time.perf_counter() - start
                bar.set_postfix(
                    loss=f"{loss_value:.3f}",
                    lr=f"{lr:.2e}",
                    tok_s=f"{(step - start_step) * tokens_per_step / max(elapsed, 1e-9):,.0f}",
                    refresh=False,
                )
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        board.close()

    seconds = time.perf_counter() - start
    tokens_per_s = (step - start_step) * tokens_per_step / max(seconds, 1e-9)
    if step == start_step and state is not None:
        # resumed a run whose newest checkpoint is its last step (killed after the final
        # checkpoint): nothing to train; keep the figures the run reached, never null them
        last_loss, val_loss, seconds, tokens_per_s = _finished_run_figures(run_dir, step, tokens_per_step)
    full = _full_model_state(model, dist_info)
    result = TrainResult(
        run_dir=str(run_dir),
        model_dir=str(run_dir / MODEL_DIR),
        steps=step,
        tokens=tokens_seen,
        final_loss=last_loss,
        val_loss=val_loss,
        seconds=seconds,
        tokens_per_s=tokens_per_s,
        resumed_from=resumed_from,
        world_size=dist_info.world,
    )
    if dist_info.main:
        if hf:
            _save_hf_model(
                run_dir / MODEL_DIR,
                raw_model,
                Path(tc.init_from),
                batches.data_dir,
                {"run": run.to_dict(), "train_result": _finite_dict(result.to_dict())},
            )
        else:
            ckpt.save_model(
                run_dir / MODEL_DIR,
                _model_for_saving(model, cfg, full, dist_info),
                tokenizer=Path(batches.data_dir) / "tokenizer.json",
                extra={"run": run.to_dict(), "train_result": _finite_dict(result.to_dict())},
            )
        io.write_json(run_dir / RESULT_FILE, _finite_dict(result.to_dict()))
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        if dist_info.owns_group:
            dist.destroy_process_group()
    return result


def _finished_run_figures(run_dir: Path, step: int, tokens_per_step: int) -> tuple[float, float | None, float, float]:
    """``(final_loss, val_loss, seconds, tokens_per_s)`` of a run that had reached ``step`` before
    this invocation: from its ``train_result.json`` when that describes ``step``, else from
    ``metrics.jsonl`` (the loss and validation loss logged at the last step; the training time
    summed over the logged windows, ``tokens / tok_per_s`` each, so restarts are not counted)."""
    previous = run_dir / RESULT_FILE
    if previous.is_file():
        try:
            old = io.load_json(previous)
        except ValueError:
            old = None
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
    path = run_dir / METRICS_FILE
    records = [r for r in io.read_jsonl(path) if int(r.get("step", 0)) <= step] if path.is_file() else []
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


def _finite_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def train_throughput(
    config: RunConfig | str | os.PathLike | dict,
    steps: int = 10,
    data_dir: str | os.PathLike | None = None,
    warmup_steps: int = 2,
) -> float:
    """Training tokens/s of ``config`` measured over ``steps`` steps (after ``warmup_steps``), in a
    temporary run directory that is removed afterwards."""
    import tempfile

    from cocattn._checks import check

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
        for record in io.read_jsonl(Path(tmp) / "run" / METRICS_FILE):
            if record["step"] > warmup_steps:
                times.append(run.train.batch_size * int(run.model["max_seq_len"]) / record["tok_per_s"])
    return steps * run.train.batch_size * int(run.model["max_seq_len"]) / sum(times)
