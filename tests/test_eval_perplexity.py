"""Sliding-window perplexity: each token scored once, equal to full-sequence perplexity when the
window covers the document, token-weighted, edge cases and memory refusal."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cocattn.evaluate.perplexity import evaluate_perplexity, window_plan
from helpers.eval_models import gpt, llama, text


@pytest.fixture(scope="module", params=["llama", "gpt-rope", "gpt-coca"])
def lm(request):
    if request.param == "llama":
        return llama(training_length=32)
    return gpt(request.param.split("-")[1], training_length=32)


def full_sequence_nll(lm, ids: list[int]) -> tuple[float, int]:
    logits = lm.logits(torch.tensor([ids]))[0, :-1]
    return float(F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum")), len(ids) - 1


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), window=st.integers(1, 64), data=st.data())
def test_every_token_scored_exactly_once_with_bounded_context(n, window, data):
    stride = data.draw(st.integers(1, window))
    plan = window_plan(n, window, stride)
    scored = [p for _, end, first in plan for p in range(first, end + 1)]
    assert scored == list(range(1, n))
    for begin, end, first in plan:
        assert 0 < end - begin <= window  # the model never reads more than the window
        for p in range(first, end + 1):
            context = p - begin
            assert context == p or context >= window - stride + 1  # as much context as the window allows


def test_window_covering_document_equals_full_sequence_perplexity(lm):
    ids = lm.encode(text(120, seed=3))[:100]
    nll, count = full_sequence_nll(lm, ids)
    for window in (99, 100):  # the document's 99 inputs; the whole document
        result = evaluate_perplexity(lm, [ids], [window], stride=16, progress=False)
        assert result["counts"] == [count]
        assert result["values"][0] == pytest.approx(math.exp(nll / count), rel=1e-5)


def test_sliding_window_equals_manual_windows(lm):
    ids = lm.encode(text(200, seed=4))[:150]
    window, stride = 48, 16
    total = 0.0
    for begin, end, first in window_plan(len(ids), window, stride):
        logits = lm.logits(torch.tensor([ids[begin:end]]))[0]
        total += float(
            F.cross_entropy(logits[first - 1 - begin :], torch.tensor(ids[first : end + 1]), reduction="sum")
        )
    result = evaluate_perplexity(lm, [ids], [window], stride=stride, max_tokens=len(ids), batch_size=3, progress=False)
    assert result["values"][0] == pytest.approx(math.exp(total / (len(ids) - 1)), rel=1e-5)


def test_batching_by_tokens_changes_speed_not_numbers(lm):
    """Guarantee: `batch_tokens` (short windows many at a time, long ones alone) gives the same
    perplexity as one window at a time, at every length."""
    docs = [lm.encode(text(200, seed=s))[:150] for s in (5, 6)]
    one = evaluate_perplexity(lm, docs, [16, 32, 64], stride=16, max_tokens=150, progress=False)
    batched = evaluate_perplexity(lm, docs, [16, 32, 64], stride=16, max_tokens=150, batch_tokens=100, progress=False)
    assert batched["values"] == pytest.approx(one["values"], rel=1e-6)
    assert batched["counts"] == one["counts"] and batched["settings"]["batch_tokens"] == 100


def test_token_weighted_over_documents_not_per_document():
    lm = gpt("rope", training_length=32)
    short, long = lm.encode(text(30, seed=1))[:20], lm.encode(text(200, seed=2))[:160]
    (n1, c1), (n2, c2) = full_sequence_nll(lm, short), full_sequence_nll(lm, long)
    result = evaluate_perplexity(lm, [short, long], [160], stride=32, progress=False)
    assert result["values"][0] == pytest.approx(math.exp((n1 + n2) / (c1 + c2)), rel=1e-5)
    assert result["counts"] == [c1 + c2]
    assert result["details"]["full_window_docs"] == [0]


def test_short_documents_scored_whole_and_all_lengths_score_the_same_tokens():
    lm = gpt("coca", training_length=32)
    docs = [lm.encode(text(20, seed=5))[:20], lm.encode(text(400, seed=6))]
    result = evaluate_perplexity(lm, docs, [32, 64, 128], progress=False)
    assert len(set(result["counts"])) == 1  # truncated to the longest length + 1: same tokens everywhere
    assert result["details"]["full_window_docs"] == [1, 1, 1]
    assert result["settings"]["max_tokens"] == 129


def test_stride_larger_than_window_is_rejected():
    lm = gpt("rope", training_length=32)
    with pytest.raises(ValueError, match="stride=64"):
        evaluate_perplexity(lm, [text(100)], [32], stride=64, progress=False)
    with pytest.raises(ValueError, match="stride=9"):
        window_plan(100, 8, 9)


def test_length_longer_than_every_document():
    lm = gpt("rope", training_length=32)
    docs = [lm.encode(text(100, seed=7))[:50]]
    with pytest.raises(ValueError, match=r"lengths=\[64\].*longest document \(50 tokens"):
        evaluate_perplexity(lm, docs, [32, 64], progress=False)
    with pytest.warns(UserWarning, match="skipping lengths"):
        result = evaluate_perplexity(lm, docs, [32, 64], too_long="skip", progress=False)
    assert result["values"][0] is not None and result["values"][1] is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lengths": []}, "lengths"),
        ({"lengths": [32], "batch_size": 0}, "batch_size"),
        ({"lengths": [32], "too_long": "maybe"}, "too_long"),
        ({"lengths": [32], "scaling": {"rope_type": "dynamc", "factor": 2.0}}, "rope_type"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    lm = gpt("rope", training_length=32)
    with pytest.raises(ValueError, match=match):
        evaluate_perplexity(lm, [text(100)], progress=False, **kwargs)


def test_refuses_with_the_estimate_when_memory_is_short():
    lm = gpt("rope", training_length=32)
    with pytest.raises(ValueError, match=r"needs about .*MiB.*max_memory"):
        evaluate_perplexity(lm, [text(400)], [256], max_memory=1_000_000, progress=False)


def test_scaling_changes_only_extrapolated_lengths_and_is_undone():
    lm = gpt("rope", training_length=32)
    ids = lm.encode(text(200, seed=8))[:129]
    plain = evaluate_perplexity(lm, [ids], [32, 128], progress=False)
    scaled = evaluate_perplexity(lm, [ids], [32, 128], scaling={"rope_type": "dynamic", "factor": 4.0}, progress=False)
    assert scaled["values"][0] == pytest.approx(plain["values"][0], rel=1e-6)  # within L0: dynamic is a no-op
    assert scaled["values"][1] != pytest.approx(plain["values"][1], rel=1e-6)
    assert scaled["scaling_name"] == "dynamic x4"
    again = evaluate_perplexity(lm, [ids], [128], progress=False)
    assert again["values"][0] == pytest.approx(plain["values"][1], rel=1e-6)


def test_hf_dynamic_rope_does_not_leak_between_windows():
    lm = llama(training_length=32)
    ids = torch.tensor([lm.encode(text(200, seed=9))[:100]])
    with lm.rope_scaling({"rope_type": "dynamic", "factor": 4.0}):
        fresh = lm.logits(ids[:, :50])
        lm.logits(ids)  # grows transformers' cached base
        again = lm.logits(ids[:, :50])
    torch.testing.assert_close(again, fresh)


@pytest.mark.parametrize("attention", ["rope", "coca"])
def test_bf16_autocast_evaluation_stays_close_to_float32(attention):
    """Guarantee: `eval.dtype=bfloat16` (autocast, float32 weights) changes perplexity by well under
    1% on a real tokenized text, so GPU presets can evaluate in bf16."""
    lm = gpt(attention, training_length=32)
    ids = lm.encode(text(200, seed=7))[:150]
    plain = evaluate_perplexity(lm, [ids], [32, 64], stride=16, max_tokens=150, progress=False)
    lm.autocast = torch.bfloat16
    try:
        fast = evaluate_perplexity(lm, [ids], [32, 64], stride=16, max_tokens=150, progress=False)
    finally:
        lm.autocast = None
    assert fast["values"] == pytest.approx(plain["values"], rel=1e-2)
    assert fast["values"] != plain["values"]  # bf16 really ran
