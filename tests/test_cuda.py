"""On a CUDA device (skipped elsewhere): the fused paths compute the paper's functions on the GPU,
stay finite in bf16/fp16, decode exactly with the cache, and never synchronise with the host in
the default layout (which is what lets CoCA run at vanilla speed on a GPU)."""

import pytest
import torch

from cocattn.attention import alibi_attention, coca_attention, nope_attention, rope_attention
from cocattn.attention import reference as R

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEV = "cuda"
DYNAMIC = {"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 64}


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def inputs(n=200, b=2, h=8, hkv=4, d=64, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, x, n, d, generator=g, dtype=torch.float64).to(DEV, dtype) for x in (h, hkv, hkv)]


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("rope", [None, DYNAMIC], ids=["default", "dynamic"])
def test_coca_on_cuda_equals_the_reference(variant, rope):
    q, t, v = inputs()
    ref = {"slack": R.coca_slack_reference, "strict": R.coca_strict_reference}[variant]
    expected = ref(*(x.cpu() for x in (q, t, v)), rope=rope)
    assert rel(coca_attention(q, t, v, variant=variant, rope=rope).cpu(), expected) <= 1e-10
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2), (torch.float16, 5e-3)):
        out = coca_attention(*(x.to(dtype) for x in (q, t, v)), variant=variant, rope=rope)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert rel(out.cpu(), expected) <= tol, dtype


@pytest.mark.parametrize("variant", ["slack", "strict"])
def test_coca_gradients_on_cuda_equal_the_reference(variant):
    ref = {"slack": R.coca_slack_reference, "strict": R.coca_strict_reference}[variant]
    grads = []
    for fn, dev in ((lambda *a: coca_attention(*a, variant=variant), DEV), (ref, "cpu")):
        xs = [x.to(dev).requires_grad_(True) for x in inputs(n=64)]
        (fn(*xs) ** 2).sum().backward()
        grads.append([x.grad.cpu() for x in xs])
    for fast, slow in zip(*grads):
        assert rel(fast, slow) <= 1e-9


@pytest.mark.parametrize("kind", ["rope", "coca", "coca-strict", "alibi", "nope"])
def test_default_layout_never_synchronises_with_the_host(kind):
    q, k, v = (x.to(torch.bfloat16).requires_grad_(True) for x in inputs(n=1024))
    fn = {
        "rope": rope_attention,
        "nope": nope_attention,
        "alibi": alibi_attention,
        "coca": lambda *a: coca_attention(*a, variant="slack"),
        "coca-strict": lambda *a: coca_attention(*a, variant="strict"),
    }[kind]
    fn(q, k, v).sum().backward()  # warm-up: builds and caches the cos/sin tables
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn(q, k, v).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("kind", ["rope", "coca", "coca-strict", "alibi"])
def test_cached_decoding_on_cuda_equals_the_full_forward(kind):
    from cocattn.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = (
        GPT(GPTConfig(vocab_size=97, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, max_seq_len=16, attention=kind))
        .to(DEV)
        .eval()
    )
    idx = torch.randint(0, 97, (2, 40), device=DEV)
    with torch.no_grad():
        full, _ = model(idx)
        cache = model.new_cache(2)
        steps = [model(idx[:, :10], cache=cache)[0]]
        steps += [model(idx[:, i : i + 1], cache=cache)[0] for i in range(10, 40)]
    assert rel(torch.cat(steps, dim=1).float(), full.float()) <= 1e-4


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_alibi_on_flexattention_equals_the_sdpa_path(dtype, tol):
    """The default CUDA path (FlexAttention) against the portable one, forward and backward."""
    from cocattn.attention import alibi_flex, set_alibi_backend

    results = []
    try:
        for backend in ("sdpa", "auto"):
            set_alibi_backend(backend)
            xs = [x.to(dtype).requires_grad_(True) for x in inputs(n=1024)]
            assert alibi_flex.applies(xs[0], xs[1], default_layout=True, causal=True, need_weights=False) == (
                backend == "auto"
            )
            out = alibi_attention(*xs)
            (out.float() ** 2).sum().backward()
            results.append([out.detach(), *(x.grad for x in xs)])
    finally:
        set_alibi_backend("auto")
    assert alibi_flex._BROKEN is None, alibi_flex._BROKEN
    for flex, sdpa in zip(results[1], results[0]):
        assert rel(flex, sdpa) <= tol


def test_bench_attention_on_cuda_times_kinds_in_rounds_and_measures_memory():
    from cocattn.bench.attention import bench_attention

    rows = bench_attention(("rope", "coca", "coca-strict"), [512], heads=4, repeats=5, min_time=0.01, progress=False)
    for r in rows:
        assert r["status"] == "ok" and r["samples"] >= 5 and r["peak_mib"] > 0 and r["ops"] > 0, r
    assert len({r["samples"] for r in rows}) == 1
