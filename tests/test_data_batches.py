"""Training batches and retrieval warm-up rows: shapes, validity and determinism from a
``torch.Generator`` (the trainer resumes by restoring its state)."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
import torch

from cocattn.data import sample_batch, train_tokenizer
from cocattn.tasks.warmup import make_retrieval_row, mix_retrieval_rows

WORDS = "the quick brown fox jumps over a lazy dog while seven wise kings count their golden sheep".split()


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(400)) + " The pass key is 12345. What is it?" for _ in range(20)]
    return train_tokenizer(texts, vocab_size=320)


@pytest.fixture(scope="module")
def filler(tokenizer):
    rng = random.Random(1)
    text = " ".join(rng.choice(WORDS) for _ in range(3000))
    return np.asarray(tokenizer.encode(text).ids, dtype=np.uint16)


def test_sample_batch_shapes_targets_and_resume(filler):
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    x, y = sample_batch(filler, 4, 16, gen)
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
    row = x[0].numpy()
    starts = [i for i in range(len(filler) - 16) if np.array_equal(filler[i : i + 16], row)]
    assert starts and np.array_equal(filler[starts[0] + 1 : starts[0] + 17], y[0].numpy())
    x2, _ = sample_batch(filler, 4, 16, gen)
    resumed = torch.Generator()
    resumed.set_state(state)  # restoring the state replays the same batches
    assert torch.equal(sample_batch(filler, 4, 16, resumed)[0], x)
    assert torch.equal(sample_batch(filler, 4, 16, resumed)[0], x2)
    assert not torch.equal(x, x2)
    with pytest.raises(ValueError, match="seq_len=5000"):
        sample_batch(filler, 2, 5000, gen)


def test_retrieval_row_format(tokenizer, filler):
    gen = torch.Generator().manual_seed(3)
    seq_len = 160
    for _ in range(10):
        row, key = make_retrieval_row(gen, tokenizer, filler, seq_len)
        assert row.shape == (seq_len + 1,) and row.dtype == torch.int64
        assert 10000 <= key <= 99999 and int(row.max()) < tokenizer.get_vocab_size()
        text = tokenizer.decode(row.tolist())
        assert text.endswith(f"What is the passkey? The passkey is {key}")
        assert f"The passkey is {key}. Remember it. {key} is the passkey." in text
        assert len(re.findall(str(key), text)) == 3


def test_retrieval_rows_are_deterministic_and_vary(tokenizer, filler):
    a = [make_retrieval_row(torch.Generator().manual_seed(5), tokenizer, filler, 160)[0] for _ in range(2)]
    assert torch.equal(a[0], a[1])
    gen = torch.Generator().manual_seed(5)
    rows = [make_retrieval_row(gen, tokenizer, filler, 160) for _ in range(20)]
    assert len({k for _, k in rows}) > 15  # keys vary
    needle = tokenizer.encode(f" The passkey is {rows[0][1]}.").ids
    assert len(needle) < 160
    depths = set()
    for row, key in rows:  # the needle sits at varying depths
        text = tokenizer.decode(row.tolist())
        depths.add(text.index(f"The passkey is {key}. Remember"))
    assert len(depths) > 10
    with pytest.raises(ValueError, match="seq_len=10"):
        make_retrieval_row(gen, tokenizer, filler, 10)


def test_mix_retrieval_rows(tokenizer, filler):
    gen = torch.Generator().manual_seed(0)
    x, y = sample_batch(filler, 8, 128, gen)
    same = mix_retrieval_rows(x, y, 0.0, tokenizer, filler, gen)
    assert same[0] is x and same[1] is y
    state = gen.get_state()
    mx, my = mix_retrieval_rows(x, y, 1.0, tokenizer, filler, gen)
    assert torch.equal(mx[:, 1:], my[:, :-1])
    assert all(
        tokenizer.decode(mx[i].tolist() + [my[i, -1].item()]).rstrip("0123456789").endswith("The passkey is ")
        for i in range(8)
    )
    replay = torch.Generator()
    replay.set_state(state)
    assert torch.equal(mix_retrieval_rows(x, y, 1.0, tokenizer, filler, replay)[0], mx)
    gen.manual_seed(1)
    counts = [
        sum(not torch.equal(a, b) for a, b in zip(mix_retrieval_rows(x, y, 0.25, tokenizer, filler, gen)[0], x))
        for _ in range(40)
    ]
    assert 0.15 < sum(counts) / (40 * 8) < 0.35  # about the requested fraction
    with pytest.raises(ValueError, match="retrieval_fraction=1.5"):
        mix_retrieval_rows(x, y, 1.5, tokenizer, filler, gen)
