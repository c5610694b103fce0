"""Attention core: fast paths equal the paper's definitions, CoCA's invariances, dtypes, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cocattn.attention import alibi_attention, coca_attention, nope_attention, rope_attention, tie_t
from cocattn.attention import reference as R

SCALINGS = [
    None,
    {"rope_type": "linear", "factor": 2.0},
    {"rope_type": "ntk", "factor": 4.0},
    {"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 4},
    {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4},
    {
        "rope_type": "llama3",
        "factor": 8.0,
        "original_max_position_embeddings": 4,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "rope_theta": 500000.0,
    },
    {
        "rope_type": "longrope",
        "factor": 4.0,
        "original_max_position_embeddings": 4,
        "short_factor": [1.0, 1.1, 1.2, 1.3],
        "long_factor": [1.0, 2.0, 3.0, 4.0],
    },
]
COCA = {"slack": R.coca_slack_reference, "strict": R.coca_strict_reference}


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def inputs(b=2, h=4, hkv=2, n=7, d=8, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*s, generator=g, dtype=dtype) for s in ((b, h, n, d), (b, hkv, n, d), (b, hkv, n, d)))


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("rope", SCALINGS, ids=lambda r: "none" if r is None else r["rope_type"])
@pytest.mark.parametrize("n, offset", [(7, 0), (5, 3), (1, 0), (9, 11)])
def test_coca_fast_equals_reference(variant, rope, n, offset):
    q, t, v = inputs(n=n)
    pos = torch.arange(n) + offset
    fast = coca_attention(q, t, v, variant=variant, positions=pos, rope=rope)
    slow = COCA[variant](q, t, v, positions=pos, rope=rope)
    assert rel_err(fast, slow) <= 1e-10


@pytest.mark.parametrize("rope", SCALINGS, ids=lambda r: "none" if r is None else r["rope_type"])
def test_rope_fast_equals_reference(rope):
    q, k, v = inputs(n=9)
    pos = torch.arange(9) + 2
    assert (
        rel_err(rope_attention(q, k, v, positions=pos, rope=rope), R.rope_reference(q, k, v, positions=pos, rope=rope))
        <= 1e-10
    )


@pytest.mark.parametrize("heads", [4, 6])  # power of two and not
def test_alibi_and_nope_equal_reference(heads):
    q, k, v = inputs(h=heads, hkv=2, n=11)
    ref = R.alibi_reference(q, k, v)
    assert rel_err(alibi_attention(q, k, v), ref) <= 1e-10
    # bias built a few queries at a time gives the same result (bounded memory at long N)
    assert rel_err(alibi_attention(q, k, v, block_elements=3 * heads * 11), ref) <= 1e-10
    assert rel_err(nope_attention(q, k, v), R.nope_reference(q, k, v)) <= 1e-10


@pytest.mark.parametrize("variant", ["slack", "strict"])
def test_gradients_match_reference(variant):
    q, t, v = inputs(n=6)
    grads = []
    for fn in (lambda a, b, c: coca_attention(a, b, c, variant=variant), COCA[variant]):
        a, b, c = (x.clone().requires_grad_(True) for x in (q, t, v))
        (fn(a, b, c) * torch.linspace(-1, 1, 8, dtype=torch.float64)).sum().backward()
        grads.append([a.grad, b.grad, c.grad])
    for fast, slow in zip(*grads):
        assert rel_err(fast, slow) <= 1e-9


def test_strict_is_shift_invariant_and_slack_is_not():
    """Strict's score depends on m − n only (eq. 9); Slack's also on m + n (documented)."""
    q, t, v = inputs(n=8)
    base = torch.arange(8)
    strict = [coca_attention(q, t, v, variant="strict", positions=base + s) for s in (0, 37)]
    slack = [coca_attention(q, t, v, variant="slack", positions=base + s) for s in (0, 37)]
    assert rel_err(strict[1], strict[0]) <= 1e-12
    assert rel_err(slack[1], slack[0]) > 1e-3


def test_slack_equals_strict_when_query_halves_are_equal():
    q, t, v = inputs(n=6)
    h = q.shape[-1] // 2
    q = torch.cat([q[..., :h], q[..., :h]], dim=-1)
    assert rel_err(coca_attention(q, t, v, variant="slack"), coca_attention(q, t, v, variant="strict")) <= 1e-12


def test_tied_t_is_nonnegative_and_plane_tied():
    t = torch.randn(3, 2, 5, 8)
    tau = tie_t(t)
    assert tau.shape == (3, 2, 5, 4) and (tau >= 0).all()
    torch.testing.assert_close(tau, torch.relu((t[..., :4] + t[..., 4:]) / 2))


def test_coca_scores_decay_structure_strict():
    """With one key, Strict's score is Σ_j τ_j s_j cos((m−n)θ_j): largest at distance 0."""
    q, t, _ = inputs(b=1, h=1, hkv=1, n=1)
    from cocattn.attention.functional import coca_features
    from cocattn.rope import inv_freq_and_scaling, rope_cos_sin

    inv, _ = inv_freq_and_scaling(None, 8)
    cos, sin = rope_cos_sin(torch.arange(64), inv, dtype=torch.float64)
    qf, _ = coca_features(q[0, 0].expand(64, 8), tie_t(t)[0, 0].expand(64, 4), cos, sin, cos[:1], sin[:1], "strict")
    _, kf = coca_features(q[0, 0], tie_t(t)[0, 0], cos[:1], sin[:1], cos[:1], sin[:1], "strict")
    scores = qf @ kf[0]
    assert scores.argmax().item() == 0 and (scores <= scores[0] + 1e-12).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("variant", ["slack", "strict"])
def test_low_precision_close_to_float64(dtype, variant):
    q, t, v = (x.to(dtype) for x in inputs(n=16, d=16, dtype=torch.float64))
    out = coca_attention(q, t, v, variant=variant)
    ref = coca_attention(q.double(), t.double(), v.double(), variant=variant)  # same rounded inputs
    assert out.dtype == dtype and torch.isfinite(out).all()
    tol = {torch.float16: 5e-3, torch.bfloat16: 3e-2, torch.float32: 1e-5}[dtype]
    assert rel_err(out.double(), ref) <= tol


@pytest.mark.parametrize("variant", ["slack", "strict"])
def test_float16_quadratic_query_features_do_not_overflow(variant):
    """|q|² passes float16's 65,504: the features are rescaled by a power of two, not inf."""
    q, t, v = inputs(n=8, d=16, dtype=torch.float64)
    q, t = q * 300, t * 1e-3
    assert (q[..., :8] ** 2 + q[..., 8:] ** 2).max() > 65504
    out = coca_attention(q.half(), t.half(), v.half(), variant=variant)
    ref = coca_attention(q.half().double(), t.half().double(), v.half().double(), variant=variant)
    assert torch.isfinite(out).all()
    assert (out.double() - ref).abs().max().item() <= 0.05 * ref.abs().max().item()


@settings(max_examples=25, deadline=None)
@given(
    b=st.integers(1, 2),
    hkv=st.integers(1, 3),
    rep=st.integers(1, 3),
    n=st.integers(1, 9),
    half=st.integers(1, 5),
    offset=st.integers(0, 50),
    variant=st.sampled_from(["slack", "strict"]),
)
def test_property_any_shape_matches_reference(b, hkv, rep, n, half, offset, variant):
    q, t, v = inputs(b=b, h=hkv * rep, hkv=hkv, n=n, d=2 * half, seed=n + offset)
    pos = torch.arange(n) + offset
    out = coca_attention(q, t, v, variant=variant, positions=pos)
    assert out.shape == q.shape
    assert rel_err(out, COCA[variant](q, t, v, positions=pos)) <= 1e-10


def test_batched_positions():
    q, t, v = inputs(b=2, n=5)
    pos = torch.stack([torch.arange(5), torch.arange(5) + 7])
    out = coca_attention(q, t, v, variant="slack", positions=pos)
    for i in range(2):
        one = coca_attention(q[i : i + 1], t[i : i + 1], v[i : i + 1], variant="slack", positions=pos[i])
        torch.testing.assert_close(out[i : i + 1], one)


def test_need_weights_returns_probabilities_equal_to_fused_output():
    q, t, v = inputs(n=6)
    fused = coca_attention(q, t, v)
    out, probs = coca_attention(q, t, v, need_weights=True)
    torch.testing.assert_close(out, fused)
    assert probs.shape == (2, 4, 6, 6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 6, dtype=torch.float64))
    assert probs.triu(1).abs().max() == 0  # causal


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda q, t, v: coca_attention(q[0], t, v), r"q\.shape"),
        (lambda q, t, v: coca_attention(q[..., :7], t[..., :7], v[..., :7]), "head_dim"),
        (
            lambda q, t, v: coca_attention(
                q, t[:, :1].expand(2, 3, 7, 8).contiguous(), v[:, :1].expand(2, 3, 7, 8).contiguous()
            ),
            "kv_heads",
        ),
        (lambda q, t, v: coca_attention(q, t[..., :4], v), r"t\.shape\[-1\]"),
        (lambda q, t, v: coca_attention(q, t, v[:, :, :3]), r"v\.shape"),
        (lambda q, t, v: coca_attention(q, t, v, variant="loose"), "variant"),
        (lambda q, t, v: coca_attention(q, t, v, rope={"rope_type": "nope"}), "rope_type"),
        (lambda q, t, v: coca_attention(q, t, v, rope={"rope_type": "linear"}), "factor"),
        (lambda q, t, v: coca_attention(q, t, v, positions=torch.arange(7.0)), "positions"),
        (lambda q, t, v: coca_attention(q, t, v, positions=torch.arange(6)), r"positions\.shape"),
        (lambda q, t, v: coca_attention(q, t, v.float()), "dtypes"),
    ],
)
def test_bad_input_names_argument(make, needle):
    q, t, v = inputs(n=7)
    with pytest.raises(ValueError, match=needle):
        make(q, t, v)


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda q, t, v: nope_attention(q, t, v, causel=False), r"nope_attention\(\).*'causel'"),
        (lambda q, t, v: alibi_attention(q, t, v, need_weight=True), r"alibi_attention\(\).*'need_weight'"),
        (lambda q, t, v: rope_attention(q, t, v, variant="slack"), r"rope_attention\(\).*'variant'"),
        (
            lambda q, t, v: coca_attention(q, t, v, key_positions=torch.arange(7)),
            r"coca_attention\(\).*'key_positions'",
        ),
    ],
)
def test_a_keyword_the_kind_does_not_take_is_a_type_error(make, needle):
    """The kinds share their keyword options (``sdpa.AttentionOptions``): any other keyword is a
    TypeError naming the function and the keyword, never silently ignored (NoPE and ALiBi used to
    swallow every unknown keyword, a misspelt ``causal`` included)."""
    q, t, v = inputs(n=7)
    with pytest.raises(TypeError, match=needle):
        make(q, t, v)


def test_nope_and_alibi_take_and_ignore_rope():
    q, k, v = inputs(n=7)
    rope = {"rope_type": "linear", "factor": 2.0}
    assert torch.equal(nope_attention(q, k, v, rope=rope), nope_attention(q, k, v))
    assert torch.equal(alibi_attention(q, k, v, rope=rope), alibi_attention(q, k, v))


@pytest.mark.parametrize(
    "kind, rope",
    [(k, r) for k in ("slack", "strict", "rope") for r in SCALINGS] + [("alibi", None), ("nope", None)],
    ids=lambda x: x if isinstance(x, str) else ("none" if x is None else x["rope_type"]),
)
def test_default_positions_equal_reference(kind, rope):
    """Guarantee: the default layout (positions=None), which decides lengths and masks on the
    host and reuses cached cos/sin tables, computes the same function as explicit positions."""
    from cocattn.attention.functional import coca_attention_tied

    q, k, v = inputs(n=9)
    pos = torch.arange(9)
    if kind in COCA:
        ref = COCA[kind](q, k, v, positions=pos, rope=rope)
        assert rel_err(coca_attention(q, k, v, variant=kind, rope=rope), ref) <= 1e-10
        # queries after cached keys (bottom-right causal mask): the last 4 queries against all 9 keys
        tail = coca_attention_tied(q[:, :, 5:], tie_t(k), v, variant=kind, rope=rope)
        assert rel_err(tail, ref[:, :, 5:]) <= 1e-10
        return
    fn, ref_fn = {
        "rope": (rope_attention, R.rope_reference),
        "alibi": (alibi_attention, R.alibi_reference),
        "nope": (nope_attention, R.nope_reference),
    }[kind]
    kw = {"rope": rope} if kind == "rope" else {}
    ref = ref_fn(q, k, v, positions=pos, **kw)
    assert rel_err(fn(q, k, v, **kw), ref) <= 1e-10
    assert rel_err(fn(q[:, :, 5:], k, v, **kw), ref[:, :, 5:]) <= 1e-10
    assert rel_err(fn(q[:, :, 8:], k, v, **kw), ref[:, :, 8:]) <= 1e-10  # one query: no mask at all
