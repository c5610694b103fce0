"""CoCA's training options (cocattn.attention.coca_options): what each does to the model, that the
defaults change nothing, and that each round-trips through the config, `cocattn train`'s model
directory and the transformers model, loaded in a new process."""

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

from conftest import build_text_data
from cocattn.attention.coca_options import CocaOptions
from cocattn.lab import Recipe, fit, make_task
from cocattn.lab.diagnostics import diagnose
from cocattn.tasks.synthetic import generate
from cocattn.model import GPT, GPTConfig
from cocattn.train.schedule import param_groups

ROOT = Path(__file__).resolve().parents[1]
ALL_OPTIONS = {
    "coca_tau": "softplus",
    "coca_t_init_std": 0.05,
    "coca_q_init_std": 0.03,
    "coca_t_bias": 0.2,
    "coca_score_scale": 3.0,
    "coca_t_lr_mult": 2.0,
}


def _gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=97, n_layer=2, n_head=2, n_embd=32, max_seq_len=32, attention="coca")
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def _idx(batch: int = 2, length: int = 20) -> torch.Tensor:
    return torch.randint(0, 97, (batch, length), generator=torch.Generator().manual_seed(1))


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")


# -- the defaults -------------------------------------------------------------------------------


def test_default_options_add_no_parameter_and_draw_the_same_weights() -> None:
    plain = _gpt(attention="coca")
    assert plain.config.coca_options == CocaOptions() and plain.config.coca_options.is_default()
    names = set(plain.state_dict())
    assert not any("score_log_scale" in n or "t_proj.bias" in n for n in names)
    # an init option rescales the same draws: T is 4x the default's, every other weight identical
    scaled = _gpt(attention="coca", coca_t_init_std=0.08)
    for name, value in plain.state_dict().items():
        other = scaled.state_dict()[name]
        if name.endswith("t_proj.weight"):
            torch.testing.assert_close(other, value * 4, rtol=1e-6, atol=0)
        else:
            assert torch.equal(other, value), name


def test_options_are_ignored_by_other_kinds() -> None:
    rope = _gpt(attention="rope", **ALL_OPTIONS)
    assert set(rope.state_dict()) == set(_gpt(attention="rope").state_dict())
    assert param_groups(rope, 0.1)[0]["lr_mult"] == 1.0 and len(param_groups(rope, 0.1)) == 2


@pytest.mark.parametrize(
    "field, value, accepted",
    [
        ("coca_tau", "tanh", "'relu', 'softplus'"),
        ("coca_t_init_std", 0.0, "positive"),
        ("coca_score_scale", -1.0, "positive"),
        ("coca_t_lr_mult", float("nan"), "positive"),
        ("coca_t_bias", float("inf"), "finite"),
    ],
)
def test_bad_option_values_name_the_field(field: str, value, accepted: str) -> None:
    with pytest.raises(ValueError, match=field) as err:
        GPTConfig(attention="coca", **{field: value})
    assert accepted in str(err.value)


# -- what each option does ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["coca", "coca-strict"])
def test_score_scale_equals_the_q_projection_scaled_by_its_root(kind: str) -> None:
    """Same function class: a per-head score factor c is the Q projection times sqrt(c)."""
    scaled = _gpt(attention=kind, coca_score_scale=3.0)
    plain = _gpt(attention=kind)
    with torch.no_grad():
        for block in plain.blocks:
            block.attn.q_proj.weight.mul_(math.sqrt(3.0))
    torch.testing.assert_close(scaled(_idx())[0], plain(_idx())[0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_gpt(attention=kind)(_idx())[0], plain(_idx())[0])


def test_t_bias_offsets_every_tau_and_softplus_zeroes_none() -> None:
    task = make_task("copy", train_length=32, segment=2)
    batch = generate(task, 32, 8, 0)
    cfg = dict(vocab_size=task.vocab_size)
    zero = [layer["tau_zero"] for layer in diagnose(_gpt(**cfg), batch)]
    assert all(0.3 < z < 0.7 for z in zero)  # relu of a zero-mean sum: about half
    biased = [layer["tau_zero"] for layer in diagnose(_gpt(**cfg, coca_t_bias=5.0), batch)]
    assert biased == [0.0, 0.0]
    model = _gpt(**cfg, coca_tau="softplus")
    _q, tau, _v = model.blocks[0].attn.project(model.blocks[0].ln1(model.wte(batch.inputs)))
    assert tau.shape[-1] == model.config.head_dim // 2 and bool((tau > 0).all())


@pytest.mark.parametrize("options", [{"coca_tau": "softplus"}, ALL_OPTIONS])
def test_cached_generation_equals_recomputation_with_options(options: dict) -> None:
    model = _gpt(**options)
    idx = _idx(1, 12)
    full = model(idx)[0]
    cache = model.new_cache()
    first, _ = model(idx[:, :7], cache=cache)
    rest, _ = model(idx[:, 7:], cache=cache)
    torch.testing.assert_close(torch.cat([first, rest], 1), full, rtol=1e-5, atol=1e-5)


def test_t_lr_mult_scales_the_first_adam_step_of_t_and_nothing_else() -> None:
    task = make_task("copy", train_length=32, segment=2)
    recipe = Recipe(steps=1, batch_size=4, warmup=0, curve_every=0)
    cfg = GPTConfig(vocab_size=task.vocab_size, n_layer=1, n_head=2, n_embd=32, max_seq_len=32, attention="coca")
    start = _gpt(vocab_size=task.vocab_size, n_layer=1).state_dict()
    moved = {}
    for mult in (1.0, 4.0):
        model = fit(GPTConfig(**{**cfg.to_dict(), "coca_t_lr_mult": mult}), task, recipe, seed=0).model
        moved[mult] = {n: (p - start[n]).abs().sum().item() for n, p in model.state_dict().items()}
    assert moved[4.0]["blocks.0.attn.t_proj.weight"] == pytest.approx(
        4 * moved[1.0]["blocks.0.attn.t_proj.weight"], rel=1e-4
    )
    assert moved[4.0]["blocks.0.attn.q_proj.weight"] == pytest.approx(
        moved[1.0]["blocks.0.attn.q_proj.weight"], rel=1e-6
    )


# -- round trips, in new processes --------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return build_text_data(tmp_path_factory.mktemp("data"), vocab_size=320, eval_documents=4)


_LOAD_NATIVE = r"""
import json, sys, torch
from cocattn.checkpoint import load_model
model, _ = load_model(sys.argv[1])
ids = torch.tensor([json.loads(sys.argv[2])])
print(json.dumps({"config": model.config.to_dict(), "logits": model(ids)[0][0, -1].tolist(),
                  "names": sorted(model.state_dict())}))
"""


def test_cli_train_with_every_option_then_load_in_a_new_process(data_dir: Path, tmp_path: Path) -> None:
    config = {
        "name": "options",
        "model": {"vocab_size": None, "n_layer": 2, "n_head": 2, "n_embd": 32, "max_seq_len": 64, "attention": "coca"},
        "data": {"dir": str(data_dir)},
        "train": {
            "batch_size": 4,
            "steps": 3,
            "warmup": 1,
            "eval_interval": 3,
            "eval_iters": 1,
            "checkpoint_interval": 3,
            "threads": 1,
            "progress": False,
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    overrides = [f"model.{k}={v}" for k, v in ALL_OPTIONS.items()]
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "cocattn", "train", "--config", str(path), "--out", str(run), *overrides],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    ids = [5, 17, 42, 9, 77, 3]
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD_NATIVE, str(run / "model"), json.dumps(ids)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    out = json.loads(loaded.stdout)
    assert {k: out["config"][k] for k in ALL_OPTIONS} == ALL_OPTIONS
    assert "blocks.0.attn.score_log_scale" in out["names"] and "blocks.0.attn.t_proj.bias" in out["names"]
    from cocattn.checkpoint import load_model

    here, _ = load_model(run / "model")
    torch.testing.assert_close(torch.tensor(out["logits"]), here(torch.tensor([ids]))[0][0, -1].detach())


_LOAD_HF = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM
import cocattn.hf
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor([json.loads(sys.argv[2])])
with torch.no_grad():
    logits = model(ids).logits[0, -1]
    cached = model.generate(ids, max_new_tokens=5, do_sample=False, use_cache=True)[0, ids.shape[1]:]
    uncached = model.generate(ids, max_new_tokens=5, do_sample=False, use_cache=False)[0, ids.shape[1]:]
c = model.config
print(json.dumps({"options": {k: getattr(c, k) for k in sys.argv[3].split(",")}, "logits": logits.tolist(),
                  "cached": cached.tolist(), "uncached": uncached.tolist()}))
"""


TINY_LLAMA = dict(
    hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, data_dir) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("llama")
    config = LlamaConfig(
        **TINY_LLAMA,
        vocab_size=320,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(root / "llama")
    (root / "llama" / "tokenizer.json").write_bytes((data_dir / "tokenizer.json").read_bytes())
    return root / "llama"


def _convert(src: Path, dst: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cocattn", "convert", "llama", str(src), str(dst), *flags],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_convert_refuses_a_deviation_unless_asked_then_loads_in_a_new_process(
    llama_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    refused = _convert(llama_dir, tmp_path / "a", "--coca", "tau=softplus", "--coca", "score_scale=2")
    assert refused.returncode == 2 and "coca_tau=softplus" in refused.stderr and "--allow-deviation" in refused.stderr
    assert not (tmp_path / "a").exists()
    transfer = _convert(llama_dir, tmp_path / "t", "--transfer", "--data", str(data_dir), "--coca", "tau=softplus")
    assert transfer.returncode == 2 and "coca_tau=softplus" in transfer.stderr and not (tmp_path / "t").exists()
    biased = _convert(llama_dir, tmp_path / "b", "--coca", "t_bias=0.1")
    assert biased.returncode == 2 and "coca_t_bias=0.1" in biased.stderr
    # options of the paper's function class need no flag
    same = _convert(llama_dir, tmp_path / "c", "--coca", "score_scale=2", "--coca", "t_lr_mult=3")
    assert same.returncode == 0, same.stderr
    flags = [f"--coca={k.removeprefix('coca_')}={v}" for k, v in ALL_OPTIONS.items()]
    done = _convert(llama_dir, tmp_path / "d", *flags, "--allow-deviation")
    assert done.returncode == 0, done.stderr
    ids = [5, 17, 42, 9, 77, 3]
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD_HF, str(tmp_path / "d"), json.dumps(ids), ",".join(ALL_OPTIONS)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert loaded.returncode == 0, loaded.stderr
    out = json.loads(loaded.stdout)
    assert out["options"] == ALL_OPTIONS
    assert out["cached"] == out["uncached"]
    from transformers import AutoModelForCausalLM

    import cocattn.hf  # noqa: F401  (registers coca_llama)

    from transformers import LlamaForCausalLM

    here = AutoModelForCausalLM.from_pretrained(tmp_path / "d").eval()
    attn = here.model.layers[0].self_attn
    source = LlamaForCausalLM.from_pretrained(llama_dir).model.layers[0].self_attn
    # loading keeps the converted weights: the init options apply to fresh weights only
    assert torch.equal(attn.t_proj.weight, source.k_proj.weight) and torch.equal(
        attn.q_proj.weight, source.q_proj.weight
    )
    assert torch.allclose(attn.score_log_scale, torch.full((4,), math.log(3.0)))
    assert torch.allclose(attn.t_proj.bias, torch.full_like(attn.t_proj.bias, 0.2))
    with torch.no_grad():
        torch.testing.assert_close(torch.tensor(out["logits"]), here(torch.tensor([ids])).logits[0, -1])


def test_the_score_scale_trains_with_q_in_the_papers_stages() -> None:
    from cocattn.train.stages import stage_of_parameter

    name = "model.layers.3.self_attn.score_log_scale"
    assert [stage_of_parameter(name, s) for s in (1, 2, 3)] == [False, True, True]
    assert stage_of_parameter("blocks.0.attn.score_log_scale", 2) and not stage_of_parameter(
        "blocks.0.attn.o_proj.weight", 2
    )


def test_the_transformers_model_puts_t_in_its_own_learning_rate_group() -> None:
    from cocattn.hf.config import CocaLlamaConfig
    from cocattn.hf.modeling import CocaLlamaForCausalLM

    config = CocaLlamaConfig(**TINY_LLAMA, vocab_size=64, max_position_embeddings=32, coca_t_lr_mult=4.0)
    model = CocaLlamaForCausalLM(config)
    groups = {g["lr_mult"]: g["params"] for g in param_groups(model, 0.1) if g["lr_mult"] != 1.0}
    t_weights = {id(layer.self_attn.t_proj.weight) for layer in model.model.layers}
    assert list(groups) == [4.0] and {id(p) for p in groups[4.0]} == t_weights
