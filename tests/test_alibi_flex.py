"""ALiBi on FlexAttention equals the SDPA path (checked on CPU, forward only: PyTorch has no
FlexAttention backward on CPU; tests/test_cuda.py checks forward and backward on a GPU)."""

from __future__ import annotations

import pytest
import torch

from cocattn.attention import alibi_flex, set_alibi_backend
from cocattn.attention.functional import alibi_attention

pytestmark = pytest.mark.skipif(alibi_flex._flex_module() is None, reason="FlexAttention needs torch >= 2.5")


@pytest.fixture
def backend():
    yield set_alibi_backend
    set_alibi_backend("auto")


def _qkv(heads=6, kv_heads=6, n=256, d=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, h, n, d, generator=gen) for h in (heads, kv_heads, kv_heads))


@pytest.mark.parametrize("heads,kv_heads", [(6, 6), (8, 2)])  # 6: not a power of two (interleaved slopes); GQA
def test_flex_equals_the_sdpa_path(backend, heads, kv_heads):
    q, k, v = _qkv(heads, kv_heads)
    backend("sdpa")
    expected = alibi_attention(q, k, v)
    backend("flex")
    assert alibi_flex.applies(q, k, default_layout=True, causal=True, need_weights=False)
    with torch.no_grad():
        got = alibi_attention(q, k, v)
    assert alibi_flex._BROKEN is None
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_flex_only_where_it_applies(backend):
    q, k, _ = _qkv()
    backend("flex")
    ok = dict(default_layout=True, causal=True, need_weights=False)
    assert not alibi_flex.applies(q.requires_grad_(), k, **ok)  # no FlexAttention backward on CPU
    q = q.detach()
    assert not alibi_flex.applies(q, k, **{**ok, "need_weights": True})
    assert not alibi_flex.applies(q, k, **{**ok, "default_layout": False})
    assert not alibi_flex.applies(q[:, :, :64], k[:, :, :64], **ok)  # short: the bias is small
    assert not alibi_flex.applies(q[:, :, -1:], k, **ok)  # one decoding step against a cache
    backend("auto")  # auto: CUDA only
    assert not alibi_flex.applies(q, k, **ok)
    backend("sdpa")
    assert not alibi_flex.applies(q, k, **ok)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend.*'flash'.*auto"):
        set_alibi_backend("flash")


def test_an_alibi_model_gives_the_same_logits_on_flex(backend):
    """Inside the model (default positions, no cache), as evaluation runs it."""
    from cocattn.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(
        GPTConfig(vocab_size=97, n_layer=2, n_head=6, n_kv_head=2, n_embd=96, max_seq_len=64, attention="alibi")
    ).eval()
    idx = torch.randint(0, 97, (2, 200))
    with torch.no_grad():
        backend("sdpa")
        expected, _ = model(idx)
        backend("flex")
        got, _ = model(idx)
    assert alibi_flex._BROKEN is None
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
