"""Passkey: the prompt builder hits the target length with the key where asked, the evaluator's
record is complete and seeded, and dynamic NTK with the KV cache equals recomputation."""

from __future__ import annotations

import pytest
import torch

from cocattn.tasks.depth import DEPTH_BUCKETS, depth_bucket
from cocattn.evaluate.passkey import (
    ANSWER_PREFIX,
    FILLER,
    KEY_LINE,
    QUESTION,
    build_prompt,
    evaluate_passkey,
)
from helpers.eval_models import gpt, llama, text

DYNAMIC = {"rope_type": "dynamic", "factor": 4.0}


@pytest.fixture(scope="module")
def rope_gpt():
    return gpt("rope", training_length=64)


@pytest.mark.parametrize("length", [200, 257, 640, 1500])
@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_prompt_hits_target_length_with_the_papers_wording(rope_gpt, length, depth):
    prompt = build_prompt(rope_gpt, length, 54321, depth)
    assert abs(len(prompt.ids) - length) <= 4
    assert prompt.ids == rope_gpt.encode(prompt.text)
    assert KEY_LINE.format(key=54321) in prompt.text
    assert FILLER.split(".")[0] in prompt.text
    assert prompt.text.endswith(QUESTION + " " + ANSWER_PREFIX)
    # the key line starts at key_position
    assert rope_gpt.decode(prompt.ids[prompt.key_position :]).startswith("The passkey is 54321")


def test_key_moves_with_depth(rope_gpt):
    positions = [build_prompt(rope_gpt, 1000, 11111, d).key_position for d in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert positions == sorted(positions) and positions[-1] - positions[0] > 600
    depths = [build_prompt(rope_gpt, 1000, 11111, d).depth for d in (0.1, 0.9)]
    assert depths[0] == pytest.approx(0.1, abs=0.05) and depths[1] == pytest.approx(0.9, abs=0.05)


def test_prompt_too_short_is_rejected(rope_gpt):
    with pytest.raises(ValueError, match=r"length=20 .*without filler"):
        build_prompt(rope_gpt, 20, 12345, 0.5)


def test_llama_prompt_starts_with_bos():
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from helpers.eval_models import tokenizer

    backend = tokenizer().from_str(tokenizer().to_str())  # a copy that prepends BOS, LLaMA-style
    backend.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
    lm = llama()
    lm.tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>")
    assert lm.begin_ids == [0]
    prompt = build_prompt(lm, 300, 12345, 0.5)
    assert prompt.ids[0] == lm.tokenizer.bos_token_id and abs(len(prompt.ids) - 300) <= 4


@pytest.mark.parametrize(
    "make",
    [lambda: gpt("coca", training_length=64), lambda: llama(training_length=64)],
    ids=["cocattn-coca", "hf-llama"],
)
def test_evaluator_record_on_both_model_kinds(make):
    lm = make()
    result = evaluate_passkey(lm, [200, 300], cases=4, max_new_tokens=3, seed=1, progress=False)
    assert result["metric"] == "passkey" and result["lengths"] == [200, 300] and result["counts"] == [4, 4]
    cases = result["details"]["cases"]
    for length, rows, acc in zip([200, 300], cases, result["values"]):
        assert all(10_000 <= r["key"] <= 99_999 for r in rows)
        assert all(abs(r["tokens"] - length) <= 4 for r in rows)
        assert acc == sum(r["correct"] for r in rows) / len(rows)
        assert all(r["correct"] == (str(r["key"]) in r["output"]) for r in rows)
        assert all(r["logprob"] < 0 for r in rows)
    # stratified depths: each bucket holds a quarter of the cases at the longer length
    buckets = [sum(1 for r in cases[1] if depth_bucket(r["depth"]) == b) for b in DEPTH_BUCKETS]
    assert buckets == [1, 1, 1, 1]
    assert set(result["details"]["by_depth"]) == set(DEPTH_BUCKETS)
    # seeded: the same keys again, other keys with another seed
    again = evaluate_passkey(lm, [200], cases=3, max_new_tokens=1, seed=1, progress=False)
    assert [r["key"] for r in again["details"]["cases"][0]] == [r["key"] for r in cases[0][:3]]
    other = evaluate_passkey(lm, [200], cases=3, max_new_tokens=1, seed=2, progress=False)
    assert [r["key"] for r in other["details"]["cases"][0]] != [r["key"] for r in cases[0][:3]]


def test_key_within_training_window_split():
    lm = gpt("rope", training_length=150)
    result = evaluate_passkey(lm, [300], cases=8, max_new_tokens=1, progress=False)
    rows = result["details"]["cases"][0]
    assert any(r["within_training"] for r in rows) and not all(r["within_training"] for r in rows)
    assert all(r["within_training"] == (r["key_position"] >= r["tokens"] - 150) for r in rows)
    within = [r["correct"] for r in rows if r["within_training"]]
    assert result["details"]["within_training"] == [sum(within) / len(within)]


@pytest.mark.parametrize("attention", ["rope", "coca", "coca-strict"])
def test_dynamic_ntk_generation_with_cache_equals_recomputation(attention):
    """Cached keys are re-rotated with the base of the current length (cocattn's un-rotated cache)."""
    lm = gpt(attention, training_length=32)
    prompt = lm.encode(text(100, seed=11))[:60]  # already past the training length, and growing
    with lm.rope_scaling(DYNAMIC):
        assert lm.generation_mode == "kv-cache"
        cached_tokens, cached = lm.generate_greedy_with_logits(prompt, 12, use_cache=True)
        fresh_tokens, fresh = lm.generate_greedy_with_logits(prompt, 12, use_cache=False)
    assert cached_tokens == fresh_tokens
    torch.testing.assert_close(torch.stack(cached), torch.stack(fresh), rtol=1e-3, atol=1e-3)


def test_hf_dynamic_generation_avoids_transformers_stale_cache():
    """transformers caches rotated keys: under dynamic NTK its cached decoding drifts from the
    exact result, so the adapter recomputes instead (and says so)."""
    lm = llama(training_length=32)
    prompt = lm.encode(text(100, seed=12))[:60]
    with lm.rope_scaling(DYNAMIC):
        assert lm.generation_mode.startswith("no-cache")
        _, exact = lm.generate_greedy_with_logits(prompt, 6)
        _, stale = lm._generate_cached(torch.tensor([prompt]), 6, stop_at_eos=False)
        _, fresh = lm.generate_greedy_with_logits(prompt, 6, use_cache=False)
    torch.testing.assert_close(torch.stack(exact), torch.stack(fresh))
    assert (torch.stack(stale[1:]) - torch.stack(exact[1:])).abs().max() > 1e-3
    with lm.rope_scaling({"rope_type": "yarn", "factor": 4.0}):  # length-independent: the cache is exact
        assert lm.generation_mode == "kv-cache"
        _, cached = lm.generate_greedy_with_logits(prompt, 4)
        _, fresh = lm.generate_greedy_with_logits(prompt, 4, use_cache=False)
    torch.testing.assert_close(torch.stack(cached), torch.stack(fresh), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cases": 0}, "cases"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"lengths": []}, "lengths"),
        ({"scaling": {"rope_type": "nope"}}, "rope_type"),
    ],
)
def test_bad_arguments(rope_gpt, kwargs, match):
    kwargs.setdefault("lengths", [200])
    with pytest.raises(ValueError, match=match):
        evaluate_passkey(rope_gpt, progress=False, **kwargs)


@pytest.mark.parametrize(
    "make, scaling",
    [
        (lambda: gpt("rope", training_length=64), None),
        (lambda: gpt("coca", training_length=64), DYNAMIC),
        (lambda: gpt("alibi", training_length=64), None),
        (lambda: llama(training_length=64), None),
    ],
    ids=["rope", "coca-dynamic", "alibi", "hf-llama"],
)
def test_batched_cases_give_the_same_records(make, scaling):
    """batch_tokens is speed only: prompts of one token length are generated together (the
    cocattn cache takes a batch; other models loop), the answers scored in one padded pass."""
    lm = make()
    kwargs = dict(cases=6, max_new_tokens=5, seed=3, scaling=scaling, progress=False)
    one = evaluate_passkey(lm, [200, 300], **kwargs)
    many = evaluate_passkey(lm, [200, 300], batch_tokens=4096, **kwargs)
    assert many["settings"]["batch_tokens"] == 4096 and "batch_tokens" not in one["settings"]
    assert many["values"] == one["values"]
    for rows_one, rows_many in zip(one["details"]["cases"], many["details"]["cases"]):
        assert len({r["tokens"] for r in rows_many}) < len(rows_many)  # some lengths repeat: real batches ran
        for a, b in zip(rows_one, rows_many):
            assert {k: v for k, v in a.items() if k != "logprob"} == {k: v for k, v in b.items() if k != "logprob"}
            assert a["logprob"] == pytest.approx(b["logprob"], abs=1e-4)


def test_generate_greedy_batch_matches_one_row_at_a_time(rope_gpt):
    rows = [rope_gpt.encode(text(40, seed=s))[:30] for s in (1, 2, 3)]
    batched = rope_gpt.generate_greedy_batch(rows, 7, stop_at_eos=False)
    assert batched == [rope_gpt.generate_greedy(r, 7, stop_at_eos=False) for r in rows]
    with pytest.raises(ValueError, match="rows"):
        rope_gpt.generate_greedy_batch([rows[0], rows[1][:20]], 3)


# -- scoring checked on a model whose answers are known ---------------------------------------------


class ScriptedLM:
    """A byte-level "model" that, after a prompt of ``n`` tokens, puts logit ``A`` on the next byte
    of ``script`` and 0 on the 255 others (then newlines): its greedy output is ``script`` and the
    log-probability of any answer is known in closed form."""

    A = 4.0

    def __new__(cls, script: str, n: int):
        from cocattn.evaluate.protocol import LanguageModel

        class _LM(LanguageModel):
            name, kind, training_length = "scripted", "scripted", 64

            def encode(self, text: str) -> list[int]:
                return list(text.encode("utf-8"))

            def decode(self, ids) -> str:
                return bytes(ids).decode("utf-8", "replace")

            @property
            def device(self):
                return torch.device("cpu")

            def cache_is_exact(self) -> bool:
                return False  # greedy decoding recomputes through logits()

            def logits(self, ids, start=None):
                b, t = ids.shape
                out = torch.zeros(b, t, 256)
                for p in range(t):
                    j = p + 1 - n  # index of the scripted byte predicted at position p
                    target = ord(script[j]) if 0 <= j < len(script) else ord("\n")
                    out[:, p, target] = cls.A
                return out if start is None else out[:, start:]

        return _LM()


@pytest.mark.parametrize(
    "script, correct, exact",
    [
        (" 12345\n", True, True),  # right
        (" 67890\n", False, False),  # wrong
        (" 12399\n", False, False),  # partially right: 3 of 5 digits
        (" 7 then 12345", True, False),  # the key, but not as the first number
    ],
)
def test_passkey_scores_of_known_outputs(script, correct, exact):
    import math

    from cocattn.evaluate.passkey import build_prompt, score_cases

    probe = ScriptedLM(script, 0)
    prompt = build_prompt(probe, 400, 12345, 0.5)
    lm = ScriptedLM(script, len(prompt.ids))
    [record] = score_cases(lm, [prompt], max_new_tokens=len(script))
    assert record["output"] == script
    assert record["correct"] is correct and record["exact"] is exact
    # independent value: the answer " 12345" teacher-forced; a byte equal to the script's byte at
    # its step has log-probability A - log(e^A + 255), any other -log(e^A + 255)
    answer = " 12345"
    z = math.log(math.exp(ScriptedLM.A) + 255)
    expected = sum((ScriptedLM.A if answer[j] == script[j] else 0.0) - z for j in range(len(answer))) / len(answer)
    assert record["logprob"] == pytest.approx(expected, abs=1e-5)
