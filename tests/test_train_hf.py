"""Staged continued training from the project trainer: `cocattn train --init-from DIR
--stage N` on a Hugging Face CoCA model (tiny random LLaMA converted with `convert_llama`) and on a
native cocattn model, on a real data directory built by `cocattn data`'s own builder."""

from __future__ import annotations

import email
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

import cocattn.hf  # noqa: F401  registers coca_llama
from conftest import build_text_data
from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn.hf import convert_llama
from cocattn.train import train

SEQ = 32


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A small real-text data directory with a 384-token BPE (see conftest.build_text_data)."""
    return build_text_data(tmp_path_factory.mktemp("data"), vocab_size=384)


def data_vocab(data_dir: Path) -> int:
    return int(files.load_json(data_dir / "manifest.json")["tokenizer"]["vocab_size"])


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2 * SEQ,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def coca_dir(tmp_path_factory, data_dir) -> Path:
    """A converted CoCA model (T from K) saved with save_pretrained; its vocabulary is the data's."""
    out = tmp_path_factory.mktemp("init") / "coca"
    convert_llama(tiny_llama(data_vocab(data_dir)), t_init="from_k").save_pretrained(out)
    return out


def run_config(data_dir: Path, init_from: Path | None, stage: int | None, **train_overrides) -> dict:
    settings = {
        "batch_size": 4,
        "steps": 3,
        "lr": 1e-2,
        "min_lr": 1e-3,
        "warmup": 0,
        "weight_decay": 0.1,
        "log_interval": 1,
        "eval_interval": 3,
        "eval_iters": 1,
        "checkpoint_interval": 2,
        "threads": 1,
        "progress": False,
        "init_from": None if init_from is None else str(init_from),
        "stage": stage,
    }
    settings.update(train_overrides)
    return {"name": "continued", "model": {"max_seq_len": SEQ}, "data": {"dir": str(data_dir)}, "train": settings}


def hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, local_files_only=True)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed_names(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if not torch.equal(before[name], after[name])}


def test_stage1_trains_only_t_projections_and_saves_an_evaluable_hf_model(tmp_path, data_dir, coca_dir):
    from cocattn.evaluate.lm import load_lm
    from cocattn.evaluate.perplexity import evaluate_perplexity

    # no weight decay: a trained weight moves by its gradient alone
    result = train(run_config(data_dir, coca_dir, 1, weight_decay=0.0), tmp_path / "run")
    assert result.steps == 3 and math.isfinite(result.final_loss) and math.isfinite(result.val_loss)
    model_dir = tmp_path / "run" / "model"
    before, after = hf_weights(coca_dir), hf_weights(model_dir)
    t_names = {n for n in before if ".t_proj." in n}
    assert len(t_names) == 2 and changed_names(before, after) == t_names  # parameter by parameter
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()
    assert not any(model_dir.glob("*.bin"))
    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "coca_llama"
    saved = json.loads((model_dir / "cocattn_train.json").read_text())
    assert saved["run"]["train"]["stage"] == 1 and saved["train_result"]["steps"] == 3

    lm = load_lm(model_dir)  # what `cocattn eval ppl RUN/model` runs
    assert lm.kind == "hf" and lm.attention == "coca"
    text = (Path(json.__file__).parent / "decoder.py").read_text()
    assert lm.eos_id == 0  # the data tokenizer's end-of-text token, named in tokenizer_config.json
    record = evaluate_perplexity(lm, [text], lengths=[SEQ], stride=SEQ, progress=False)
    ppl = record["values"][0]
    assert math.isfinite(ppl) and 1 < ppl < 10 * data_vocab(data_dir)


def test_stage2_trains_q_t_v_and_an_hf_run_resumes_exactly(tmp_path, data_dir, coca_dir):
    constant = dict(steps=4, schedule="constant", checkpoint_interval=2, eval_interval=0, weight_decay=0.0)
    reference = train(run_config(data_dir, coca_dir, 2, **constant), tmp_path / "reference")
    before, after = hf_weights(coca_dir), hf_weights(tmp_path / "reference" / "model")
    expected = {n for n in before if n.split(".")[-2] in ("q_proj", "t_proj", "v_proj")}
    assert len(expected) == 6 and changed_names(before, after) == expected

    # stop after 2 steps (checkpoint at 2), then resume to 4: the same weights, bit for bit
    train(run_config(data_dir, coca_dir, 2, **dict(constant, steps=2)), tmp_path / "split")
    with pytest.raises(ValueError, match=r"train.stage=1 is not valid: expected 2, the value of the run"):
        train(run_config(data_dir, coca_dir, 1, **constant), tmp_path / "split", resume=True)
    resumed = train(run_config(data_dir, coca_dir, 2, **constant), tmp_path / "split", resume=True)
    assert resumed.resumed_from == 2 and resumed.final_loss == reference.final_loss
    assert changed_names(after, hf_weights(tmp_path / "split" / "model")) == set()


def test_vocabulary_mismatch_and_bad_stages_fail_clearly(tmp_path, data_dir, coca_dir):
    from cocattn.config import load_config
    from cocattn.data.read.tokenizer import train_tokenizer

    vocab = data_vocab(data_dir)
    bigger = tmp_path / "bigger"
    convert_llama(tiny_llama(vocab + 8)).save_pretrained(bigger)
    with pytest.raises(
        ValueError,
        match=rf"data.dir=.* is not valid: expected a data directory tokenized with the "
        rf"vocabulary of train.init_from=.*{vocab + 8} token embeddings.*{vocab} tokens",
    ):
        train(run_config(data_dir, bigger, 1), tmp_path / "a")

    other_tokenizer = tmp_path / "other"  # same size, another tokenizer: compared token by token
    shutil.copytree(coca_dir, other_tokenizer)
    texts = [(Path(email.__file__).parent / "header.py").read_text()] * 3
    (other_tokenizer / "tokenizer.json").write_text(train_tokenizer(texts, vocab).to_str())
    with pytest.raises(ValueError, match=r"map tokens to different ids\. Build the data with the model's tokenizer"):
        train(run_config(data_dir, other_tokenizer, 1), tmp_path / "b")

    llama = tmp_path / "llama"  # not CoCA: no T projection to train alone
    tiny_llama(vocab).save_pretrained(llama)
    with pytest.raises(ValueError, match=r"train.stage=1 is not valid: expected 3 or null .*t_proj"):
        train(run_config(data_dir, llama, 1), tmp_path / "c")
    with pytest.raises(ValueError, match=r"train.stage=2 is not valid: expected null when train.init_from is null"):
        load_config(run_config(data_dir, None, 2))
    with pytest.raises(ValueError, match=r"train.stage=4 is not valid: expected null, 1, 2 or 3"):
        load_config(run_config(data_dir, coca_dir, 4))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train(run_config(data_dir, tmp_path / "nowhere", 1), tmp_path / "d")
    assert not (tmp_path / "a" / "model").exists()


def test_native_coca_model_stage1_via_the_cli(tmp_path, data_dir, capsys):
    from cocattn.cli import main
    from cocattn.model import GPT, GPTConfig

    cfg = GPTConfig(vocab_size=data_vocab(data_dir), n_layer=2, n_head=2, n_embd=32, max_seq_len=SEQ, attention="coca")
    torch.manual_seed(0)
    ckpt.save_model(tmp_path / "native", GPT(cfg), tokenizer=data_dir / "tokenizer.json")
    file = tmp_path / "run.yaml"
    file.write_text(yaml.safe_dump(run_config(data_dir, None, None)))
    assert (
        main(
            ["train", "--config", str(file), "--init-from", str(tmp_path / "native"), "--stage", "1", "--print-config"]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)["train"]
    assert printed["init_from"] == str(tmp_path / "native") and printed["stage"] == 1
    code = main(
        [
            "train",
            "--config",
            str(file),
            "--init-from",
            str(tmp_path / "native"),
            "--stage",
            "1",
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 0 and "trained 3 steps" in capsys.readouterr().out
    before, _ = ckpt.load_model(tmp_path / "native")
    after, _ = ckpt.load_model(tmp_path / "run" / "model")
    b, a = dict(before.named_parameters()), dict(after.named_parameters())
    assert changed_names(b, a) == {n for n in b if ".t_proj." in n} != set()
