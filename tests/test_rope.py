"""RoPE scaling registry: parity with transformers for every shared type, validation errors."""

import math

import pytest
import torch

from cocattn.rope import ROPE_TYPES, apply_rope, inv_freq_and_scaling, rope_cos_sin, rope_parameters

transformers = pytest.importorskip("transformers")
from transformers import LlamaConfig  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding  # noqa: E402

HEAD_DIM = 32
L0 = 256

CASES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 4.0},
    "yarn": {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 8.0, "original_max_position_embeddings": L0},
    "yarn-betas": {
        "rope_type": "yarn",
        "rope_theta": 500000.0,
        "factor": 4.0,
        "original_max_position_embeddings": L0,
        "beta_fast": 16,
        "beta_slow": 2,
        "attention_factor": 1.3,
    },
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "original_max_position_embeddings": L0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
    },
    "longrope": {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "factor": 16.0,
        "original_max_position_embeddings": L0,
        "short_factor": [1.0 + 0.05 * i for i in range(HEAD_DIM // 2)],
        "long_factor": [1.0 + 0.5 * i for i in range(HEAD_DIM // 2)],
    },
}


def hf_config(params: dict) -> LlamaConfig:
    max_pos = L0 if params["rope_type"] in ("dynamic", "default", "linear") else 16 * L0
    return LlamaConfig(
        hidden_size=HEAD_DIM * 4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_pos,
        rope_parameters=dict(params),
    )


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seq_len", [None, L0 // 2, L0, 3 * L0 + 7, 16 * L0])
def test_inv_freq_matches_transformers(name, seq_len):
    params = CASES[name]
    config = hf_config(params)
    if params["rope_type"] == "default":
        emb = LlamaRotaryEmbedding(config)
        expect, expect_scale = emb.inv_freq, emb.attention_scaling
    else:
        expect, expect_scale = ROPE_INIT_FUNCTIONS[params["rope_type"]](config, "cpu", seq_len)
    ours = rope_parameters(params).with_training_length(L0)
    got, scale = inv_freq_and_scaling(ours, HEAD_DIM, seq_len)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got.float(), expect.float(), rtol=2e-6, atol=0)
    assert scale == pytest.approx(float(expect_scale), rel=1e-9)


def test_static_ntk_base_change():
    inv, _ = inv_freq_and_scaling({"rope_type": "ntk", "factor": 4.0}, 64)
    base = 10000.0 * 4.0 ** (64 / 62)
    assert inv[1].item() == pytest.approx(base ** (-2 / 64))


def test_dynamic_grows_only_past_training_length():
    p = rope_parameters({"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 128})
    plain, _ = inv_freq_and_scaling(None, 16)
    assert torch.equal(inv_freq_and_scaling(p, 16, 100)[0], plain)
    assert torch.equal(inv_freq_and_scaling(p, 16, 128)[0], plain)
    longer = inv_freq_and_scaling(p, 16, 1024)[0]
    assert (longer[1:] < plain[1:]).all()  # lower frequencies = larger base


def test_rotation_preserves_norm_and_is_relative():
    torch.manual_seed(0)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    inv, _ = inv_freq_and_scaling(None, 16)
    pos = torch.tensor([3, 10, 103, 110])
    cos, sin = rope_cos_sin(pos, inv, dtype=torch.float64)
    rq, rk = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(4))
    # score depends on m - n only: (10, 3) and (110, 103)
    assert (rq[1] @ rk[0]).item() == pytest.approx((rq[3] @ rk[2]).item(), rel=1e-12)


def test_every_registered_type_is_listed():
    assert set(ROPE_TYPES) == {"default", "linear", "ntk", "dynamic", "yarn", "longrope", "llama3"}


@pytest.mark.parametrize(
    "value, needle",
    [
        ({"rope_type": "ntk-by-parts"}, "rope_parameters.rope_type"),
        ({"rope_type": "linear"}, "factor"),
        ({"rope_type": "dynamic", "factor": 0.5}, "rope_parameters.factor"),
        ({"rope_type": "default", "factr": 2.0}, "factr"),
        ({"rope_type": "default", "factor": 2.0}, "rope_parameters.factor"),
        ({"rope_type": "yarn", "factor": 2.0}, "original_max_position_embeddings"),
        ({"rope_type": "default", "rope_theta": -3}, "rope_parameters.rope_theta"),
        ("dynamic", "rope"),
    ],
)
def test_bad_rope_parameters_name_the_field(value, needle):
    with pytest.raises(ValueError, match=needle):
        inv_freq_and_scaling(rope_parameters(value) if isinstance(value, dict) else value, 16, 100)


def test_odd_head_dim_rejected():
    with pytest.raises(ValueError, match="head_dim"):
        inv_freq_and_scaling(None, 15)


def test_transformers_v4_rope_scaling_alias():
    p = rope_parameters({"type": "linear", "factor": 2.0})
    assert p.rope_type == "linear" and math.isclose(p.factor, 2.0)


def test_cached_tables_equal_fresh_ones_and_survive_inference_mode():
    """Guarantee: the cached tables for default positions are bit-identical to computing them,
    and a table first built under `torch.inference_mode` (evaluation) still trains afterwards."""
    from cocattn.attention import coca_attention
    from cocattn.rope import arange_cos_sin

    inv_freq, scaling = inv_freq_and_scaling(
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}, 8
    )
    c, s = arange_cos_sin(40, inv_freq, scaling, torch.float32, "cpu")
    c2, s2 = arange_cos_sin(25, inv_freq, scaling, torch.float32, "cpu")  # a slice of the same table
    rc, rs = rope_cos_sin(torch.arange(40), inv_freq, scaling, torch.float32)
    assert torch.equal(c, rc) and torch.equal(s, rs) and torch.equal(c2, rc[:25]) and torch.equal(s2, rs[:25])

    q, t, v = (torch.randn(1, 2, 37, 8) for _ in range(3))
    with torch.inference_mode():
        coca_attention(q, t, v)  # builds and caches the tables for 37 positions
    q.requires_grad_(True)
    coca_attention(q, t, v).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("name", sorted(CASES) + ["ntk"])
def test_is_length_dependent_says_whether_the_frequencies_follow_the_length(name):
    """The registry's ``length_dependent`` (what the transformers adapter's cache decision and the
    attention functions read) agrees with the formulas: only dynamic NTK and LongRoPE change with L."""
    from cocattn.rope import is_length_dependent

    case = CASES.get(name, {"rope_type": "ntk", "rope_theta": 10000.0, "factor": 4.0})
    params = rope_parameters(case, original_max_position_embeddings=L0)
    short = inv_freq_and_scaling(params, HEAD_DIM, L0)
    long = inv_freq_and_scaling(params, HEAD_DIM, 4 * L0)
    follows_length = not torch.equal(short[0], long[0]) or short[1] != long[1]
    assert is_length_dependent(params) == is_length_dependent(case) == follows_length
    assert follows_length == (params.rope_type in ("dynamic", "longrope"))
