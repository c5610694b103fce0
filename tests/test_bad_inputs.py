"""Inputs that printed a traceback or were silently accepted (docs/RELIABILITY.md, section 8). Each case
is run the way a user meets it (the CLI's ``main``: exit code 2 and a message naming the input)
or through the loader it reaches, and checks the message, not only that something failed."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

from cocattn.cli import main
from conftest import build_text_data
from helpers.eval_models import save_cli_models, text


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return save_cli_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return build_text_data(tmp_path_factory.mktemp("data"), vocab_size=400)


def _eval(model, docs, *extra):
    return ["eval", "ppl", str(model), "--data", str(docs), "--lengths", "16", "--no-progress", *extra]


# -- tracebacks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated_weights", "config_list", "heads_3"])
def test_broken_hf_directories_are_clear_errors(models, tmp_path, capsys, damage):
    bad = tmp_path / "hf"
    shutil.copytree(models / "hf", bad)
    if damage == "truncated_weights":
        weights = bad / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "config_list":
        (bad / "config.json").write_text(json.dumps([json.loads((bad / "config.json").read_text())]))
    else:
        config = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config, "num_attention_heads": 3}))
    assert main(_eval(bad, models / "docs.jsonl")) == 2
    err = capsys.readouterr().err
    assert f"checkpoint={str(bad)!r} is not valid" in err and "Traceback" not in err
    assert main(["convert", "llama", str(bad), str(tmp_path / "out")]) == 2
    assert str(bad) in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "spec, key",
    [
        ('{"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 32, "beta_fast": "16"}', "beta_fast"),
        (
            '{"rope_type": "llama3", "factor": 4, "original_max_position_embeddings": 32, "low_freq_factor": "1", '
            '"high_freq_factor": 4}',
            "low_freq_factor",
        ),
        ('{"rope_type": "dynamic", "factor": Infinity}', "factor"),
    ],
)
def test_rope_json_with_strings_or_inf_names_the_field(models, capsys, spec, key):
    assert main(_eval(models / "gpt", models / "docs.jsonl", "--rope-json", spec)) == 2
    assert f"rope_parameters.{key}=" in capsys.readouterr().err


def test_factor_inf_is_refused_before_the_run(models, tmp_path, capsys):
    """`--factor inf` ran, printed '–' and failed writing --out on NaN."""
    out = tmp_path / "r.json"
    assert (
        main(_eval(models / "gpt", models / "docs.jsonl", "--rope", "dynamic", "--factor", "inf", "--out", str(out)))
        == 2
    )
    assert "rope_parameters.factor=inf is not valid: expected a finite number >= 1" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable CUDA device")
def test_device_cuda_without_cuda_is_a_clear_error(models, capsys):
    for device in ("cuda", "cuda:1"):
        assert main(_eval(models / "gpt", models / "docs.jsonl", "--device", device)) == 2
        assert f"--device={device!r} is not valid: expected 'cpu' or 'auto'" in capsys.readouterr().err


def _rewrite_shard(data, name: str, tokens: np.ndarray, dtype: str) -> None:
    """Replace a shard and update the manifest's size, sha256, token count and dtype consistently
    (a crafted directory that passes the checksum checks)."""
    from cocattn.files import sha256_file

    (data / name).write_bytes(tokens.astype(dtype).tobytes())
    manifest = json.loads((data / "manifest.json").read_text())
    entry = manifest["files"][name]
    entry.update(
        size=(data / name).stat().st_size, sha256=sha256_file(data / name), dtype=dtype, tokens=int(tokens.size)
    )
    (data / "manifest.json").write_text(json.dumps(manifest))
    (data / ".verified.json").unlink(missing_ok=True)


def test_edited_shard_dtype_or_ids_beyond_the_vocabulary_are_named(data_dir, tmp_path):
    from cocattn.data import load_tokens

    original = np.asarray(load_tokens(data_dir, "train"))
    for dtype in ("uint32", "uint8", "int64"):  # the manifest's dtype edited; the bytes unchanged
        data = tmp_path / f"d-{dtype}"
        shutil.copytree(data_dir, data)
        manifest = json.loads((data / "manifest.json").read_text())
        manifest["files"]["train.bin"]["dtype"] = dtype
        (data / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(
            ValueError,
            match=rf"manifest.json: files\['train.bin'\].dtype='{dtype}' is not the "
            r"token dtype of a 400-token vocabulary \(uint16\)",
        ):
            load_tokens(data, "train")
    data = tmp_path / "d-ids"  # consistent checksums, one id outside the vocabulary
    shutil.copytree(data_dir, data)
    bad = original.copy()
    bad[len(bad) // 2] = 400
    _rewrite_shard(data, "train.bin", bad, "uint16")
    with pytest.raises(ValueError, match=r"train.bin holds token id 400, outside the 400-token vocabulary"):
        load_tokens(data, "train")
    data = tmp_path / "d-count"  # bytes that do not match the recorded token count
    shutil.copytree(data_dir, data)
    _rewrite_shard(data, "train.bin", original, "uint16")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["files"]["train.bin"]["tokens"] += 1
    (data / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"not the \d+ uint16 tokens"):
        load_tokens(data, "train")
    assert np.array_equal(np.asarray(load_tokens(data_dir, "train")), original)  # the real one still loads


# -- silent acceptance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "ppl", "M", "--training-length", "0"],
        ["eval", "ppl", "M", "--stride", "0"],
        ["analyze", "attention", "M", "--length", "0"],
        ["analyze", "rope", "M", "--training-length", "-3"],
    ],
)
def test_zero_is_not_a_silent_default(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_default_stride_fits_the_lengths_asked_for(models):
    """`eval ppl --lengths 16` on a model trained at 32 failed on a default stride (32) the user
    never set; the default is now at most the shortest length, and equals it here."""
    from cocattn.evaluate.lm import load_lm
    from cocattn.evaluate.perplexity import evaluate_perplexity

    lm = load_lm(models / "gpt")
    docs = [text(300, seed=0)]
    record = evaluate_perplexity(lm, docs, lengths=[16], progress=False)
    same = evaluate_perplexity(lm, docs, lengths=[16], stride=16, progress=False)
    assert record["values"] == same["values"] and record["settings"]["stride"] == 16


def test_overrides_after_an_option_are_kept(capsys):
    argv = ["train", "--config", "tiny-cpu", "train.steps=60", "--no-progress", "train.lr=1e-3", "--print-config"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)["train"]
    assert printed["steps"] == 60 and printed["lr"] == 1e-3
    with pytest.raises(SystemExit):
        main(["train", "--config", "tiny-cpu", "--bogus", "--print-config"])


def test_text_source_does_not_follow_symlinks_out_of_its_directory(tmp_path):
    from cocattn.data.build import build_dataset

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text(text(3000, seed=1))
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.txt").write_text("password=hunter2 " * 200)
    os.symlink(secret / "secret.txt", corpus / "link.txt")
    with pytest.raises(ValueError, match=r"link.txt leads to .*outside.*secret.txt outside it"):
        build_dataset(
            preset="custom",
            sources=[f"text:{corpus}"],
            out_dir=tmp_path / "d",
            vocab_size=300,
            eval_documents=0,
            progress=False,
        )
    (corpus / "link.txt").unlink()
    assert not (tmp_path / "d").exists()
    os.symlink(secret, corpus / "linkdir")  # a linked directory: refused, or (Python < 3.13) never entered
    try:
        result = build_dataset(
            preset="custom",
            sources=[f"text:{corpus}"],
            out_dir=tmp_path / "d",
            vocab_size=300,
            eval_documents=0,
            progress=False,
        )
    except ValueError as err:
        assert "outside it (a symlink)" in str(err)
    else:
        assert [d["title"] for d in result.manifest["documents"]] == ["a.txt"]


def test_out_that_cannot_be_written_fails_before_any_work(models, tmp_path, capsys):
    """`bench attention --out newdir/x.json` and eval/analyze `--out` on an unwritable place
    failed only after the computation; now at once (exit 2, naming --out). A new directory under
    a writable one is created."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for argv in (
        _eval(models / "gpt", models / "docs.jsonl", "--out", str(blocker / "r.json")),
        ["analyze", "rope", str(models / "gpt"), "--out", str(blocker / "a")],
        ["bench", "attention", "--out", str(blocker / "b.json")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "--out=" in err and "is a file, not a directory" in err and "Traceback" not in err
    from cocattn.bench.results import write_results

    write_results(tmp_path / "newdir" / "x.json", "attention", [], "cocattn bench attention")
    assert json.loads((tmp_path / "newdir" / "x.json").read_text())["benchmark"] == "attention"


def test_out_on_a_read_only_file_system_fails_before_any_work(models, tmp_path, capsys):
    import subprocess

    where = tmp_path / "ro"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        assert main(_eval(models / "gpt", models / "docs.jsonl", "--out", str(where / "r.json"))) == 2
        assert "read-only (checked before starting)" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_resume_with_another_length_or_batch_size_is_refused(data_dir, tmp_path):
    from cocattn.train import train

    config = {
        "name": "r",
        "model": {"vocab_size": None, "n_layer": 1, "n_head": 2, "n_embd": 32, "max_seq_len": 32, "attention": "coca"},
        "data": {"dir": str(data_dir)},
        "train": {
            "batch_size": 4,
            "steps": 4,
            "warmup": 0,
            "checkpoint_interval": 2,
            "eval_interval": 0,
            "threads": 1,
            "progress": False,
        },
    }
    train({**config, "train": {**config["train"], "steps": 2}}, tmp_path / "run")
    for section, key, value in (("model", "max_seq_len", 64), ("train", "batch_size", 8)):
        changed = {**config, section: {**config[section], key: value}}
        with pytest.raises(
            ValueError,
            match=rf"{section}.{key}={value} is not valid: expected {config[section][key]}, "
            "the value of the run being resumed",
        ):
            train(changed, tmp_path / "run", resume=True)
    assert train(config, tmp_path / "run", resume=True).steps == 4
