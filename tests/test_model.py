"""GPT model: cached decoding equals the full forward, generation, config validation."""

import pytest
import torch

from cocattn.attention import KINDS
from cocattn.model import GPT, GPTConfig

STATIC = [
    None,
    {"rope_type": "linear", "factor": 4.0},
    {"rope_type": "ntk", "factor": 4.0},
    {"rope_type": "yarn", "factor": 4.0},
    {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0},
]
DYNAMIC = [
    {"rope_type": "dynamic", "factor": 4.0},
    {"rope_type": "longrope", "factor": 4.0, "short_factor": [1.0] * 4, "long_factor": [1.0, 2.0, 4.0, 8.0]},
]


def make(kind, n_layer=2, L0=6, seed=0):
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=61, n_layer=n_layer, n_head=4, n_kv_head=2, n_embd=32, max_seq_len=L0, attention=kind)
    return GPT(cfg).double().eval()


def decode_errors(model, idx, prefill):
    cache = model.new_cache(idx.shape[0])
    model(idx[:, :prefill], cache=cache)
    errs = []
    for t in range(prefill, idx.shape[1]):
        step, _ = model(idx[:, t : t + 1], cache=cache)
        full, _ = model(idx[:, : t + 1])
        errs.append((step[:, -1] - full[:, -1]).abs().max().item())
    return max(errs)


def _ids(r):
    return "none" if r is None else r["rope_type"]


CASES = [(k, r) for k in KINDS for r in (STATIC if k in ("rope", "coca", "coca-strict") else [None])]


@pytest.mark.parametrize("kind, rope", CASES, ids=[f"{k}-{_ids(r)}" for k, r in CASES])
def test_cached_decoding_equals_full_forward(kind, rope):
    model = make(kind)
    model.set_rope_parameters(rope)
    idx = torch.randint(0, 61, (2, 20), generator=torch.Generator().manual_seed(1))
    assert decode_errors(model, idx, prefill=3) <= 1e-10


@pytest.mark.parametrize("kind", ["rope", "coca", "coca-strict"])
@pytest.mark.parametrize("rope", DYNAMIC, ids=_ids)
def test_cached_decoding_exact_under_length_dependent_scaling(kind, rope):
    """Every cached key is rotated with the base for the *current* length (keys are cached
    un-rotated), so one attention layer decodes exactly as a full forward pass, far past L0."""
    model = make(kind, n_layer=1)
    model.set_rope_parameters(rope)
    idx = torch.randint(0, 61, (2, 30), generator=torch.Generator().manual_seed(2))
    assert decode_errors(model, idx, prefill=2) <= 1e-10


@pytest.mark.parametrize("kind", ["rope", "coca", "coca-strict"])
def test_multilayer_dynamic_cache_error_is_small(kind):
    """Deeper layers cache values computed from earlier hidden states, which saw the base of
    their own time: inherent to any KV cache under a length-dependent base. It stays small."""
    model = make(kind, n_layer=2)
    model.set_rope_parameters({"rope_type": "dynamic", "factor": 4.0})
    idx = torch.randint(0, 61, (1, 24), generator=torch.Generator().manual_seed(3))
    assert decode_errors(model, idx, prefill=2) <= 1e-3


def test_coca_cache_holds_half_the_key_state():
    coca, rope = make("coca"), make("rope")
    idx = torch.randint(0, 61, (1, 10))
    sizes = []
    for m in (coca, rope):
        cache = m.new_cache(1)
        m(idx, cache=cache)
        sizes.append(cache.nbytes())
    # rope: k + v = 2d per token per kv head; coca: d/2 + d
    assert sizes[0] * 4 == sizes[1] * 3


@pytest.mark.parametrize("kind", KINDS)
def test_generate_greedy_equals_argmax_without_cache(kind):
    model = make(kind)
    prompt = torch.randint(0, 61, (2, 5), generator=torch.Generator().manual_seed(4))
    out = model.generate(prompt, max_new_tokens=6)
    seq = prompt
    for _ in range(6):
        logits, _ = model(seq)
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)


def test_generate_sampling_is_seeded_and_respects_top_k():
    model = make("coca")
    prompt = torch.randint(0, 61, (1, 4))
    a = model.generate(prompt, 8, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0))
    greedy = model.generate(prompt, 8)
    assert torch.equal(a, greedy)  # top_k=1 is greedy
    b = model.generate(prompt, 8, temperature=1.0, generator=torch.Generator().manual_seed(5))
    c = model.generate(prompt, 8, temperature=1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(b, c)


def test_loss_and_training_step_reduce_loss():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, n_layer=1, n_head=2, n_embd=16, max_seq_len=8, attention="coca"))
    x = torch.randint(0, 32, (4, 8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        _, loss = model(x[:, :-1], x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_attention_maps_are_causal_distributions():
    model = make("coca-strict")
    maps = model.attention_maps(torch.randint(0, 61, (1, 9)))
    assert len(maps) == 2 and maps[0].shape == (1, 4, 9, 9)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(1, 4, 9, dtype=torch.float64))
    assert maps[0].triu(1).abs().max() == 0


def test_config_round_trip_and_errors():
    cfg = GPTConfig(attention="coca", rope_parameters={"rope_type": "default", "rope_theta": 500.0})
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="n_layers.*closest valid: n_layer"):
        GPTConfig.from_dict({"n_layers": 2})
    with pytest.raises(ValueError, match="model.attention"):
        GPTConfig(attention="flash")
    with pytest.raises(ValueError, match="n_kv_head"):
        GPTConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="head_dim"):
        GPTConfig(n_embd=12, n_head=4)
    with pytest.raises(ValueError, match="rope"):
        make("alibi").set_rope_parameters({"rope_type": "dynamic", "factor": 2.0})
    with pytest.raises(ValueError, match="idx"):
        make("rope")(torch.zeros(3, dtype=torch.long))


@pytest.mark.parametrize("kind", ["rope", "coca", "coca-strict", "alibi", "nope"])
def test_the_model_traces_into_one_graph_for_torch_compile(kind):
    """Guarantee: with `train.compile=true` the whole forward is one compiled graph (no graph
    breaks from device-to-host reads of positions), dynamic NTK included, so CoCA's feature maps
    fuse into the surrounding kernels on a GPU."""
    model = make(kind)
    x = torch.randint(0, 61, (2, 16))
    settings = [None, {"rope_type": "dynamic", "factor": 4.0}] if kind not in ("alibi", "nope") else [None]
    for rope in settings:
        if rope:
            model.set_rope_parameters(rope)
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(x)
        assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    torch._dynamo.reset()


def test_logits_from_returns_the_tail_of_the_full_logits():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=32, max_seq_len=16)).eval()
    idx = torch.randint(0, 50, (2, 12))
    full, _ = model(idx)
    for start in (-1, 5, 0):
        part, _ = model(idx, logits_from=start)
        torch.testing.assert_close(part, full[:, start:])
    for bad in (12, -13, 1.5):
        with pytest.raises(ValueError, match="logits_from"):
            model(idx, logits_from=bad)
    with pytest.raises(ValueError, match="targets"):
        model(idx, idx, logits_from=-1)


@pytest.mark.parametrize("kind", ["coca", "coca-strict"])
def test_a_compiled_training_step_equals_the_eager_one(kind):
    """`train.compile=true` (the GPU presets): CoCA's hand-written autograd node compiles, forward
    and backward, to the eager numbers."""
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=97, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, max_seq_len=32, attention=kind)
    eager, compiled = GPT(cfg), GPT(cfg)
    compiled.load_state_dict(eager.state_dict())
    x = torch.randint(0, 97, (2, 33))
    losses = []
    for model in (eager, torch.compile(compiled)):
        _, loss = model(x[:, :-1], x[:, 1:])
        loss.backward()
        losses.append(loss.detach())
    torch._dynamo.reset()
    torch.testing.assert_close(losses[1], losses[0])
    for a, b in zip(eager.parameters(), compiled.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6)
