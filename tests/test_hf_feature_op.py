"""The transformers CoCA model runs the same autograd feature op as cocattn's own model
(``cocattn.attention.coca.coca_feature_maps``): same outputs, same gradients, and the same
tensors saved for the backward (q, a half-width mask and the tables: vanilla RoPE's memory)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from cocattn.attention import Attention  # noqa: E402
from cocattn.attention.kinds import coca_kind  # noqa: E402
from cocattn.hf import CocaLlamaConfig, CocaLlamaForCausalLM  # noqa: E402
from cocattn.hf.modeling import coca_rope_parameters  # noqa: E402

ROPES = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "dynamic": {"rope_type": "dynamic", "factor": 4.0, "rope_theta": 10000.0},
}


def feature_op_nodes(out: torch.Tensor) -> list:
    """Every node of ``out``'s autograd graph made by the CoCA feature op."""
    seen, stack, found = set(), [out.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "CocaFeaturesBackward":
            found.append(node)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return found


def config(variant: str, rope: str, layers: int = 1) -> CocaLlamaConfig:
    return CocaLlamaConfig(
        vocab_size=61,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8,
        rope_parameters=ROPES[rope],
        coca_variant=variant,
        initializer_range=0.3,
    )


def run(layer, x: torch.Tensor, call) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], list]:
    """Output, ∂x, ∂parameters and the tensors each feature-op node saved, of one forward and backward."""
    x = x.clone().requires_grad_(True)
    layer.zero_grad()
    out = call(x)
    saved = [node.saved_tensors for node in feature_op_nodes(out)]
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in layer.named_parameters()}, saved


def broadcast_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    shape = torch.broadcast_shapes(a.shape, b.shape)
    return a.dtype == b.dtype and torch.equal(a.expand(shape), b.expand(shape))


@pytest.mark.parametrize("variant", ["slack", "strict"])
@pytest.mark.parametrize("rope", sorted(ROPES))
def test_hf_and_native_share_the_feature_op(variant: str, rope: str) -> None:
    torch.manual_seed(0)
    cfg = config(variant, rope)
    model = CocaLlamaForCausalLM(cfg).train()
    hf_attn = model.model.layers[0].self_attn
    native = Attention(32, 4, 2, kind=coca_kind(variant), rope=coca_rope_parameters(cfg).to_dict(), training_length=8)
    native.load_state_dict(hf_attn.state_dict())
    x = torch.randn(2, 20, 32)  # 20 > 8: dynamic NTK is in force
    positions = torch.arange(20).unsqueeze(0)
    rotary = model.model.rotary_emb(positions, positions)

    hf_out, hf_dx, hf_grads, hf_ops = run(
        hf_attn, x, lambda x: hf_attn(x, position_embeddings=rotary, attention_mask=None)[0]
    )
    nat_out, nat_dx, nat_grads, nat_ops = run(native, x, native)

    torch.testing.assert_close(hf_out, nat_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(hf_dx, nat_dx, rtol=1e-5, atol=1e-6)
    assert hf_grads.keys() == nat_grads.keys() and "t_proj.weight" in hf_grads
    for name in hf_grads:
        torch.testing.assert_close(hf_grads[name], nat_grads[name], rtol=1e-5, atol=1e-6, msg=name)

    # one op in each graph, saving the same tensors: q, the half-width mask w > 0 (the raw T is
    # tied inside the op, so t itself is not kept), and the tables
    assert len(hf_ops) == len(nat_ops) == 1
    hf_saved, nat_saved = hf_ops[0], nat_ops[0]
    assert len(hf_saved) == len(nat_saved) == 5
    q, mask = hf_saved[0], hf_saved[1]
    assert q.shape == (2, 4, 20, 8) and mask.dtype == torch.bool and mask.shape == (2, 2, 20, 1, 4)
    for i, (a, b) in enumerate(zip(hf_saved, nat_saved)):
        assert broadcast_equal(a, b), f"saved tensor {i}: {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"


def test_every_layer_of_an_hf_training_step_runs_the_op() -> None:
    """A training forward (``use_cache=False``, as the trainer calls it) goes through the op in
    every layer; a generation step with a cache goes through it too, on the cached tied τ."""
    torch.manual_seed(0)
    model = CocaLlamaForCausalLM(config("slack", "default", layers=3)).train()
    ids = torch.randint(3, 61, (2, 12))
    logits = model(input_ids=ids, use_cache=False).logits
    assert len(feature_op_nodes(logits)) == 3
    assert all(node.saved_tensors[1] is not None for node in feature_op_nodes(logits))  # raw T: the tie's mask
    out = model(input_ids=ids, use_cache=True)
    nodes = feature_op_nodes(out.logits)
    assert len(nodes) == 3 and all(node.saved_tensors[1] is None for node in nodes)  # τ from the cache: no mask
