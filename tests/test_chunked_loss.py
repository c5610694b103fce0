"""The chunked linear + cross-entropy (``cocattn.chunked_loss``, ``train.chunked_loss``) against
the full logits' loss: the same value and the same gradients of every weight within float32
rounding, for every attention kind; ignored targets; no gradients under ``no_grad``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cocattn.attention import KINDS
from cocattn.chunked_loss import linear_cross_entropy
from cocattn.model import GPT

SHAPE = dict(vocab_size=384, n_layer=2, n_head=2, n_embd=32, max_seq_len=24)


def _grads(model: GPT) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_chunked_loss_equals_the_full_loss_and_its_gradients_for_every_kind(kind, monkeypatch):
    """Guarantee: training with the chunked loss gives the full loss's value and gradients (every
    parameter's) to float32 rounding, whatever the chunk size (a ragged split, one chunk)."""
    import cocattn.chunked_loss

    torch.manual_seed(0)
    model = GPT({**SHAPE, "attention": kind})
    x = torch.randint(0, SHAPE["vocab_size"], (3, SHAPE["max_seq_len"] + 1))
    idx, targets = x[:, :-1], x[:, 1:].clone()
    targets[0, :5] = -100  # ignored positions count zero
    logits, full = model(idx, targets)
    assert logits is not None and logits.shape == (3, SHAPE["max_seq_len"], SHAPE["vocab_size"])
    full.backward()
    reference = _grads(model)
    for rows in (7, 72):  # 72 positions: 11 chunks with a short last one; one chunk
        monkeypatch.setattr(cocattn.chunked_loss, "DEFAULT_CHUNK_BYTES", rows * 4 * SHAPE["vocab_size"])
        none, loss = model(idx, targets, return_logits=False)
        assert none is None and loss is not None and loss.dtype == torch.float32
        loss.backward()
        grads = _grads(model)
        torch.testing.assert_close(loss, full, rtol=2e-6, atol=0)
        assert grads.keys() == reference.keys()
        for name, g in grads.items():
            scale = float(reference[name].abs().max())
            torch.testing.assert_close(g, reference[name], rtol=1e-4, atol=1e-5 * scale, msg=name)


def test_chunked_loss_of_random_inputs_against_cross_entropy():
    """The op alone: value and both gradients against ``F.cross_entropy(h @ W.T)``, with a chunk
    size that leaves a short last chunk, and the loss without gradients under ``no_grad``."""
    g = torch.Generator().manual_seed(1)
    h = torch.randn(50, 16, generator=g, requires_grad=True)
    w = torch.randn(97, 16, generator=g, requires_grad=True)
    t = torch.randint(0, 97, (50,), generator=g)
    t[3] = t[40] = -100
    ref = F.cross_entropy(h @ w.t(), t, ignore_index=-100)
    gh, gw = torch.autograd.grad(ref * 3.0, (h, w))
    loss = linear_cross_entropy(h, w, t, chunk_rows=8)
    ch, cw = torch.autograd.grad(loss * 3.0, (h, w))  # the incoming gradient scales the stored ones
    torch.testing.assert_close(loss, ref, rtol=2e-6, atol=0)
    torch.testing.assert_close(ch, gh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cw, gw, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, t, chunk_rows=8), ref.detach(), rtol=2e-6, atol=0)
    with pytest.raises(ValueError, match="float32"):
        linear_cross_entropy(h.double(), w.double(), t)


def test_training_with_the_chunked_loss_follows_the_full_loss(tmp_path):
    """`train.chunked_loss=true` trains to the same losses, step by step, as the full loss (to
    float32 rounding, accumulated over the steps), and the default stays the full loss."""
    from conftest import build_text_data

    from cocattn import files
    from cocattn.train import train

    data = build_text_data(tmp_path, vocab_size=300)
    base = {
        "model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "max_seq_len": 32, "attention": "coca"},
        "data": {"dir": str(data)},
        "train": {
            "steps": 6,
            "warmup": 1,
            "batch_size": 4,
            "log_interval": 1,
            "eval_interval": 0,
            "checkpoint_interval": 0,
            "progress": False,
            "threads": 1,
        },
    }
    losses = {}
    for chunked in (False, True):
        cfg = {**base, "train": {**base["train"], "chunked_loss": chunked}}
        run = tmp_path / f"run-{chunked}"
        train(cfg, run)
        losses[chunked] = [r["loss"] for r in files.read_jsonl(run / "metrics.jsonl")]
    assert len(losses[True]) == 6
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)
