"""Model directories and trainer checkpoints: safetensors + JSON round trips, atomicity, checks."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn.model import GPT, GPTConfig


def _model(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=300, n_layer=2, n_head=2, n_embd=32, max_seq_len=16)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg))


def _tokenizer():
    from cocattn.data import train_tokenizer

    return train_tokenizer(["the pass key is 12345. remember it. " * 50], vocab_size=300)


@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_model_round_trip(tmp_path, tie):
    model = _model(tie_embeddings=tie, attention="coca")
    tok = _tokenizer()
    ckpt.save_model(tmp_path / "m", model, tokenizer=tok, extra={"note": "x"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "cocattn" and config["model"] == model.config.to_dict() and config["note"] == "x"
    loaded, loaded_tok = ckpt.load_model(tmp_path / "m")
    idx = torch.randint(0, 300, (2, 12))
    assert torch.equal(model(idx)[0], loaded(idx)[0])
    assert (loaded.lm_head.weight is loaded.wte.weight) == tie
    assert loaded_tok.encode("the pass key").ids == tok.encode("the pass key").ids


def test_load_model_checks_vocab_and_attention(tmp_path):
    ckpt.save_model(tmp_path / "m", _model(attention="rope"))
    with pytest.raises(
        ValueError, match="vocab_size=300 in the checkpoint does not match the requested vocab_size=512"
    ):
        ckpt.load_model(tmp_path / "m", expected_config={"vocab_size": 512})
    with pytest.raises(
        ValueError, match="attention='rope' in the checkpoint does not match the requested attention='coca'"
    ):
        ckpt.load_model(tmp_path / "m", expected_config=_model(attention="coca").config)


def test_corrupt_or_foreign_model_files_are_named(tmp_path):
    ckpt.save_model(tmp_path / "m", _model())
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        ckpt.load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="config.json"):
        ckpt.load_model(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="missing"):
        ckpt.load_model(tmp_path / "missing")


def test_model_directory_with_a_pickle_is_refused_before_loading(tmp_path):
    class Payload:
        def __reduce__(self):
            return (Path.write_text, (tmp_path / "MARKER", "pwned"))

    ckpt.save_model(tmp_path / "m", _model())
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(files.UnsafeFileError, match="pytorch_model.bin"):
        ckpt.load_model(tmp_path / "m")
    with pytest.raises(files.UnsafeFileError):
        ckpt.load_checkpoint(tmp_path / "m")
    assert not (tmp_path / "MARKER").exists()


def test_flatten_state_round_trips_optimizer_and_rng_state():
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.randint(0, 300, (2, 8)), torch.randint(0, 300, (2, 8)))[1].backward()
    opt.step()
    random.random(), np.random.rand()
    state = {"optimizer": opt.state_dict(), "rng": ckpt.rng_state(), "nan": float("nan"), "n": 3}
    skeleton, tensors = ckpt.flatten_state(state)
    json.dumps(skeleton)  # the structure is plain JSON
    restored = ckpt.unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    o1, o2 = state["optimizer"], restored["optimizer"]
    assert o2["param_groups"] == o1["param_groups"] and isinstance(o2["param_groups"][0]["betas"], tuple)
    assert set(o2["state"]) == set(o1["state"])  # int parameter ids stay ints
    for pid, entry in o1["state"].items():
        for name, value in entry.items():
            assert torch.equal(o2["state"][pid][name], value) and o2["state"][pid][name].dtype == value.dtype
    ckpt.set_rng_state(restored["rng"])
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    ckpt.set_rng_state(state["rng"])
    assert a == (random.random(), float(np.random.rand()), float(torch.rand(1)))
    assert np.isnan(restored["nan"]) and restored["n"] == 3


def test_checkpoints_keep_the_last_n_and_point_latest_at_the_newest(tmp_path):
    model = _model()
    for step in (10, 20, 30, 40):
        ckpt.save_checkpoint(tmp_path, step, model, {"step": step, "g": torch.Generator().get_state()}, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [30, 40]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step_0000040"
    assert ckpt.latest_checkpoint(tmp_path).name == "step_0000040"
    fresh = _model(n_layer=2)
    with torch.no_grad():
        for p in fresh.parameters():
            p.zero_()
    state = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), fresh, expected_config=model.config)
    assert state["step"] == 40 and torch.equal(fresh.wte.weight, model.wte.weight)
    with pytest.raises(ValueError, match="attention"):
        ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path), expected_config={"attention": "alibi"})


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    model = _model()
    ckpt.save_checkpoint(tmp_path, 5, model, {"step": 5})

    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.trainer, "_write_model_files", crash)
    with pytest.raises(files.AtomicWriteError, match="step_0000010.*disk full"):
        ckpt.save_checkpoint(tmp_path, 10, model, {"step": 10})
    monkeypatch.undo()
    assert ckpt.latest_checkpoint(tmp_path).name == "step_0000005"
    assert ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))["step"] == 5
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []
