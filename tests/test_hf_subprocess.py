"""The Hugging Face round trip as users run it: `cocattn convert llama` by the
CLI, then every consumer in a NEW Python process, from the directory the CLI wrote.

In one process a module-level cache filled by an earlier in-process model hid a bug: a model loaded
with ``from_pretrained`` in a fresh interpreter built its RoPE frequencies on transformers' meta
device and failed ("Cannot copy out of meta tensor"). Every test here therefore runs the consumer
in a subprocess that imports nothing before loading. Tiny configs keep the module at ~30 s on
2 CPU cores."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from conftest import build_text_data
from cocattn import files

SEQ = 32
PROMPT = [5, 17, 42, 9, 77, 3, 120]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=_env(), timeout=timeout)


def _cocattn(*args: str) -> subprocess.CompletedProcess:
    return _run("-m", "cocattn", *args)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return build_text_data(tmp_path_factory.mktemp("data"), vocab_size=320, eval_documents=4)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """A tiny random LlamaForCausalLM saved with transformers (data tokenizer beside it), converted
    by the CLI in a subprocess. Returns (llama_dir, coca_dir)."""
    root = tmp_path_factory.mktemp("hf")
    vocab = int(files.load_json(data_dir / "manifest.json")["tokenizer"]["vocab_size"])
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2 * SEQ,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    src = root / "llama"
    LlamaForCausalLM(config).save_pretrained(src)
    (src / "tokenizer.json").write_bytes((data_dir / "tokenizer.json").read_bytes())
    dst = root / "coca"
    done = _cocattn("convert", "llama", str(src), str(dst))
    assert done.returncode == 0, done.stderr
    assert (dst / "model.safetensors").is_file() and (dst / "tokenizer.json").is_file()
    return src, dst


_LOAD_SCRIPT = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
import cocattn.hf  # registers coca_llama; imported first, as users do
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor([json.loads(sys.argv[2])])
with torch.no_grad():
    logits = model(ids).logits[0]
    cached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)[0, ids.shape[1]:]
    uncached = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)[0, ids.shape[1]:]
print(json.dumps({"type": type(model).__name__, "inv_freq": model.model.rotary_emb.inv_freq.tolist(),
                  "logits": logits.tolist(), "cached": cached.tolist(), "uncached": uncached.tolist()}))
"""


def test_converted_model_loads_runs_and_generates_in_a_new_process(converted) -> None:
    """from_pretrained + forward + generate in a fresh interpreter equal the in-process conversion."""
    from cocattn.hf import convert_llama

    src, dst = converted
    done = _run("-c", _LOAD_SCRIPT, str(dst), json.dumps(PROMPT))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["type"] == "CocaLlamaForCausalLM"
    head_dim = 32 // 4
    expected_freq = [10000.0 ** (-2 * j / head_dim) for j in range(head_dim // 2)]
    assert out["inv_freq"] == pytest.approx(expected_freq, rel=1e-6)  # not uninitialised memory
    reference = convert_llama(src).eval()
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        want = reference(ids).logits[0]
        greedy = reference.generate(ids, max_new_tokens=6, do_sample=False)[0, ids.shape[1] :].tolist()
    got = torch.tensor(out["logits"])
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5, rtol=0)
    assert out["cached"] == out["uncached"] == greedy


def test_cli_eval_ppl_of_the_converted_model_in_a_new_process(converted, data_dir, tmp_path) -> None:
    """`cocattn eval ppl DST` (a new process) gives a finite perplexity of a random model."""
    _, dst = converted
    out = tmp_path / "ppl.json"
    done = _cocattn(
        "eval",
        "ppl",
        str(dst),
        "--data",
        str(data_dir),
        "--lengths",
        str(SEQ),
        "--stride",
        str(SEQ),
        "--max-docs",
        "2",
        "--device",
        "cpu",
        "--no-progress",
        "--ci-resamples",
        "50",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    values = record["values"] if "values" in record else record["results"][0]["values"]
    vocab = int(files.load_json(data_dir / "manifest.json")["tokenizer"]["vocab_size"])
    assert len(values) == 1 and math.isfinite(values[0]) and 1 < values[0] < 10 * vocab


def test_cli_train_init_from_the_converted_model_then_eval_in_new_processes(converted, data_dir, tmp_path) -> None:
    """`cocattn train --init-from DST --stage 1` (2 steps) in a new process, then the trained model
    loads in another new process and only its T projections moved."""
    _, dst = converted
    config = {
        "name": "continued",
        "model": {"max_seq_len": SEQ},
        "data": {"dir": str(data_dir)},
        "train": {
            "batch_size": 2,
            "steps": 2,
            "lr": 1e-2,
            "warmup": 0,
            "weight_decay": 0.0,
            "log_interval": 1,
            "eval_interval": 0,
            "checkpoint_interval": 2,
            "threads": 1,
        },
    }
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    done = _cocattn(
        "train", "--config", str(file), "--init-from", str(dst), "--stage", "1", "--out", str(run), "--no-progress"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 2 steps" in done.stdout
    script = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
import cocattn.hf
a = dict(AutoModelForCausalLM.from_pretrained(sys.argv[1]).named_parameters())
b = dict(AutoModelForCausalLM.from_pretrained(sys.argv[2]).named_parameters())
with torch.no_grad():
    finite = bool(torch.isfinite(AutoModelForCausalLM.from_pretrained(sys.argv[2])(torch.tensor([[5, 6, 7]])).logits).all())
print(json.dumps({"changed": sorted(n for n in a if not torch.equal(a[n], b[n])), "finite": finite}))
"""
    done = _run("-c", script, str(dst), str(run / "model"))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["finite"]
    assert out["changed"] == [f"model.layers.{i}.self_attn.t_proj.weight" for i in range(2)]


_EVIL = """
import pathlib
pathlib.Path(__file__).with_name("RAN").write_text("the model directory's code ran")
from transformers import LlamaConfig, LlamaForCausalLM
class EvilConfig(LlamaConfig):
    model_type = "evil_llama"
class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
"""


@pytest.mark.parametrize("where", ["config", "tokenizer_config", "py_only"])
def test_a_model_directory_with_custom_code_is_refused_and_its_code_never_runs(converted, data_dir, tmp_path, where):
    """A HF directory with `auto_map` and a `modeling_*.py` would make transformers ask "run the
    custom code? [y/N]". Every loading path (eval, analyze, train --init-from, convert) refuses
    before transformers sees the directory, even when the user answers y, and the code never runs."""
    import shutil

    src, _ = converted
    evil = tmp_path / "evil"
    shutil.copytree(src, evil)
    (evil / "modeling_evil.py").write_text(_EVIL)
    auto_map = {"AutoConfig": "modeling_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    if where == "config":
        config = json.loads((evil / "config.json").read_text())
        # a model type transformers does not know: only the directory's code could build it
        (evil / "config.json").write_text(json.dumps({**config, "model_type": "evil_llama", "auto_map": auto_map}))
    elif where == "tokenizer_config":
        (evil / "tokenizer_config.json").write_text(
            json.dumps({"auto_map": {"AutoTokenizer": ["modeling_evil.T", None]}})
        )
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "model": {"max_seq_len": SEQ},
                "data": {"dir": str(data_dir)},
                "train": {"batch_size": 2, "steps": 1, "warmup": 0, "threads": 1},
            }
        )
    )
    commands = {
        "eval": [
            "eval",
            "ppl",
            str(evil),
            "--data",
            str(data_dir),
            "--lengths",
            str(SEQ),
            "--stride",
            str(SEQ),
            "--max-docs",
            "1",
            "--no-progress",
            "--device",
            "cpu",
        ],
        "analyze": [
            "analyze",
            "attention",
            str(evil),
            "--data",
            str(data_dir),
            "--length",
            str(SEQ),
            "--out",
            str(tmp_path / "an"),
            "--no-progress",
        ],
        "train": [
            "train",
            "--config",
            str(config),
            "--init-from",
            str(evil),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ],
        "convert": ["convert", "llama", str(evil), str(tmp_path / "converted")],
    }
    if where != "config":  # the other markers through one path (each command costs a process start)
        commands = {"eval": commands["eval"]}
    for name, argv in commands.items():
        done = subprocess.run(
            [sys.executable, "-m", "cocattn", *argv],
            input="y\ny\n",
            capture_output=True,
            text=True,
            env=_env(),
            timeout=240,
        )
        assert done.returncode == 2, (name, done.stdout[-2000:], done.stderr[-2000:])
        assert "never executes code from a model directory" in done.stderr and str(evil) in done.stderr, name
        assert not (evil / "RAN").exists(), name
    assert not (tmp_path / "run" / "model").exists() and not (tmp_path / "converted").exists()
