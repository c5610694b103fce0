"""Reliability and security: the guarantees not already covered by test_io.py,
test_checkpoint.py, test_train.py and test_data_build.py. Each test's docstring names the
guarantee it checks; docs/RELIABILITY.md maps every guarantee to its tests.

Disk-full and read-only tests use a real, tiny tmpfs when this process may mount one (root on
Linux); elsewhere they are skipped, and the fault-injection variants (the same ``OSError`` the
kernel returns, raised from the syscall wrapper) still run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import torch

from cocattn import checkpoint as ckpt
from cocattn import files
from cocattn.cli import main
from cocattn.model import GPT, GPTConfig


def _model(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=300, n_layer=1, n_head=2, n_embd=32, max_seq_len=16)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob(".tmp-*"))


# -- a real small file system ------------------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(where: Path, size: str):
    """Mount a tmpfs of ``size`` at ``where``; skip the test when mounting is not allowed."""
    where.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _remount_read_only(where: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, capture_output=True)


def _fill(directory: Path, leave: int) -> None:
    """Fill the file system holding ``directory`` until about ``leave`` bytes are free."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    if free > leave:
        with open(directory / "filler", "wb") as handle:
            handle.write(b"\0" * (free - leave))


# -- corrupt or truncated files are detected and named -----------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A real data directory built by cocattn's builder from a few of Python's own modules."""
    import json as json_module

    from cocattn.data.build import build_dataset

    root = tmp_path_factory.mktemp("rel-data")
    texts = root / "texts"
    texts.mkdir()
    for file in sorted(Path(json_module.__file__).parent.glob("*.py")):
        (texts / f"{file.stem}.txt").write_text(file.read_text(encoding="utf-8"))
    out = root / "data"
    build_dataset(
        preset="custom",
        sources=[f"text:{texts}"],
        out_dir=out,
        vocab_size=300,
        eval_documents=0,
        val_fraction=0.2,
        progress=False,
    )
    return out


def _copy_dir(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_manifest_is_named(data_dir, tmp_path):
    """Guarantee: a corrupt or truncated manifest.json is detected and reported with its name."""
    from cocattn.data import load_manifest, load_tokens

    d = _copy_dir(data_dir, tmp_path / "d")
    text = (d / "manifest.json").read_text()
    (d / "manifest.json").write_text(text[: len(text) // 2])  # truncated
    with pytest.raises(ValueError, match=r"manifest\.json is not valid JSON"):
        load_manifest(d)
    with pytest.raises(ValueError, match=r"manifest\.json"):
        load_tokens(d, "train")
    (d / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")  # not even UTF-8
    with pytest.raises(ValueError, match=r"manifest\.json"):
        load_manifest(d)
    (d / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        load_tokens(d, "train")


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.pop("files"),
        lambda m: m.__setitem__("files", []),
        lambda m: m["files"].__setitem__("train.bin", "oops"),
        lambda m: m["files"]["train.bin"].pop("size"),
        lambda m: m["files"]["train.bin"].__setitem__("size", "12"),
        lambda m: m["files"]["train.bin"].pop("sha256"),
        lambda m: m["files"]["train.bin"].__setitem__("dtype", "object"),
        lambda m: m["files"]["train.bin"].pop("dtype"),
    ],
    ids=["no-files", "files-list", "entry-str", "no-size", "size-str", "no-sha", "dtype-object", "no-dtype"],
)
def test_structurally_damaged_manifest_is_a_clear_error(data_dir, tmp_path, damage):
    """Guarantee: a manifest.json that parses but lacks or garbles the file table is refused with
    a ValueError naming manifest.json (not a KeyError/TypeError from deep inside the loader)."""
    from cocattn.data import load_tokens

    d = _copy_dir(data_dir, tmp_path / "d")
    manifest = json.loads((d / "manifest.json").read_text())
    damage(manifest)
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest\.json"):
        load_tokens(d, "train", verify="full")


def test_extended_or_replaced_shard_is_named(data_dir, tmp_path):
    """Guarantee: a shard with bytes appended, or replaced by another file of the same size, is
    detected from the manifest's size / sha256 and named (truncation and bit flips: test_data_build)."""
    from cocattn.data import load_tokens

    d = _copy_dir(data_dir, tmp_path / "d")
    with open(d / "train.bin", "ab") as handle:
        handle.write(b"\0\0")
    with pytest.raises(ValueError, match=r"train\.bin has \d+ bytes but the manifest says"):
        load_tokens(d, "train")
    val = (d / "val.bin").read_bytes()
    (d / "val.bin").write_bytes(bytes(reversed(val)))  # same size, other content
    with pytest.raises(ValueError, match=r"val\.bin is corrupt: sha256"):
        load_tokens(d, "val")


def _swap_two_vocab_ids(text: str) -> str:
    """The same tokenizer.json, same size, still loadable, with two tokens' ids swapped (every
    text then encodes differently): corruption only a checksum can see."""
    vocab = json.loads(text)["model"]["vocab"]
    entries = [(tok, i) for tok, i in vocab.items() if i >= 100]
    for (a, i), (b, j) in zip(entries, entries[1:]):
        sa, sb = f"{json.dumps(a, ensure_ascii=False)}:{i}", f"{json.dumps(b, ensure_ascii=False)}:{j}"
        if len(str(i)) == len(str(j)) and text.count(sa) == 1 and text.count(sb) == 1:
            swapped = text.replace(sa, "\0A").replace(sb, "\0B")
            return swapped.replace("\0A", f"{json.dumps(a, ensure_ascii=False)}:{j}").replace(
                "\0B", f"{json.dumps(b, ensure_ascii=False)}:{i}"
            )
    raise AssertionError("no two vocabulary entries to swap")


def test_corrupt_data_tokenizer_is_named(data_dir, tmp_path):
    """Guarantee: a truncated data-directory tokenizer.json is named when loaded, and a corrupt one
    that still parses is caught by its sha256 in the manifest (verify_file / `cocattn data info --verify`)."""
    from cocattn.data import dataset_info, load_tokenizer, verify_file

    d = _copy_dir(data_dir, tmp_path / "d")
    text = (d / "tokenizer.json").read_text()
    (d / "tokenizer.json").write_text(text[: len(text) // 3])
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a valid tokenizers JSON file"):
        load_tokenizer(d)
    with pytest.raises(ValueError, match=r"tokenizer\.json has \d+ bytes"):
        verify_file(d, "tokenizer.json")
    # A change that keeps it loadable and the same size: only the checksum can see it.
    (d / "tokenizer.json").write_text(_swap_two_vocab_ids(text))
    assert (d / "tokenizer.json").stat().st_size == len(text.encode())
    load_tokenizer(d)  # the parser accepts it
    with pytest.raises(ValueError, match=r"tokenizer\.json is corrupt: sha256"):
        verify_file(d, "tokenizer.json", verify="full")
    with pytest.raises(ValueError, match=r"tokenizer\.json is corrupt"):
        dataset_info(d, verify="full")


def test_training_refuses_a_data_tokenizer_that_fails_its_checksum(data_dir, tmp_path):
    """Guarantee: training never runs on a tokenizer.json that differs from the one the manifest
    recorded (same size, still valid JSON): the run stops naming tokenizer.json."""
    from cocattn.train import train

    d = _copy_dir(data_dir, tmp_path / "d")
    (d / "tokenizer.json").write_text(_swap_two_vocab_ids((d / "tokenizer.json").read_text()))
    config = {
        "model": {"vocab_size": None, "n_layer": 1, "n_head": 2, "n_embd": 32, "max_seq_len": 32},
        "data": {"dir": str(d)},
        "train": {
            "batch_size": 2,
            "steps": 1,
            "warmup": 0,
            "eval_interval": 0,
            "checkpoint_interval": 0,
            "progress": False,
            "threads": 1,
        },
    }
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        train(config, tmp_path / "run")


def test_model_directory_corruption_is_named(tmp_path):
    """Guarantee: corrupt weights (header damage, bit flips in tensor data, truncation) and a
    corrupt tokenizer.json in a model directory are detected and reported with the file name."""
    from cocattn.data import train_tokenizer

    tok = train_tokenizer(["the pass key is 12345. remember it. " * 40], vocab_size=300)
    good = tmp_path / "good"
    ckpt.save_model(good, _model(), tokenizer=tok)

    header = _copy_dir(good, tmp_path / "header")
    _flip(header / "model.safetensors", 10)  # inside the JSON header
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        ckpt.load_model(header)

    data = _copy_dir(good, tmp_path / "data")
    _flip(data / "model.safetensors", -100)  # inside the tensor bytes: the parser cannot see it
    with pytest.raises(ValueError, match=r"model\.safetensors.*sha256"):
        ckpt.load_model(data)

    torn = _copy_dir(good, tmp_path / "tok")
    text = (torn / "tokenizer.json").read_text()
    (torn / "tokenizer.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"tokenizer\.json"):
        ckpt.load_model(torn)

    empty = _copy_dir(good, tmp_path / "empty")
    (empty / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        ckpt.load_model(empty)
    ckpt.load_model(good)  # the untouched original still loads


def test_trainer_checkpoint_corruption_is_named(tmp_path):
    """Guarantee: a bit flip in a trainer checkpoint's optimizer/RNG tensors is detected and named,
    so a resume never continues from silently damaged state."""
    model = _model()
    path = ckpt.save_checkpoint(tmp_path, 1, model, {"m": torch.arange(1000, dtype=torch.float32)})
    _flip(path / ckpt.TRAINER_TENSORS, -17)
    with pytest.raises(ValueError, match=r"trainer\.safetensors"):
        ckpt.load_checkpoint(path)


# -- disk full / read-only output: clear message, no partial files, previous data intact --------


def test_checkpoint_on_a_really_full_disk_keeps_the_previous_one(tmp_path):
    """Guarantee: a checkpoint write that runs out of space (a real, full tmpfs) fails with a clear
    message, leaves no partial files and keeps the previous checkpoint loadable."""
    model = _model(n_embd=64, n_layer=2)  # ~0.3 MB of weights per checkpoint
    with _tmpfs(tmp_path / "fs", "2m") as fs:
        ckpt.save_checkpoint(fs, 1, model, {"step": 1})
        _fill(fs, 100_000)
        with pytest.raises(files.AtomicWriteError, match=r"step_0000002.*(disk full|no space)"):
            ckpt.save_checkpoint(fs, 2, model, {"step": 2})
        assert ckpt.latest_checkpoint(fs).name == "step_0000001"
        assert ckpt.load_checkpoint(ckpt.latest_checkpoint(fs), _model(n_embd=64, n_layer=2))["step"] == 1
        assert _leftovers(fs) == [] and not (fs / "checkpoints" / "step_0000002").exists()


def test_checkpoint_on_a_read_only_file_system_keeps_the_previous_one(tmp_path):
    """Guarantee: a checkpoint write into a read-only file system (real remount, which binds root
    too) fails with a clear message and the previous checkpoint stays loadable."""
    model = _model()
    with _tmpfs(tmp_path / "fs", "4m") as fs:
        ckpt.save_checkpoint(fs, 1, model, {"step": 1})
        _remount_read_only(fs)
        with pytest.raises(files.AtomicWriteError, match=r"step_0000002.*read-only"):
            ckpt.save_checkpoint(fs, 2, model, {"step": 2})
        assert ckpt.load_checkpoint(ckpt.latest_checkpoint(fs))["step"] == 1


def _records() -> list[dict]:
    rec = {
        "schema": "cocattn.eval/1",
        "metric": "ppl",
        "model": "m",
        "kind": "cocattn",
        "attention": "coca",
        "training_length": 32,
        "scaling_name": "none",
        "lengths": [32, 64],
        "values": [12.5, 30.25],
        "counts": [100, 100],
        "settings": {"stride": 32},
        "created": "2026-11-25T00:00:00Z",
    }
    return [rec]


def _partial_outputs(out: Path) -> list[str]:
    """Files under ``out`` that are not complete: temporaries, or PNG/Markdown/CSV cut short."""
    bad = _leftovers(out)
    for path in out.iterdir():
        if path.name.startswith(".tmp-") or path.name == "filler":
            continue
        data = path.read_bytes()
        if path.suffix == ".png" and not data.endswith(b"IEND\xaeB`\x82"):
            bad.append(path.name)
        if path.suffix in (".md", ".csv") and not data.endswith(b"\n"):
            bad.append(path.name)
    return bad


def test_report_write_failure_leaves_no_partial_files(tmp_path, monkeypatch):
    """Guarantee: a report write that fails (ENOSPC from the syscall that publishes each file)
    raises a clear error naming the file and leaves no partial files behind."""
    from cocattn.report.writer import write_report

    out = tmp_path / "report"
    first = write_report(_records(), out)
    before = first.read_text()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(files.AtomicWriteError, match="disk full"):
        write_report(_records(), out, title="second")
    monkeypatch.undo()
    assert first.read_text() == before  # the previous report is intact
    assert _partial_outputs(out) == []


@pytest.mark.parametrize("free", [4_096, 40_000, 80_000])
def test_report_on_a_really_full_disk_leaves_no_partial_files(tmp_path, free):
    """Guarantee: `cocattn report` on a real, nearly full tmpfs either completes or fails with a
    disk-full error, and leaves no partial files (plots included) whichever file the space runs
    out in."""
    from cocattn.report.writer import write_report

    with _tmpfs(tmp_path / "fs", "1m") as fs:
        out = fs / "report"
        out.mkdir()
        _fill(fs, free)
        try:
            write_report(_records(), out)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
        else:
            assert (out / "report.md").is_file()
        assert _partial_outputs(out) == []


def test_report_into_a_read_only_file_system_is_a_clear_error(tmp_path):
    """Guarantee: `cocattn report` into a read-only file system fails at once with an error naming
    the file, and writes nothing."""
    from cocattn.report.writer import write_report

    with _tmpfs(tmp_path / "fs", "1m") as fs:
        (fs / "report").mkdir()
        _remount_read_only(fs)
        with pytest.raises(OSError, match=r"[Rr]ead-only"):
            write_report(_records(), fs / "report")
        assert list((fs / "report").iterdir()) == []
        (tmp_path / "results").mkdir()
        files.write_json(tmp_path / "results" / "ppl.json", _records()[0])
        assert main(["report", str(tmp_path / "results"), "--out", str(fs / "report")]) == 2
        assert list((fs / "report").iterdir()) == []


# -- evaluation lengths that cannot fit are refused with the estimate ---------------------------


def test_memory_estimate_grows_with_length_and_refusal_quotes_it():
    """Guarantee: an evaluation length that cannot fit is refused before any work, with the
    estimate (and the limit) in the message."""
    from cocattn.evaluate.memory import check_fits, estimate_forward_bytes, format_bytes, parse_bytes

    dims = {"params": 350_000_000, "vocab": 32_000, "hidden": 1024, "ffn": 4096, "heads": 16, "layers": 24}
    sizes = [estimate_forward_bytes(dims, n) for n in (1024, 2048, 4096, 8192)]
    assert sizes == sorted(sizes) and sizes[-1] > 4 * sizes[0] / 2
    need = estimate_forward_bytes(dims, 1_000_000)
    with pytest.raises(ValueError) as info:
        check_fits(dims, 1_000_000, 1, "cpu", max_memory=parse_bytes("16GB"))
    assert format_bytes(need) in str(info.value) and "max_memory" in str(info.value)
    with pytest.raises(ValueError, match="free memory on cpu"):  # the default limit: memory free now
        check_fits(dims, 10_000_000, 1, "cpu")
    assert check_fits(dims, 512, 1, "cpu", max_memory=parse_bytes("64GiB")) == estimate_forward_bytes(dims, 512)
    for bad in ("lots", "-1GB", "0", 0, -5, "1.5.2GB", "4XB"):
        with pytest.raises(ValueError, match="max_memory"):
            parse_bytes(bad)


@pytest.fixture(scope="module")
def tiny_lm():
    from helpers.eval_models import gpt

    return gpt("rope", training_length=64)


def test_passkey_and_attention_analysis_refuse_lengths_that_cannot_fit(tiny_lm):
    """Guarantee: passkey and attention analysis estimate memory first and refuse, quoting the
    estimate, instead of crashing mid-run."""
    from cocattn.evaluate.attention import analyze_attention
    from helpers.eval_models import text
    from cocattn.evaluate.passkey import evaluate_passkey

    with pytest.raises(ValueError, match=r"length=\d+ .*needs about .*max_memory"):
        evaluate_passkey(tiny_lm, [4096], cases=1, max_memory=100_000, progress=False)
    with pytest.raises(ValueError, match=r"needs about .*free memory"):
        evaluate_passkey(tiny_lm, [50_000_000], cases=1, progress=False)
    with pytest.raises(ValueError, match=r"length=128 .*needs about .*max_memory"):
        analyze_attention(tiny_lm, text(400), 128, max_memory=10_000, progress=False)


def test_cli_refuses_an_evaluation_that_cannot_fit(tmp_path, capsys, tiny_lm):
    """Guarantee: `cocattn eval` refuses a length that cannot fit with exit code 2 and the estimate."""
    from helpers.eval_models import tokenizer

    ckpt.save_model(tmp_path / "m", tiny_lm.module, tokenizer())
    assert (
        main(
            [
                "eval",
                "passkey",
                str(tmp_path / "m"),
                "--lengths",
                "4096",
                "--cases",
                "1",
                "--max-memory",
                "1MB",
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "needs about" in err and "MiB" in err and "--max-memory" in err


# -- passkey settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lengths": [0]}, "lengths"),
        ({"lengths": [-200]}, "lengths"),
        ({"lengths": [200.5]}, "lengths"),
        ({"lengths": ["200"]}, "lengths"),
        ({"cases": -1}, "cases"),
        ({"cases": 2.5}, "cases"),
        ({"max_new_tokens": -3}, "max_new_tokens"),
        ({"lengths": [10]}, "length"),
        ({"scaling": {"rope_type": "dynamic", "factor": -2.0}}, "factor"),
    ],
)
def test_passkey_settings_are_validated(tiny_lm, kwargs, match):
    """Guarantee: wrong passkey settings fail at once with a message naming the setting."""
    from cocattn.evaluate.passkey import evaluate_passkey

    kwargs.setdefault("lengths", [200])
    with pytest.raises(ValueError, match=match):
        evaluate_passkey(tiny_lm, progress=False, cases=kwargs.pop("cases", 1), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"depth": -0.1}, "depth"),
        ({"depth": 1.5}, "depth"),
        ({"depth": float("nan")}, "depth"),
        ({"key": -1}, "key"),
        ({"key": "12345"}, "key"),
        ({"length": 5}, "length"),
    ],
)
def test_passkey_prompt_settings_are_validated(tiny_lm, kwargs, match):
    """Guarantee: passkey prompt settings (depth, key, length) are checked and named."""
    from cocattn.evaluate.passkey import build_prompt

    args = {"length": 200, "key": 12345, "depth": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_prompt(tiny_lm, args["length"], args["key"], args["depth"])


# -- CLI argument validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--config", "tiny-cpu", "train.stepz=3", "--print-config"], "closest valid: steps"),
        (["train", "--config", "tiny-cpu", "train.lr=-1", "--print-config"], "train.lr=-1"),
        (["train", "--config", "tiny-cpu", "train.batch_size=abc", "--print-config"], "train.batch_size"),
        (["train", "--config", "tiny-cpu", "lr", "--print-config"], "section.key=value"),
        (["train", "--config", "tiny-cuda", "--print-config"], "tiny-cpu"),
        (["train", "--config", "missing/run.yaml", "--print-config"], "does not exist"),
        (["train", "--config", "tiny-cpu", "model.attention=coco", "--print-config"], "attention"),
        (
            ["data", "build", "--preset", "custom", "--source", "text:{tmp}", "--out", "{tmp}/d", "--vocab-size", "10"],
            "vocab_size=10",
        ),
        (["data", "build", "--preset", "custom", "--out", "{tmp}/d", "--source", "nosuch:x"], "nosuch"),
        (["data", "info", "{tmp}/nowhere"], "does not exist"),
        (["eval", "ppl", "{tmp}/nowhere", "--data", "{tmp}/x.jsonl"], "does not exist"),
    ],
)
def test_cli_arguments_are_validated_with_exit_code_2(tmp_path, capsys, argv, needle):
    """Guarantee: a wrong CLI argument fails at once with exit code 2 and a message naming it
    (no traceback, nothing written)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "passkey", "M", "--cases", "many"],
        ["eval", "ppl", "M", "--lengths", "1k"],
        ["data", "build", "--preset", "pypo", "--out", "x"],
        ["train"],
        ["eval", "sweep", "M", "--metrics", "bleu"],
    ],
)
def test_cli_type_errors_are_argparse_usage_errors(argv, capsys):
    """Guarantee: arguments of the wrong type or choice are refused by the parser (exit 2, usage)."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "usage:" in capsys.readouterr().err


def test_tmpfs_fixture_really_limits_space(tmp_path):
    """Guards the disk-full tests above: the tmpfs really returns ENOSPC when full."""
    with _tmpfs(tmp_path / "fs", "64k") as fs:
        with pytest.raises(OSError) as info:
            (fs / f"big-{uuid.uuid4().hex}").write_bytes(b"x" * 200_000)
        assert info.value.errno == errno.ENOSPC


# -- repeated random kills: resume loses nothing -------------------------------------------------


@pytest.mark.slow  # ~1-2 min on 2 cores: one process start per kill
def test_many_random_sigkills_each_resume_is_exact(tmp_path, data_dir):
    """Guarantee: a SIGKILL at any moment (mid-step, mid-checkpoint write) leaves a loadable
    checkpoint, and every resume continues the uninterrupted run exactly (every logged loss equal,
    bit for bit, to the reference run's). ``COCATTN_KILLS`` sets the number of kill points
    (default 10); ``COCATTN_KILL_RECORD`` names a JSON file to write the record to."""
    import random
    import signal
    import sys
    import time

    from cocattn.train import train

    kills_wanted = int(os.environ.get("COCATTN_KILLS", "10"))
    config = {
        "name": "kill",
        "model": {"vocab_size": None, "n_layer": 2, "n_head": 2, "n_embd": 64, "max_seq_len": 96, "attention": "coca"},
        "data": {"dir": str(data_dir), "retrieval_fraction": 0.25},
        "train": {
            "batch_size": 8,
            "steps": 40 + 20 * kills_wanted,
            "lr": 3e-3,
            "min_lr": 3e-4,
            "warmup": 4,
            "log_interval": 1,
            "eval_interval": 25,
            "eval_iters": 2,
            "checkpoint_interval": 2,
            "keep_checkpoints": 2,
            "threads": 1,
            "progress": False,
        },
    }
    reference = train(config, tmp_path / "reference")
    ref = {r["step"]: r["loss"] for r in files.read_jsonl(tmp_path / "reference" / "metrics.jsonl") if "loss" in r}
    file = tmp_path / "run.json"
    file.write_text(json.dumps(config))
    run_dir = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rng = random.Random(int(os.environ.get("COCATTN_KILL_SEED", "7")))
    record = {"kill_points": [], "resumes": 0, "exact_resumes": 0}

    def logged() -> dict[int, float]:
        path = run_dir / "metrics.jsonl"
        return {r["step"]: r["loss"] for r in files.read_jsonl(path) if "loss" in r} if path.exists() else {}

    attempt = 0
    while len(record["kill_points"]) < kills_wanted and attempt < 3 * kills_wanted and not (run_dir / "model").exists():
        cmd = [sys.executable, "-m", "cocattn", "train", "--config", str(file), "--out", str(run_dir), "--no-progress"]
        proc = subprocess.Popen(
            cmd + (["--resume"] if attempt else []), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        before = ckpt.latest_checkpoint(run_dir)
        while proc.poll() is None and ckpt.latest_checkpoint(run_dir) == before:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            root = run_dir / "checkpoints"
            mid_write = any(p.name.startswith(".tmp-") for p in root.iterdir()) if root.is_dir() else False
            latest = ckpt.latest_checkpoint(run_dir)
            steps = sorted(logged())
            record["kill_points"].append(
                {
                    "checkpoint": latest.name,
                    "last_logged_step": steps[-1] if steps else 0,
                    "during_checkpoint_write": mid_write,
                }
            )
            assert ckpt.load_checkpoint(latest)["step"] >= 1  # always a loadable checkpoint
        else:
            proc.wait()
        if attempt:
            record["resumes"] += 1
            now = logged()
            record["exact_resumes"] += int(all(now[s] == ref[s] for s in now))
        attempt += 1
    if not (run_dir / "model").exists():
        result = train(config, run_dir, resume=True)
        record["resumes"] += 1
        record["exact_resumes"] += int(logged() == ref and result.final_loss == reference.final_loss)
    final = logged()
    a, _ = ckpt.load_model(run_dir / "model")
    b, _ = ckpt.load_model(tmp_path / "reference" / "model")
    record["final_losses_equal"] = final == ref
    record["final_weights_equal"] = all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())
    )
    if os.environ.get("COCATTN_KILL_RECORD"):
        Path(os.environ["COCATTN_KILL_RECORD"]).write_text(json.dumps(record, indent=2))
    print(json.dumps(record))
    assert len(record["kill_points"]) == kills_wanted  # every requested kill happened
    assert not (run_dir / "model").exists() or record["resumes"] >= kills_wanted
    assert record["exact_resumes"] == record["resumes"] and record["final_losses_equal"]
    assert record["final_weights_equal"]
