"""The trainer: a real run on real text, exact resume after SIGKILL, DDP/FSDP parity under torchrun,
NaN handling, and the errors a user meets first."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import build_text_data
from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn.config import load_config
from cocattn.train import NonFiniteLossError, learning_rate, param_groups, train, train_throughput

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A small real-text data directory with a 512-token BPE (see conftest.build_text_data)."""
    return build_text_data(tmp_path_factory.mktemp("data"), vocab_size=512)


def _config(data_dir: Path, **train) -> dict:
    base = {
        "batch_size": 8,
        "steps": 40,
        "lr": 3e-3,
        "min_lr": 3e-4,
        "warmup": 4,
        "log_interval": 1,
        "eval_interval": 10,
        "eval_iters": 2,
        "checkpoint_interval": 5,
        "keep_checkpoints": 2,
        "threads": 1,
        "progress": False,
    }
    base.update(train)
    return {
        "name": "test",
        "model": {"vocab_size": None, "n_layer": 2, "n_head": 2, "n_embd": 64, "max_seq_len": 96, "attention": "coca"},
        "data": {"dir": str(data_dir), "retrieval_fraction": 0.25},
        "train": base,
    }


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in files.read_jsonl(run_dir / "metrics.jsonl") if "loss" in r}


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cocattn", "train", *args]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")


# -- schedule and optimizer ----------------------------------------------------------------------


def test_learning_rate_warms_up_then_decays_to_min_lr():
    cfg = load_config({"model": {}, "train": {"steps": 100, "warmup": 10, "lr": 1e-3, "min_lr": 1e-4}}).train
    lrs = [learning_rate(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] == pytest.approx(1e-4, rel=1e-3)
    assert learning_rate(10 + 89 // 2, cfg) == pytest.approx(5.5e-4, rel=2e-2)  # cosine midpoint
    linear = load_config(
        {"model": {}, "train": {"steps": 100, "warmup": 0, "schedule": "linear", "lr": 1e-3, "min_lr": 0.0}}
    ).train
    assert learning_rate(0, linear) == 1e-3 and learning_rate(99, linear) == 0.0


def test_weight_decay_skips_norms_biases_and_embeddings():
    from cocattn.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=16, bias=True))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 and "wte" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"wte.weight", "ln_f.weight", "ln_f.bias"}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


# -- a real run ----------------------------------------------------------------------------------


def test_a_short_run_learns_and_writes_a_loadable_model(tmp_path, data_dir):
    result = train(_config(data_dir, steps=30, checkpoint_interval=10), tmp_path / "run")
    losses = _losses(tmp_path / "run")
    assert sorted(losses) == list(range(1, 31))
    assert losses[30] < losses[1] - 1.0, losses  # it learns (ln 512 = 6.24 at the start)
    assert result.val_loss is not None and math.isfinite(result.val_loss) and result.tokens == 30 * 8 * 96
    model, tokenizer = ckpt.load_model(tmp_path / "run" / "model")
    assert model.config.attention == "coca" and model.config.vocab_size == tokenizer.get_vocab_size() == 512
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["run"]["data"]["retrieval_fraction"] == 0.25  # recorded with the model
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path / "run")] == [20, 30]
    with pytest.raises(FileExistsError, match="--resume"):
        train(_config(data_dir, steps=30), tmp_path / "run")


def test_resume_after_sigkill_reproduces_the_uninterrupted_run_exactly(tmp_path, data_dir):
    """Acceptance: kill -9 a training process after a checkpoint, resume, and get the same
    loss at every later step, bit for bit (CPU, fp32)."""
    config = _config(data_dir, steps=30)
    reference = train(config, tmp_path / "reference")
    file = _write_config(tmp_path / "run.yaml", config)
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli("--config", str(file), "--out", str(run_dir), "--no-progress"),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is not None and latest.name >= "step_0000010":
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (run_dir / "model").exists(), "the run finished before it was killed"
    killed_at = ckpt.latest_checkpoint(run_dir)
    result = train(config, run_dir, resume=True)
    assert result.resumed_from == int(killed_at.name.split("_")[1]) >= 10
    assert _losses(run_dir) == _losses(tmp_path / "reference")  # every step, exactly
    assert result.final_loss == reference.final_loss and result.val_loss == reference.val_loss
    a, _ = ckpt.load_model(run_dir / "model")
    b, _ = ckpt.load_model(tmp_path / "reference" / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# A real SIGKILL at a chosen moment of the real trainer: the CLI runs under a wrapper that kills
# its own process (signal 9, no cleanup) right after checkpoint AT is published ("after"), or
# inside the write of checkpoint AT, once its trainer tensors are in the .tmp- directory and
# before trainer.json and the rename ("during").
KILL_WRAPPER = r"""
import os, signal, sys
import cocattn.checkpoint as C
mode, at, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
save, tensors, now = C.save_checkpoint, C.trainer._save_safetensors, {}
def save_checkpoint(run_dir, step, *a, **k):
    now["step"] = step
    out = save(run_dir, step, *a, **k)
    if mode == "after" and step == at:
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "stop" and step == at:  # frozen, still holding its run directory
        os.kill(os.getpid(), signal.SIGSTOP)
    return out
def _save_safetensors(t, path, *a, **k):
    tensors(t, path, *a, **k)
    if mode == "during" and now.get("step") == at and path.name == C.TRAINER_TENSORS:
        os.kill(os.getpid(), signal.SIGKILL)
C.save_checkpoint, C.trainer._save_safetensors = save_checkpoint, _save_safetensors
from cocattn.cli import main
sys.exit(main(argv))
"""


def _train_killed_at(mode: str, at: int, *args: str) -> subprocess.CompletedProcess:
    """`cocattn train ARGS` killed by SIGKILL at checkpoint ``at`` (``mode``: after / during)."""
    return subprocess.run(
        [sys.executable, "-c", KILL_WRAPPER, mode, str(at), "train", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_kill_after_the_final_checkpoint_then_resume_keeps_the_results(tmp_path, data_dir):
    """A run killed after its final checkpoint (the GPU presets end on a
    checkpoint step) resumes with 0 steps to train; its train_result.json and model must keep the
    final loss, validation loss and a throughput (they were null / 0, and `reproduce` then
    crashed formatting None). Resuming the finished run again keeps them too."""
    config = _config(data_dir, steps=10, checkpoint_interval=5, eval_interval=5)
    reference = train(config, tmp_path / "reference")
    file = _write_config(tmp_path / "run.yaml", config)
    run_dir = tmp_path / "killed"
    args = ("--config", str(file), "--out", str(run_dir), "--no-progress")
    done = _train_killed_at("after", 10, *args)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert ckpt.latest_checkpoint(run_dir).name == "step_0000010" and not (run_dir / "model").exists()
    assert not (run_dir / "train_result.json").exists()
    for _ in range(2):  # resume the killed run, then resume the finished run once more
        done = subprocess.run(_cli(*args, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        result = json.loads((run_dir / "train_result.json").read_text())
        assert result["steps"] == 10 and result["resumed_from"] == 10
        assert result["final_loss"] == reference.final_loss and result["val_loss"] == reference.val_loss
        assert result["tokens_per_s"] > 0 and result["seconds"] > 0
        saved = json.loads((run_dir / "model" / "config.json").read_text())["train_result"]
        assert saved["final_loss"] == reference.final_loss and saved["val_loss"] == reference.val_loss
    a, _ = ckpt.load_model(run_dir / "model")
    b, _ = ckpt.load_model(tmp_path / "reference" / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_kill_during_a_checkpoint_write_keeps_the_previous_checkpoint_and_resumes_exactly(tmp_path, data_dir):
    """A SIGKILL inside the write of checkpoint 10 (tensors written, not yet published): `latest`
    still names checkpoint 5, which loads; the resume repeats steps 6-10 bit for bit and ends
    with the uninterrupted run's losses and weights."""
    config = _config(data_dir, steps=15, checkpoint_interval=5, eval_interval=0)
    train(config, tmp_path / "reference")
    file = _write_config(tmp_path / "run.yaml", config)
    run_dir = tmp_path / "killed"
    args = ("--config", str(file), "--out", str(run_dir), "--no-progress")
    done = _train_killed_at("during", 10, *args)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert ckpt.latest_checkpoint(run_dir).name == "step_0000005"
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-step_0000010")]
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))["step"] == 5
    done = subprocess.run(_cli(*args, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert _losses(run_dir) == _losses(tmp_path / "reference")
    a, _ = ckpt.load_model(run_dir / "model")
    b, _ = ckpt.load_model(tmp_path / "reference" / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_blocks_nothing(tmp_path, data_dir):
    """Two `cocattn train` into one --out both ran (interleaved metrics, one
    deleted the other's checkpoint). The first holds an exclusive lock; the second exits 2 naming
    the holder's PID and touches nothing; after the holder is SIGKILLed its lock file is stale
    and a --resume runs to the end, equal to an uninterrupted run."""
    config = _config(data_dir, steps=6, checkpoint_interval=2, eval_interval=0)
    file = _write_config(tmp_path / "run.yaml", config)
    run_dir = tmp_path / "run"
    args = ("--config", str(file), "--out", str(run_dir), "--no-progress")
    holder = subprocess.Popen(
        [sys.executable, "-c", KILL_WRAPPER, "stop", "2", "train", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and ckpt.latest_checkpoint(run_dir) is None and holder.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)  # the holder stops itself right after publishing checkpoint 2
        assert holder.poll() is None, holder.stderr.read().decode()
        before = sorted(p.name for p in run_dir.rglob("*"))
        metrics = (run_dir / "metrics.jsonl").read_bytes()
        for extra in ((), ("--resume",)):
            second = subprocess.run(_cli(*args, *extra), env=_env(), capture_output=True, text=True, timeout=300)
            assert second.returncode == 2, second.stderr
            assert f"is in use by another cocattn process (PID {holder.pid})" in second.stderr
        assert sorted(p.name for p in run_dir.rglob("*")) == before
        assert (run_dir / "metrics.jsonl").read_bytes() == metrics
    finally:
        holder.kill()
        holder.wait()
    assert (run_dir / ".cocattn.lock").read_text().strip() == str(holder.pid)  # stale file, no lock
    resumed = subprocess.run(_cli(*args, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    train(config, tmp_path / "reference")
    assert _losses(run_dir) == _losses(tmp_path / "reference")


def test_train_refuses_a_foreign_output_directory_and_touches_nothing(tmp_path, data_dir):
    """`cocattn train --out DIR` into a directory that is not a cocattn run
    directory overwrote its config.json and deleted its `.tmp-*` entries. Now exit 2 naming the
    directory, with every file intact; an empty directory is fine."""
    file = _write_config(tmp_path / "run.yaml", _config(data_dir, steps=2, warmup=0, eval_interval=0))
    cases = {
        "foreign-config": {"config.json": '{"compilerOptions": {}}', ".tmp-cache": "keep"},
        "project": {"README.md": "mine", ".tmp-build": "keep"},
    }
    for name, contents in cases.items():
        out = tmp_path / name
        out.mkdir()
        for rel, text in contents.items():
            (out / rel).write_text(text)
        for extra in ((), ("--resume",)):
            done = subprocess.run(
                _cli("--config", str(file), "--out", str(out), "--no-progress", *extra),
                env=_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 2 and f"--out={str(out)!r} is not valid" in done.stderr, done.stderr
        assert {p.name: p.read_text() for p in out.iterdir()} == contents
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        _cli("--config", str(file), "--out", str(empty), "--no-progress"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (empty / "model" / "model.safetensors").is_file()


NATIVE_RUN = r"""
import json, sys
from cocattn.train import train
config = json.loads(sys.argv[1])
train(config, sys.argv[2] + "/new")
config["train"].update(init_from=sys.argv[2] + "/new/model", stage=1)
train(config, sys.argv[2] + "/stage1")
print(sorted(m for m in sys.modules if m == "transformers" or m.startswith(("transformers.", "cocattn.hf"))))
"""


def test_a_native_run_does_not_import_transformers(tmp_path, data_dir):
    """transformers is imported only for a Hugging Face model: a new native GPT and a native CoCA
    model continued at stage 1 (the stage selection lives in cocattn.train.stages) train without it."""
    config = _config(data_dir, steps=2, warmup=1, eval_interval=0, checkpoint_interval=0)
    done = subprocess.run(
        [sys.executable, "-c", NATIVE_RUN, json.dumps(config), str(tmp_path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "stage1" / "model" / "model.safetensors").is_file()


@pytest.mark.slow
def test_repeated_sigkills_at_random_moments_lose_nothing(tmp_path, data_dir):
    """Kill at random moments (mid-step, mid-checkpoint write), resume each time; the
    run ends exactly where an uninterrupted one does."""
    import random

    config = _config(data_dir, steps=80, checkpoint_interval=3, eval_interval=20)
    reference = train(config, tmp_path / "reference")
    file = _write_config(tmp_path / "run.yaml", config)
    run_dir = tmp_path / "killed"
    rng = random.Random(7)
    kills = exact = 0
    for attempt in range(5):
        args = _cli("--config", str(file), "--out", str(run_dir), "--no-progress")
        proc = subprocess.Popen(
            args + (["--resume"] if attempt else []), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        start_step = ckpt.latest_checkpoint(run_dir)
        while proc.poll() is None and ckpt.latest_checkpoint(run_dir) == start_step:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert ckpt.latest_checkpoint(run_dir) is not None  # always a loadable checkpoint
        ckpt.load_checkpoint(ckpt.latest_checkpoint(run_dir))
    result = train(config, run_dir, resume=True) if not (run_dir / "model").exists() else None
    losses = _losses(run_dir)
    exact = int(losses == _losses(tmp_path / "reference"))
    assert kills >= 3 and exact == 1
    if result is not None:
        assert result.final_loss == reference.final_loss


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, data_dir):
    config = _config(data_dir, lr=1e20, min_lr=0.0, warmup=0, grad_clip=0.0, checkpoint_interval=1, eval_interval=0)
    with pytest.raises(NonFiniteLossError, match=r"became (nan|inf) at step \d+.*Last good checkpoint: .*step_"):
        train(config, tmp_path / "run")
    latest = ckpt.latest_checkpoint(tmp_path / "run")
    assert latest is not None and ckpt.load_checkpoint(latest)["step"] >= 1
    assert not (tmp_path / "run" / "model").exists()


def test_clear_errors_for_missing_data_and_mismatched_checkpoints(tmp_path, data_dir):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(_config(tmp_path / "nowhere"), tmp_path / "a")
    with pytest.raises(ValueError, match="data.dir"):
        train({**_config(data_dir), "data": {}}, tmp_path / "a")
    with pytest.raises(ValueError, match="model.vocab_size=300"):
        cfg = _config(data_dir)
        cfg["model"]["vocab_size"] = 300
        train(cfg, tmp_path / "b")
    train(_config(data_dir, steps=5, eval_interval=0), tmp_path / "c")
    other = _config(data_dir, steps=10, eval_interval=0)
    other["model"]["attention"] = "rope"
    with pytest.raises(
        ValueError, match="attention='coca' in the checkpoint does not match the requested attention='rope'"
    ):
        train(other, tmp_path / "c", resume=True)


def test_cli_trains_and_prints_the_resolved_config(tmp_path, data_dir, capsys):
    from cocattn.cli import main

    file = _write_config(tmp_path / "run.yaml", _config(data_dir))
    assert main(["train", "--config", str(file), "--print-config", "train.lr=1e-3"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["lr"] == 1e-3
    code = main(
        [
            "train",
            "--config",
            str(file),
            "--data",
            str(data_dir),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "train.steps=6",
            "train.eval_interval=0",
        ]
    )
    assert code == 0 and "trained 6 steps" in capsys.readouterr().out
    assert main(["train", "--config", str(file), "train.stepz=3"]) == 2
    assert "closest valid: steps" in capsys.readouterr().err


def test_train_throughput_reports_tokens_per_second(data_dir):
    rate = train_throughput(_config(data_dir), steps=3)
    assert 100 < rate < 1e8


# -- scale-out -----------------------------------------------------------------------------------


@pytest.mark.slow  # ~18 s each on 2 shared cores, mostly starting 2 processes
@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_torchrun_two_cpu_processes_match_the_single_process_loss(tmp_path, data_dir, mode):
    """Acceptance: 2 gloo processes, DDP or FSDP2, see the same global batches as one
    process and reach the same loss at every step within 1e-5 (relative; float summation order
    is the only difference)."""
    config = _config(data_dir, steps=6, grad_accum=2, eval_interval=3, checkpoint_interval=3, distributed=mode)
    config["data"]["retrieval_fraction"] = 0.0
    single = train(config, tmp_path / "single")
    file = _write_config(tmp_path / "run.yaml", config)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "cocattn",
        "train",
        "--config",
        str(file),
        "--out",
        str(tmp_path / mode),
        "--no-progress",
    ]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ref, got = _losses(tmp_path / "single"), _losses(tmp_path / mode)
    assert sorted(got) == sorted(ref) == list(range(1, 7))
    for step in ref:
        assert got[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6), (step, got[step], ref[step])
    saved = json.loads((tmp_path / mode / "train_result.json").read_text())
    assert saved["world_size"] == 2 and saved["val_loss"] == pytest.approx(single.val_loss, rel=1e-5)
    model, _ = ckpt.load_model(tmp_path / mode / "model")  # rank 0 wrote a complete model
    ref_model, _ = ckpt.load_model(tmp_path / "single" / "model")
    for (name, a), b in zip(model.state_dict().items(), ref_model.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
