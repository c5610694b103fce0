"""Retrieval-suite rows in the training warm-up (``data.retrieval_tasks``): the evaluation's wording
and gold answer at the end of an exact-length row, deterministic, the passkey default unchanged,
clear errors, and the mix recorded with the model and with every result."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from cocattn.tasks.warmup import make_retrieval_row, make_task_row, mix_retrieval_rows
from cocattn.tasks.ruler import NIAH_NEEDLE, parse_task
from conftest import build_text_data
from helpers.eval_models import text, tokenizer


@pytest.fixture(scope="module")
def filler():
    return np.asarray(tokenizer().encode(text(6000, seed=9)).ids, dtype=np.uint16)


@pytest.mark.parametrize(
    "task, seq_len",
    [
        ("niah_single", 200),
        ("niah_multikey", 400),
        ("niah_multivalue", 400),
        ("niah_multiquery", 500),
        ("vt:hops=2", 400),
        ("cwe:common=3:common_repeats=3", 300),
    ],
)
def test_task_rows_end_with_the_gold_answer(filler, task, seq_len):
    spec = parse_task(task)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        row, expected = make_task_row(gen, tokenizer(), filler, seq_len, task)
        assert row.shape == (seq_len + 1,) and row.dtype == torch.int64
        decoded = tokenizer().decode(row.tolist())
        body, question = decoded.rsplit("\n", 1)
        assert question.endswith(" " + ", ".join(expected))  # the gold answer closes the row
        assert all(v in body for v in expected)
        if spec.family == "niah":
            assert body.count("One of the special numbers for") == spec.keys * spec.values
            key = re.split(r", | and ", question.split(" for ")[1].split("?")[0])[0]
            assert NIAH_NEEDLE.format(key=key, value=expected[0]) in body
        if spec.family != "cwe":
            assert "\n" in body and body.split("\n")[-2].endswith(("Remember them.", "text below."))


def test_task_rows_are_deterministic_and_vary(filler):
    a = make_task_row(torch.Generator().manual_seed(4), tokenizer(), filler, 400, "niah_multikey")
    b = make_task_row(torch.Generator().manual_seed(4), tokenizer(), filler, 400, "niah_multikey")
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    gen = torch.Generator().manual_seed(4)
    answers = {tuple(make_task_row(gen, tokenizer(), filler, 400, "niah_multikey")[1]) for _ in range(10)}
    assert len(answers) == 10


def test_the_passkey_default_draws_the_rows_it_always_drew(filler):
    x = torch.zeros(6, 200, dtype=torch.int64)
    y = torch.zeros(6, 200, dtype=torch.int64)
    old = mix_retrieval_rows(x, y, 1.0, tokenizer(), filler, torch.Generator().manual_seed(2))
    new = mix_retrieval_rows(x, y, 1.0, tokenizer(), filler, torch.Generator().manual_seed(2), ["passkey"])
    assert torch.equal(old[0], new[0]) and torch.equal(old[1], new[1])
    replay = torch.Generator().manual_seed(2)
    torch.rand(6, generator=replay)  # the Bernoulli draws come first
    assert torch.equal(old[0][0], make_retrieval_row(replay, tokenizer(), filler, 200)[0][:-1])


def test_mixed_rows_draw_every_task(filler):
    x = torch.zeros(40, 400, dtype=torch.int64)
    mx, my = mix_retrieval_rows(
        x,
        x.clone(),
        1.0,
        tokenizer(),
        filler,
        torch.Generator().manual_seed(3),
        ["passkey", "niah_multikey", "vt:hops=2"],
    )
    texts = [tokenizer().decode(torch.cat([r, t[-1:]]).tolist()) for r, t in zip(mx, my)]
    kinds = {
        (
            "passkey"
            if "What is the passkey?" in t
            else "vt"
            if "Which variables" in t
            else "niah"
            if "special number" in t
            else "?"
        )
        for t in texts
    }
    assert kinds == {"passkey", "vt", "niah"}
    assert torch.equal(mx[:, 1:], my[:, :-1])


def test_rows_that_do_not_fit_are_clear_errors(filler):
    with pytest.raises(ValueError, match=r"seq_len=64 .*at least \d+ to hold a niah_multikey row"):
        make_task_row(torch.Generator().manual_seed(0), tokenizer(), filler, 64, "niah_multikey")
    with pytest.raises(ValueError, match=r"seq_len=128 .*to hold a cwe row"):
        make_task_row(torch.Generator().manual_seed(0), tokenizer(), filler, 128, "cwe")


def test_training_records_the_mix_and_every_result_repeats_it(tmp_path_factory):
    from cocattn.evaluate.lm import load_lm
    from cocattn.evaluate.retrieval import evaluate_retrieval
    from cocattn.train import train

    data = build_text_data(tmp_path_factory.mktemp("data"), vocab_size=512)
    run = tmp_path_factory.mktemp("run") / "run"
    config = {
        "name": "t",
        "model": {"vocab_size": None, "n_layer": 1, "n_head": 2, "n_embd": 32, "max_seq_len": 256},
        "data": {"dir": str(data), "retrieval_fraction": 0.5, "retrieval_tasks": ["passkey", "niah_multikey"]},
        "train": {
            "batch_size": 4,
            "steps": 3,
            "warmup": 1,
            "eval_interval": 0,
            "checkpoint_interval": 0,
            "log_interval": 1,
            "threads": 1,
            "progress": False,
        },
    }
    train(config, run)
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["run"]["data"]["retrieval_tasks"] == ["passkey", "niah_multikey"]
    lm = load_lm(run / "model")
    mix = {"retrieval_fraction": 0.5, "retrieval_tasks": ["passkey", "niah_multikey"]}
    assert lm.training_mix == mix
    (record,) = evaluate_retrieval(lm, "niah_single", [256], cases=2, progress=False)
    assert record["training_mix"] == mix
    bad = dict(config, data=dict(config["data"], retrieval_tasks=["niah_multiquery:keys=12"]))
    with pytest.raises(ValueError, match=r"max_seq_len=256 .*niah_multiquery:keys=12 row does not fit"):
        train(bad, tmp_path_factory.mktemp("bad") / "run")
    with pytest.raises(ValueError, match="retrieval_tasks.*did you mean 'vt'"):
        train(dict(config, data=dict(config["data"], retrieval_tasks=["vtt"])), tmp_path_factory.mktemp("b2") / "r")
