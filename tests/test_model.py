"""GPT model: cached decoding equals the full forward, generation, config validation."""

import pytest
import torch

from cocattn.attention import KINDS, Attention, LayerCache
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


# -- what the KV cache computes, and how exactly ------------------------------------------------
#
# Two statements, both in float64 and both exact up to rounding:
# 1. Per layer: given identical inputs, one attention layer's cached step equals the uncached
#    layer on the whole prefix, for every kind and every scaling, dynamic NTK and LongRoPE
#    included (keys are cached un-rotated and rotated with the base of the current length).
#    Asserted at 1e-10; measured: <= 2.3e-16 (one ulp of outputs of size ~0.4).
# 2. Whole model: the cached decode equals the *own-time recursion* (``own_time_logits``: the
#    state entering layer l+1 at position s is layer l applied to positions 0..s at length s+1),
#    within ``rounding_bound``, a float64 bound derived from the shapes (below). Where the
#    frequencies do not depend on the length, the own-time recursion IS the full forward, so the
#    cached decode equals the full forward within the same bound. Under dynamic NTK / LongRoPE the
#    deeper layers' cached keys and values were computed from states of their own time (a
#    shorter length, another base): a genuine difference from re-running the full forward,
#    inherent to any KV cache of more than one layer, which is therefore not a tolerance; the
#    test shows it is many orders above rounding so that the exactness check is not vacuous.
# Negative controls: a cache that lost one entry (every later key one position off) and a base
# one length step stale are each detected by far more than the tolerances (measured below).

U64 = torch.finfo(torch.float64).eps / 2  # unit roundoff u = 2^-53


def gamma(k: int) -> float:
    """Higham's gamma_k = k u / (1 - k u): a float64 sum of k products x_i y_i errs by at most
    gamma_k * sum |x_i y_i| (Accuracy and Stability of Numerical Algorithms, Thm 3.1 / eq. 3.5)."""
    return k * U64 / (1 - k * U64)


def rounding_bound(model, length, scale):
    """Bound on |cached - uncached| for float64 logits of ``model`` at sequence ``length``.

    Both paths evaluate the same function with the same operations, in different groupings (the
    cached step reduces over a buffer, the full pass over a matrix; SDPA may block differently).
    Each output is a chain of dot products; per layer the reductions along the path are
    LayerNorm mean and variance (2 x n_embd), the q/k/v projections (n_embd), the scores
    (head_dim), the softmax normaliser and the probability-weighted values (length each), o_proj
    (n_head x head_dim), the MLP up (n_embd) and down (hidden) projections; then ln_f (2 x n_embd)
    and lm_head (n_embd). Summing their lengths gives K, and each path errs by at most gamma_K
    relative to ``scale`` (the largest sum |x_i y_i| of the final dot product, so a relative error
    of the last hidden state becomes an absolute error of the logits). A relative error entering a
    pre-norm block leaves it amplified by at most 1 + Lip(block) through the residual ``x + f(x)``;
    with the 0.02-std initialisation the branch is a contraction (Lip <= 1), so the growth is at
    most 2 per layer: 2^L. Two paths: a factor 2. For the 3-layer, length-24 models below:
    K = 1128, bound = 2 * 1.25e-13 * 8 * scale = 2.0e-12 * scale = 1.4e-12 (scale 0.72, logits up
    to 0.71); measured differences are <= 4.4e-16 (2 ulp), and a cache that lost one entry errs
    by 0.03, 2e10 times the bound."""
    cfg = model.config
    hidden = int(cfg.mlp_ratio * cfg.n_embd)
    per_layer = (
        2 * cfg.n_embd + cfg.n_embd + cfg.head_dim + 2 * length + cfg.n_head * cfg.head_dim + cfg.n_embd + hidden
    )
    k = cfg.n_layer * per_layer + 3 * cfg.n_embd
    return 2 * gamma(k) * 2**cfg.n_layer * scale


def last_dot_scale(model, idx):
    """max over positions and vocabulary of sum_i |ln_f(h)_i W_ji|: the size the lm_head's rounding
    is relative to."""
    with torch.no_grad():
        h = model.wte(idx)
        for block in model.blocks:
            h = block(h)
        return (model.ln_f(h).abs() @ model.lm_head.weight.abs().T).max().item()


def cached_logits(model, idx, prefill, drop_one=False):
    """Logits of positions prefill..T-1 decoded one token at a time with the KV cache.
    ``drop_one``: a deliberately wrong cache that lost its last prompt entry (negative control)."""
    with torch.no_grad():
        cache = model.new_cache(idx.shape[0])
        model(idx[:, :prefill], cache=cache)
        if drop_one:
            for layer in cache.layers:
                layer.length -= 1
        return torch.cat([model(idx[:, t : t + 1], cache=cache)[0] for t in range(prefill, idx.shape[1])], dim=1)


def full_logits(model, idx, prefill):
    """The last logits of a full (uncached) forward pass over every prefix idx[:, :t+1]."""
    with torch.no_grad():
        return torch.cat([model(idx[:, : t + 1])[0][:, -1:] for t in range(prefill, idx.shape[1])], dim=1)


def own_time_logits(model, idx, prefill):
    """What a KV cache computes, written without one: the prompt's states come from one uncached
    pass over idx[:, :prefill]; the state entering layer l+1 at a later position s is block l run
    uncached on the layer-l states of positions 0..s (so at length s+1, with that length's base)."""
    with torch.no_grad():
        h = model.wte(idx)
        for block in model.blocks:
            rows = [block(h[:, :prefill])] + [block(h[:, : s + 1])[:, -1:] for s in range(prefill, idx.shape[1])]
            h = torch.cat(rows, dim=1)
        return model.lm_head(model.ln_f(h))[:, prefill:]


def decode_errors(model, idx, prefill):
    """max |cached - full forward| over the decoded positions."""
    return (cached_logits(model, idx, prefill) - full_logits(model, idx, prefill)).abs().max().item()


def _ids(r):
    return "none" if r is None else r["rope_type"]


ROPE_KINDS = ("rope", "coca", "coca-strict")
CASES = [(k, r) for k in KINDS for r in (STATIC if k in ROPE_KINDS else [None])]
ALL_CASES = [(k, r) for k in KINDS for r in (STATIC + DYNAMIC if k in ROPE_KINDS else [None])]


def _layer(kind, rope, L0=6):
    torch.manual_seed(0)
    return Attention(32, 4, 2, kind=kind, rope=rope, training_length=L0).double().eval()


@pytest.mark.parametrize("kind, rope", ALL_CASES, ids=[f"{k}-{_ids(r)}" for k, r in ALL_CASES])
def test_one_cached_attention_layer_equals_the_uncached_layer(kind, rope):
    """Statement 1: per layer, identical inputs, every kind and scaling: exact to 1e-10 (measured
    <= 2.3e-16), prompt and every decoded step, far past the training length (6 -> 30)."""
    attn = _layer(kind, rope)
    x = torch.randn(2, 30, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    prefill = 3
    with torch.no_grad():
        cache = LayerCache()
        errs = [(attn(x[:, :prefill], cache=cache) - attn(x[:, :prefill])).abs().max().item()]
        for t in range(prefill, x.shape[1]):
            errs.append((attn(x[:, t : t + 1], cache=cache)[:, -1] - attn(x[:, : t + 1])[:, -1]).abs().max().item())
        assert cache.length == x.shape[1]
        # negative control: a cache that lost one entry (later keys one position off, one key missing)
        bad = LayerCache()
        attn(x[:, :prefill], cache=bad)
        bad.length -= 1
        wrong = (
            (attn(x[:, prefill : prefill + 1], cache=bad)[:, -1] - attn(x[:, : prefill + 1])[:, -1]).abs().max().item()
        )
    assert max(errs) <= 1e-10
    assert wrong > 1e-6  # measured ~0.2 for every kind


@pytest.mark.parametrize("kind", ROPE_KINDS)
def test_one_cached_layer_uses_the_base_of_the_current_length(kind):
    """Dynamic NTK: the cached step at length n equals a plain RoPE layer whose base is
    transformers' dynamic base for n, computed here independently (1e-10), and differs from the
    base for n - 1 (a cache one length step stale) by far more than the tolerance. Measured: <= 4.4e-17
    against the right base; 5.5e-5 (coca-strict), 8.1e-5 (coca), 2.3e-4 (rope) against the stale one."""
    L0, factor, n = 6, 4.0, 30
    attn = _layer(kind, {"rope_type": "dynamic", "factor": factor}, L0)
    d = attn.head_dim

    def fixed_base(length):
        base = attn.rope.rope_theta * (factor * length / L0 - (factor - 1)) ** (d / (d - 2))
        layer = _layer(kind, {"rope_type": "default", "rope_theta": base}, L0)
        layer.load_state_dict(attn.state_dict())
        return layer

    x = torch.randn(1, n, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        cache = LayerCache()
        attn(x[:, : n - 1], cache=cache)
        step = attn(x[:, n - 1 :], cache=cache)[:, -1]
        right = fixed_base(n)(x)[:, -1]
        stale = fixed_base(n - 1)(x)[:, -1]
    assert (step - right).abs().max().item() <= 1e-10
    assert (step - stale).abs().max().item() > 1e-6


@pytest.mark.parametrize("kind, rope", ALL_CASES, ids=[f"{k}-{_ids(r)}" for k, r in ALL_CASES])
def test_cached_decoding_equals_the_own_time_recursion(kind, rope):
    """Statement 2: three layers, far past the training length, within the derived float64 bound;
    a cache that lost one entry is detected by more than 1e4 times the bound."""
    model = make(kind, n_layer=3)
    model.set_rope_parameters(rope)
    idx = torch.randint(0, 61, (2, 24), generator=torch.Generator().manual_seed(3))
    bound = rounding_bound(model, idx.shape[1], last_dot_scale(model, idx))
    cached = cached_logits(model, idx, prefill=3)
    assert (cached - own_time_logits(model, idx, prefill=3)).abs().max().item() <= bound
    wrong = cached_logits(model, idx, prefill=3, drop_one=True)
    assert (wrong - own_time_logits(model, idx, prefill=3)).abs().max().item() > 1e4 * bound


@pytest.mark.parametrize("kind, rope", CASES, ids=[f"{k}-{_ids(r)}" for k, r in CASES])
def test_cached_decoding_equals_full_forward(kind, rope):
    """Length-independent frequencies: the own-time recursion is the full forward, so the cached
    decode equals the full forward within the derived float64 bound."""
    model = make(kind, n_layer=3)
    model.set_rope_parameters(rope)
    idx = torch.randint(0, 61, (2, 20), generator=torch.Generator().manual_seed(1))
    bound = rounding_bound(model, idx.shape[1], last_dot_scale(model, idx))
    assert decode_errors(model, idx, prefill=3) <= bound


@pytest.mark.parametrize("kind", ROPE_KINDS)
@pytest.mark.parametrize("rope", DYNAMIC, ids=_ids)
def test_cached_decoding_exact_under_length_dependent_scaling(kind, rope):
    """One layer: every cached key is rotated with the base for the *current* length (keys are
    cached un-rotated), so the model decodes as a full forward pass, far past L0, within the bound."""
    model = make(kind, n_layer=1)
    model.set_rope_parameters(rope)
    idx = torch.randint(0, 61, (2, 30), generator=torch.Generator().manual_seed(2))
    bound = rounding_bound(model, idx.shape[1], last_dot_scale(model, idx))
    assert decode_errors(model, idx, prefill=2) <= bound


@pytest.mark.parametrize("kind", ROPE_KINDS)
@pytest.mark.parametrize("rope", DYNAMIC, ids=_ids)
def test_multilayer_dynamic_cache_differs_from_recomputation_by_design(kind, rope):
    """With more than one layer and a length-dependent base, the cached decode is the own-time
    recursion (tested above), not the full forward: deeper layers keep keys and values computed
    from states of their own, shorter, length. That gap is a property of KV caching, many orders
    above rounding (which is why it is no tolerance), and zero for length-independent scalings.
    Measured (bound 4.8e-13): 2.7e-8 (coca-strict, longrope) to 5.1e-6 (rope, longrope)."""
    model = make(kind, n_layer=2)
    model.set_rope_parameters(rope)
    idx = torch.randint(0, 61, (1, 24), generator=torch.Generator().manual_seed(3))
    bound = rounding_bound(model, idx.shape[1], last_dot_scale(model, idx))
    gap = (own_time_logits(model, idx, 2) - full_logits(model, idx, 2)).abs().max().item()
    assert gap > 1e3 * bound
    assert decode_errors(model, idx, prefill=2) > 1e3 * bound


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
