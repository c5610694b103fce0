"""Attention transfer on tiny random LLaMA models: fitting CoCA attention to the original
attention outputs, layer by layer; resume; bad input; the CLI in a new process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import cocattn.hf  # noqa: F401  registers coca_llama
from cocattn.data.read.tokenizer import EOT, train_tokenizer
from cocattn.hf import convert_llama
from cocattn.hf.transfer import (
    TransferSettings,
    layer_errors,
    state_dir_for,
    transfer_attention,
    transfer_llama_dir,
    transfer_tokens,
)

VOCAB = 300
SEQ = 32


def tiny_llama(layers: int = 2, seed: int = 0, **overrides) -> LlamaForCausalLM:
    # initializer_range 0.3: peaked attention, so the CoCA layer starts far from the original
    settings = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2 * SEQ,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        initializer_range=0.3,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**settings)).eval()


def ids(n: int = 8, length: int = SEQ, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, length), generator=torch.Generator().manual_seed(seed))


FAST = dict(tokens=8 * SEQ, seq_len=SEQ, steps=60, lr=1e-2, batch_size=4, check_sequences=8)


def text(words: int = 4000, seed: int = 0) -> str:
    """Real text (the source of Python's json and email packages): ``words`` words from word
    ``seed * words`` on."""
    import email

    files = [f for package in (json, email) for f in sorted(Path(package.__file__).parent.glob("*.py"))]
    source = "".join(f.read_text(encoding="utf-8") for f in files).split()
    return " ".join(source[seed * words : (seed + 1) * words])


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    """A tiny LLaMA directory with its own tokenizer (a BPE of VOCAB tokens, `<|endoftext|>` as EOS)."""
    out = tmp_path_factory.mktemp("llama") / "llama"
    tok = train_tokenizer([text()], vocab_size=VOCAB)
    tiny_llama(layers=3).save_pretrained(out)
    PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT).save_pretrained(out)
    return out


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "cocattn", *args], capture_output=True, text=True, env=env, **kw)


# --- the fit ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fit", [("t",), ("t", "q", "gain")])
def test_transfer_beats_from_k_and_random_on_every_layer(fit) -> None:
    llama, x = tiny_llama(), ids()
    from_k = layer_errors(llama, convert_llama(llama, t_init="from_k"), x)
    random = layer_errors(llama, convert_llama(llama, t_init="random", seed=0), x)
    coca = convert_llama(llama, t_init="from_k")
    records = transfer_attention(llama, coca, x, TransferSettings(fit=fit, **FAST), progress=False)
    after = layer_errors(llama, coca, x)
    assert len(records) == len(after) == llama.config.num_hidden_layers  # one record per layer, none skipped
    for layer, record in enumerate(records):
        assert record["error_before"] == pytest.approx(from_k[layer], rel=1e-5)
        assert record["error_after"] == pytest.approx(after[layer], rel=1e-5)  # the model holds the fit
        assert after[layer] < 0.9 * from_k[layer] and after[layer] < 0.9 * random[layer], (layer, after, from_k, random)


def test_q_and_gain_fit_better_than_t_alone() -> None:
    llama, x = tiny_llama(), ids()
    errors = {}
    for fit in (("t",), ("t", "q", "gain")):
        coca = convert_llama(llama)
        transfer_attention(llama, coca, x, TransferSettings(fit=fit, **FAST), progress=False)
        errors[fit] = layer_errors(llama, coca, x)
    assert all(a < b for a, b in zip(errors[("t", "q", "gain")], errors[("t",)]))


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not torch.equal(before[name], after[name])}


@pytest.mark.parametrize(
    "fit, expected",
    [
        (("t",), {"t_proj"}),
        (("t", "q"), {"t_proj", "q_proj"}),
        (("t", "gain"), {"t_proj", "o_proj"}),
    ],
)
def test_only_the_named_projections_change(fit, expected) -> None:
    llama, x = tiny_llama(), ids()
    source_before = {k: v.clone() for k, v in llama.state_dict().items()}
    coca = convert_llama(llama)
    before = {k: v.clone() for k, v in coca.state_dict().items()}
    transfer_attention(llama, coca, x, TransferSettings(fit=fit, **FAST), progress=False)
    after = coca.state_dict()
    changed = _changed(before, after)
    assert changed == {f"model.layers.{i}.self_attn.{p}.weight" for i in range(2) for p in expected}
    assert not _changed(source_before, llama.state_dict())  # the teacher is never touched
    if "gain" in fit:  # a per-head gain: o_proj's columns of head h are scaled by one number
        for i in range(2):
            name = f"model.layers.{i}.self_attn.o_proj.weight"
            ratio = (after[name] / before[name]).view(32, 4, 8)
            assert torch.allclose(ratio, ratio[:1, :, :1].expand_as(ratio), rtol=1e-4)
            assert not torch.allclose(ratio, torch.ones_like(ratio))


def test_teacher_inputs_are_the_original_models_hidden_states() -> None:
    """layer_errors of the original attention against itself would be 0 only if the stack feeds
    each layer the original model's own hidden states: compare with output_hidden_states."""
    from cocattn.hf.transfer.stack import _Stack

    llama, x = tiny_llama(layers=3), ids(4)
    stack = _Stack(llama, convert_llama(llama), x, chunk=3)
    hidden = llama(x, output_hidden_states=True).hidden_states
    for layer in range(3):
        torch.testing.assert_close(stack.hidden, hidden[layer], rtol=1e-5, atol=1e-5)
        stack.advance()


class Stop(Exception):
    pass


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path) -> None:
    llama, x = tiny_llama(layers=3), ids()
    settings = TransferSettings(fit=("t", "q", "gain"), **FAST)
    whole = convert_llama(llama)
    full_records = transfer_attention(llama, whole, x, settings, progress=False)

    def stop_after_first(record: dict) -> None:
        if record["layer"] == 0:
            raise Stop

    state = tmp_path / "state"
    with pytest.raises(Stop):
        transfer_attention(
            llama, convert_llama(llama), x, settings, state_dir=state, on_layer=stop_after_first, progress=False
        )
    assert json.loads((state / "progress.json").read_text())["layers"][0]["layer"] == 0
    seen = []
    resumed = convert_llama(llama)
    records = transfer_attention(llama, resumed, x, settings, state_dir=state, on_layer=seen.append, progress=False)
    assert [r["layer"] for r in seen] == [1, 2]  # layer 0 came from the state, not refitted

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rs]

    assert strip(records) == strip(full_records)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    # other settings: the old state (ours) is discarded, not reused
    other = TransferSettings(fit=("t",), **FAST)
    seen.clear()
    transfer_attention(llama, convert_llama(llama), x, other, state_dir=state, on_layer=seen.append, progress=False)
    assert [r["layer"] for r in seen] == [0, 1, 2]


def test_a_state_dir_holding_something_else_is_refused_and_kept(tmp_path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="state_dir"):
        transfer_attention(
            tiny_llama(), convert_llama(tiny_llama()), ids(), TransferSettings(**FAST), state_dir=mine, progress=False
        )
    assert (mine / "notes.txt").read_text() == "keep me"


# --- data -------------------------------------------------------------------------------------


def test_transfer_tokens_from_text_jsonl_and_a_data_directory(tmp_path, llama_dir) -> None:
    from transformers import AutoTokenizer

    from conftest import build_text_data

    tok = AutoTokenizer.from_pretrained(llama_dir)
    body = text()
    (tmp_path / "a.txt").write_text(body)
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": body}) + "\n")
    settings = TransferSettings(tokens=4 * SEQ, seq_len=SEQ)
    expected = tok.encode(body, add_special_tokens=False) + [tok.eos_token_id]
    for name in ("a.txt", "a.jsonl"):
        got = transfer_tokens(tmp_path / name, tok, settings)
        assert got.shape == (4, SEQ)
        assert got[0].tolist() == expected[:SEQ]  # windows of the real token stream
        assert got[-1].tolist() == expected[len(expected) - SEQ :]
    data = build_text_data(tmp_path / "d", vocab_size=384)  # another vocabulary: decoded, re-encoded
    got = transfer_tokens(data, tok, settings)
    assert got.shape == (4, SEQ) and int(got.max()) < VOCAB
    originals = [p.read_text() for p in (tmp_path / "d" / "texts").iterdir()]
    for row in got:  # each window is real training text, re-encoded with the model's tokenizer
        assert any(tok.decode(row.tolist()) in doc for doc in originals)


def test_bad_inputs_fail_clearly_and_write_nothing(tmp_path, llama_dir) -> None:
    short = tmp_path / "short.txt"
    short.write_text("too short")
    dst = tmp_path / "out"
    with pytest.raises(ValueError, match=r"transfer data.*seq_len=32"):
        transfer_llama_dir(llama_dir, dst, short, TransferSettings(**FAST), progress=False)
    assert not dst.exists() and not state_dir_for(dst).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["short.txt"]  # no temporaries left

    dst.mkdir()
    (dst / "keep").write_text("x")
    with pytest.raises(FileExistsError, match="already exists"):
        transfer_llama_dir(llama_dir, dst, short, TransferSettings(**FAST), progress=False)
    assert (dst / "keep").read_text() == "x"

    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        transfer_llama_dir(gpt2, tmp_path / "o2", short, progress=False)

    odd = tmp_path / "odd"
    tiny_llama(hidden_size=12, num_attention_heads=4, num_key_value_heads=2, head_dim=3).save_pretrained(odd)
    with pytest.raises(ValueError, match="head_dim=3"):
        transfer_llama_dir(odd, tmp_path / "o3", short, progress=False)
    with pytest.raises(ValueError, match="CocaLlamaForCausalLM"):  # the student must be CoCA
        transfer_attention(tiny_llama(), tiny_llama(), ids(), progress=False)
    with pytest.raises(ValueError, match="fit"):
        TransferSettings(fit=("q",))
    with pytest.raises(ValueError, match="fit"):
        TransferSettings(fit=("t", "k"))
    with pytest.raises(ValueError, match="seq_len"):
        TransferSettings(seq_len=1)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


# --- the command, in new processes --------------------------------------------------------------


def test_cli_transfer_killed_and_rerun_equals_an_uninterrupted_run(tmp_path, llama_dir) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": text(words=1500, seed=i)}) + "\n" for i in range(3)))
    common = [
        "--transfer",
        "--data",
        str(data),
        "--tokens",
        str(8 * SEQ),
        "--seq-len",
        str(SEQ),
        "--lr",
        "1e-2",
        "--fit",
        "t,q,gain",
        "--quiet",
    ]

    whole = tmp_path / "whole"
    run = cli("convert", "llama", str(llama_dir), str(whole), "--steps", "150", *common)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and not state_dir_for(whole).exists()

    # a real kill (SIGKILL) once the first layer is saved, then the same command again
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cocattn", "convert", "llama", str(llama_dir), str(killed), "--steps", "150", *common],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    state = state_dir_for(killed)
    deadline = time.time() + 120

    def layers_done() -> int:
        try:
            return len(json.loads((state / "progress.json").read_text())["layers"])
        except (OSError, ValueError, KeyError):
            return 0

    while time.time() < deadline and layers_done() == 0 and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the transfer finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists()  # nothing half-written
    done = json.loads((state / "progress.json").read_text())["layers"]
    assert 1 <= len(done) < 3
    rerun = cli("convert", "llama", str(llama_dir), str(killed), "--steps", "150", *common)
    assert rerun.returncode == 0, rerun.stderr
    assert not state.exists()

    # the two directories hold the same weights and records; they load in a new process
    check = f"""
import json, sys, torch
import cocattn.hf
from transformers import AutoModelForCausalLM
from cocattn.hf import layer_errors
from cocattn.hf.convert import load_llama
a = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
b = AutoModelForCausalLM.from_pretrained(sys.argv[2]).eval()
sa, sb = a.state_dict(), b.state_dict()
assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), "resumed != uninterrupted"
src = load_llama(sys.argv[3])
record = json.load(open(sys.argv[1] + "/cocattn_transfer.json"))
x = torch.randint(0, {VOCAB}, (4, {SEQ}), generator=torch.Generator().manual_seed(7))
from cocattn.hf import convert_llama
before = layer_errors(src, convert_llama(src), x)
after = layer_errors(src, a, x)
print(json.dumps({{"before": before, "after": after, "layers": len(record["layers"]), "type": type(a).__name__}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", check, str(whole), str(killed), str(llama_dir)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["type"] == "CocaLlamaForCausalLM" and result["layers"] == 3
    assert all(a < b for a, b in zip(result["after"], result["before"]))  # on tokens it was not fitted on
    a = json.loads((whole / "cocattn_transfer.json").read_text())
    b = json.loads((killed / "cocattn_transfer.json").read_text())
    assert a["layers"] == [dict(r, seconds=s["seconds"]) for r, s in zip(b["layers"], a["layers"])]
    assert a["settings"]["fit"] == ["t", "q", "gain"] and a["tokens"] == 8 * SEQ
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (whole / name).read_bytes() == (llama_dir / name).read_bytes()


def test_cli_transfer_options_need_transfer_and_data(tmp_path, llama_dir) -> None:
    run = cli("convert", "llama", str(llama_dir), str(tmp_path / "x"), "--steps", "3")
    assert run.returncode != 0 and "--steps only apply with --transfer" in run.stderr
    run = cli("convert", "llama", str(llama_dir), str(tmp_path / "x"), "--transfer")
    assert run.returncode != 0 and "--transfer needs --data" in run.stderr
    run = cli(
        "convert", "llama", str(llama_dir), str(tmp_path / "x"), "--transfer", "--data", str(llama_dir / "config.json")
    )
    assert run.returncode != 0 and "transfer data" in run.stderr
    assert not (tmp_path / "x").exists()
