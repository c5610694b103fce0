"""Loading checkpoints (cocattn and Hugging Face directories) and the ``cocattn eval`` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cocattn
from cocattn.cli import main
from cocattn.checkpoint import model_dir_kind
from cocattn.evaluate.lm import load_lm
from cocattn.evaluate.lm_hf import HFLanguageModel
from cocattn.evaluate.lm_native import CocattnLanguageModel
from cocattn.evaluate.results import read_results
from cocattn.evaluate.scaling import parse_scaling
from helpers.eval_models import gpt, save_cli_models


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_cli_models(tmp_path_factory.mktemp("ckpt"))


def test_load_both_kinds_of_checkpoint(checkpoints):
    lm = load_lm(checkpoints / "gpt")
    assert isinstance(lm, CocattnLanguageModel) and lm.training_length == 32 and lm.attention == "coca"
    hf = load_lm(checkpoints / "hf")
    assert isinstance(hf, HFLanguageModel) and hf.training_length == 32 and hf.attention == "rope"
    assert hf.decode(hf.encode("The sky is blue.")) == "The sky is blue."


def test_a_native_evaluation_never_imports_transformers(checkpoints, tmp_path):
    """Only the Hugging Face adapter imports transformers, and only when it loads a model: `cocattn
    eval` on a cocattn checkpoint runs in a process where transformers was never imported."""
    out = tmp_path / "ppl.json"
    args = ["eval", "ppl", str(checkpoints / "gpt"), "--data", str(checkpoints / "docs.jsonl")]
    args += ["--lengths", "32", "--rope", "dynamic:2", "--out", str(out), "--no-progress"]
    code = (
        "import sys\n"
        "from cocattn.cli import main\n"
        f"assert main({args!r}) == 0\n"
        "print('transformers imported:', 'transformers' in sys.modules)\n"
    )
    src = str(Path(cocattn.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.splitlines()[-1] == "transformers imported: False"
    assert [(r["metric"], r["kind"]) for r in read_results(out)] == [("ppl", "cocattn")]


def test_a_path_that_is_not_a_model_is_a_clear_error(tmp_path, checkpoints):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_dir_kind(tmp_path / "missing")
    with pytest.raises(ValueError, match="checkpoint=.*config.json"):
        model_dir_kind(tmp_path)
    (tmp_path / "config.json").write_text('{"hello": 1}')
    with pytest.raises(ValueError, match="model_type"):
        model_dir_kind(tmp_path)
    assert main(["eval", "ppl", str(tmp_path), "--data", str(checkpoints / "docs.jsonl")]) == 2


def test_scaling_context_restores_the_trained_model():
    lm = gpt("rope", training_length=32)
    with lm.rope_scaling({"rope_type": "yarn", "factor": 4.0}):
        assert lm.module.rope.rope_type == "yarn"
    assert lm.module.rope.rope_type == "default" and lm.scaling is None
    alibi = gpt("alibi", training_length=32)
    with pytest.raises(ValueError, match="no RoPE scaling"):
        with alibi.rope_scaling({"rope_type": "dynamic", "factor": 2.0}):
            pass


@pytest.mark.parametrize(
    "spec, match",
    [
        ("dynmic:4", "dynamic"),
        ("dynamic:x", "FACTOR"),
        ("{oops", "JSON"),
        ('{"rope_type": "yarn", "factr": 4}', "factr"),
    ],
)
def test_unknown_scaling_is_rejected(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_scaling(spec)


def test_cli_ppl_passkey_sweep_write_json_and_csv(checkpoints, tmp_path, capsys):
    docs = str(checkpoints / "docs.jsonl")
    assert (
        main(
            [
                "eval",
                "ppl",
                str(checkpoints / "gpt"),
                "--data",
                docs,
                "--lengths",
                "32",
                "64",
                "--rope",
                "dynamic",
                "--factor",
                "4",
                "--out",
                str(tmp_path / "ppl.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "dynamic x4" in capsys.readouterr().out
    assert (
        main(
            [
                "eval",
                "passkey",
                str(checkpoints / "hf"),
                "--lengths",
                "200",
                "--cases",
                "2",
                "--max-new-tokens",
                "2",
                "--out",
                str(tmp_path / "passkey.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "eval",
                "sweep",
                str(checkpoints / "gpt"),
                "--data",
                docs,
                "--lengths",
                "64",
                "--scalings",
                "none",
                "linear:2",
                "--metrics",
                "ppl",
                "--out",
                str(tmp_path / "sweep.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    records = read_results(tmp_path)
    assert sorted((r["metric"], r["scaling_name"]) for r in records) == [
        ("passkey", "none"),
        ("ppl", "dynamic x4"),
        ("ppl", "linear x2"),
        ("ppl", "none"),
    ]
    assert all(len(r["ci95"]) == len(r["lengths"]) and r["settings"]["confidence"] == 0.95 for r in records)
    assert (
        main(
            [
                "eval",
                "ppl",
                str(checkpoints / "gpt"),
                "--data",
                docs,
                "--lengths",
                "32",
                "--confidence",
                "0.8",
                "--ci-resamples",
                "300",
                "--out",
                str(tmp_path / "ppl80.json"),
                "--no-progress",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    record = read_results(tmp_path / "ppl80.json")[0]
    assert (record["settings"]["confidence"], record["settings"]["ci_resamples"]) == (0.8, 300)
    assert "(80% interval in brackets)" in printed and f"{record['ci95'][0][0]:.0f}–" in printed
    assert (tmp_path / "ppl.csv").read_text().splitlines()[0] == "model,attention,scaling,metric,32,64"


def test_cli_errors_are_clear(checkpoints, capsys):
    gpt_dir = str(checkpoints / "gpt")
    assert main(["eval", "ppl", gpt_dir, "--data", str(checkpoints / "docs.jsonl"), "--lengths", "100000"]) == 2
    assert "longest document" in capsys.readouterr().err
    assert (
        main(["eval", "ppl", gpt_dir, "--data", str(checkpoints / "docs.jsonl"), "--lengths", "32", "--stride", "64"])
        == 2
    )
    assert "stride=64" in capsys.readouterr().err
    assert main(["eval", "passkey", gpt_dir, "--rope", "dynamic", "--rope-json", "{}"]) == 2
    assert "either --rope or --rope-json" in capsys.readouterr().err
    assert main(["eval", "passkey", gpt_dir, "--max-memory", "lots"]) == 2
    assert "--max-memory='lots'" in capsys.readouterr().err
    for command in (["ppl", "--data", str(checkpoints / "docs.jsonl")], ["passkey"], ["sweep", "--metrics", "passkey"]):
        assert main(["eval", command[0], gpt_dir, *command[1:], "--ci-resamples", "0"]) == 2
        assert "--ci-resamples=0 is not valid: expected a positive integer" in capsys.readouterr().err
        assert main(["eval", command[0], gpt_dir, *command[1:], "--confidence", "1.5"]) == 2
        assert "--confidence=1.5 is not valid: expected a number strictly between 0 and 1" in capsys.readouterr().err


def test_cli_autocast_evaluation(checkpoints, tmp_path, capsys):
    """Guarantee: `--autocast bfloat16` evaluates a cocattn checkpoint under bf16 autocast, close
    to float32; a bad value or a Hugging Face model is a clear error."""
    docs, gpt_dir = str(checkpoints / "docs.jsonl"), str(checkpoints / "gpt")
    for name, extra in (("fp32", []), ("bf16", ["--autocast", "bfloat16"])):
        assert (
            main(
                [
                    "eval",
                    "ppl",
                    gpt_dir,
                    "--data",
                    docs,
                    "--lengths",
                    "32",
                    "--out",
                    str(tmp_path / f"{name}.json"),
                    "--no-progress",
                    *extra,
                ]
            )
            == 0
        )
    fp32, bf16 = (read_results(tmp_path / f"{n}.json")[0]["values"][0] for n in ("fp32", "bf16"))
    assert bf16 == pytest.approx(fp32, rel=1e-2) and bf16 != fp32
    capsys.readouterr()
    assert main(["eval", "ppl", gpt_dir, "--data", docs, "--lengths", "32", "--autocast", "int8"]) == 2
    assert "--autocast='int8'" in capsys.readouterr().err
    assert main(["eval", "passkey", str(checkpoints / "hf"), "--lengths", "200", "--autocast", "bfloat16"]) == 2
    assert "autocast" in capsys.readouterr().err
