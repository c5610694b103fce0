"""`cocattn reproduce --plan`: the counted work matches what the model and the evaluation do."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cocattn.attention import functional as AF
from cocattn.cli import main
from cocattn.model import GPT, GPTConfig
from cocattn.pipeline.plan import ModelShape, format_plan, plan_run

CONFIG = dict(vocab_size=512, n_layer=2, n_head=4, n_embd=64, max_seq_len=128, attention="coca")


def _attention(shape: ModelShape, window: int) -> float:
    return 2.0 * window * window * shape.d_model * shape.n_layer


@pytest.mark.parametrize("gqa", [False, True])
def test_dense_operations_equal_torchs_flop_counter(gqa):
    """The matrix products of a forward (blocks and output layer) are counted exactly, and a
    training step is three forwards' worth."""
    cfg = {**CONFIG, "n_kv_head": 2} if gqa else CONFIG
    shape = ModelShape.from_config(cfg)
    model = GPT(GPTConfig.from_dict(cfg))
    x = torch.randint(0, 512, (1, 96))
    with FlopCounterMode(display=False) as fc:
        model(x)
    assert fc.get_total_flops() == shape.forward_flops(96, 96) - _attention(shape, 96)
    with FlopCounterMode(display=False) as fc:
        model(x, x)[1].backward()
    assert fc.get_total_flops() == 3 * (shape.forward_flops(96, 96) - _attention(shape, 96))
    assert shape.parameters == sum(p.numel() for p in model.parameters())


def test_causal_attention_is_half_the_full_score_matrix():
    shape = ModelShape.from_config(CONFIG)
    q, k, v = (torch.randn(1, 4, 80, 16) for _ in range(3))  # 4 heads × 16 = d_model 64
    with FlopCounterMode(display=False) as fc:  # the eager path computes every score, masked or not
        AF.nope_attention(q, k, v, need_weights=True)
    assert _attention(shape, 80) / shape.n_layer == fc.get_total_flops() / 2


def test_plan_of_the_gpu_preset_without_data():
    plan = plan_run("small-gpu")
    assert plan.kinds == ["rope", "coca", "coca-strict", "alibi"]
    assert len(plan.settings) == 3 * 4 + 1  # rotary kinds plain and x2/x4/x8; alibi plain
    assert plan.lengths == [512 * m for m in (1, 2, 4, 8, 16, 32, 64)]
    assert plan.train_steps * plan.train_tokens_per_step == 3000 * 64 * 512
    # 25 documents of 32,769 tokens: the window of 32K reads each once, every length scores all
    assert plan.ppl_windows[32768] == 25 and plan.ppl_scored[512] == plan.ppl_scored[32768] == 25 * 32768
    assert plan.ppl_tokens[16384] > plan.ppl_tokens[512] * 10  # long windows slide: most of the work
    text = format_plan(plan)
    assert "| 32,768 | 25 |" in text and "13 settings" in text


def test_plan_cli_runs_nothing(tmp_path, capsys):
    assert main(["reproduce", "--plan", "--out", str(tmp_path / "out"), "train.steps=70"]) == 0
    out = capsys.readouterr().out
    assert "× 70 steps" in out and "nothing is run" in out
    assert not (tmp_path / "out").exists()


def test_perplexity_windows_are_the_ones_the_evaluation_reads():
    """Documents shorter than a length are read whole at that length, and a length past the
    longest document is skipped: the plan counts what ``evaluate_perplexity`` scores."""
    import warnings

    from cocattn.evaluate.perplexity import evaluate_perplexity
    from cocattn.pipeline.plan import perplexity_windows
    from helpers.eval_models import gpt

    lm = gpt("coca", training_length=32)
    gen = torch.Generator().manual_seed(0)
    docs = [torch.randint(0, 100, (n,), generator=gen).tolist() for n in (50, 130, 300, 1)]
    lengths = [32, 64, 256, 512]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 512 is longer than every document: skipped, with a warning
        record = evaluate_perplexity(
            lm, docs, lengths, stride=16, max_tokens=1000, too_long="skip", batch_tokens=512, progress=False
        )
    windows = perplexity_windows([len(d) for d in docs], lengths, stride=16)
    assert [sum(e - f + 1 for _, e, f in windows[n]) for n in lengths] == record["counts"]
    assert windows[512] == [] and record["counts"][-1] == 0
