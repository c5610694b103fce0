"""CoCA's fused Triton feature maps (`set_feature_backend("triton")`) compute the same function
and gradients as the PyTorch path. On a GPU the kernels run compiled; without one they run in
Triton's interpreter (TRITON_INTERPRET=1), so CI checks their arithmetic and indexing too."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are defined
pytest.importorskip("triton", reason="Triton is not installed (pip install triton)")

from cocattn.attention import coca_attention, set_feature_backend  # noqa: E402
from cocattn.attention import reference as R  # noqa: E402
from cocattn.attention import triton_features  # noqa: E402
from cocattn.attention.functional import coca_attention_tied, tie_t  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def run(backend, fn, *xs):
    set_feature_backend(backend)
    try:
        xs = [x.detach().clone().requires_grad_(True) for x in xs]
        out = fn(*xs)
        (out.float() * torch.linspace(-1, 1, out.shape[-1], device=out.device)).sum().backward()
        return out.detach(), [x.grad for x in xs]
    finally:
        set_feature_backend("torch")


def inputs(b=2, h=4, hkv=2, n=37, d=16, dtype=torch.float32, seed=0, t_dim=None):
    g = torch.Generator().manual_seed(seed)
    shapes = ((b, h, n, d), (b, hkv, n, t_dim or d), (b, hkv, n, d))
    return [torch.randn(*s, generator=g).to(DEV, dtype) for s in shapes]


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_raw_t_equals_the_torch_path(variant, dtype):
    """Forward output and the gradients of q, t and v, with the tie done inside the kernels: as
    close to the float64 result as the PyTorch path is (float32: both within 1e-5)."""
    q, t, v = inputs(dtype=dtype)
    assert triton_features.available(q)  # the kernels, not a fallback, are what is compared
    rope = {"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 8}
    fn = lambda a, b, c: coca_attention(a, b, c, variant=variant, rope=rope)  # noqa: E731
    exact, exact_grads = run("torch", fn, *(x.double() for x in (q, t, v)))
    out_t, grads_t = run("torch", fn, q, t, v)
    out_f, grads_f = run("triton", fn, q, t, v)
    assert out_f.dtype == dtype
    for fused, plain, ref in zip([out_f, *grads_f], [out_t, *grads_t], [exact, *exact_grads]):
        if dtype == torch.float32:
            assert rel(fused, plain) <= 1e-5
        else:  # bfloat16: rounding differs between the two paths; neither may be worse than the other
            assert rel(fused, ref) <= 2 * rel(plain, ref) + 1e-3


@pytest.mark.parametrize("variant", ["slack", "strict"])
def test_fused_tied_tau_with_cached_keys_and_batched_positions(variant):
    """Tied τ (the cache's form), queries after the keys, per-row positions (tables with a batch
    dim), a non-contiguous q: equal to the paper's definition."""
    q, t, v = inputs(n=20)
    q = q.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    tau = tie_t(t)
    pos = torch.stack([torch.arange(20), torch.arange(20) + 5]).to(DEV)
    fn = lambda a, b, c: coca_attention_tied(a, b, c, variant=variant, positions=pos[:, 12:], key_positions=pos)  # noqa: E731
    out_f, grads_f = run("triton", fn, q[:, :, 12:], tau, v)
    out_t, grads_t = run("torch", fn, q[:, :, 12:], tau, v)
    assert rel(out_f, out_t) <= 1e-5
    for gf, gt in zip(grads_f, grads_t):
        assert rel(gf, gt) <= 1e-5
    ref = {"slack": R.coca_slack_reference, "strict": R.coca_strict_reference}[variant]
    for row in range(2):  # the reference takes one row of positions at a time
        full = ref(*(x[row : row + 1].double().cpu() for x in (q, t, v)), positions=pos[row].cpu())
        assert rel(out_f[row : row + 1].cpu(), full[:, :, 12:]) <= 1e-5


def test_odd_half_width_and_gqa():
    """head_dim 24 (12 planes, not a power of two) with 6 query heads over 2 kv heads."""
    q, t, v = inputs(h=6, hkv=2, n=9, d=24)
    out_f, grads_f = run("triton", lambda a, b, c: coca_attention(a, b, c), q, t, v)
    out_t, grads_t = run("torch", lambda a, b, c: coca_attention(a, b, c), q, t, v)
    assert rel(out_f, out_t) <= 1e-5
    assert all(rel(a, b) <= 1e-5 for a, b in zip(grads_f, grads_t))


def test_backend_name_is_checked():
    with pytest.raises(ValueError, match="backend"):
        set_feature_backend("cuda")
