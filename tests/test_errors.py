"""One error family and one map from error to exit code (cocattn.errors), used by every
sub-command: the table covers every error class in the source, each keeps the built-in base
callers catch, and real ``python -m cocattn`` processes give each exit code with its message, the same
class giving the same code from different sub-commands."""

from __future__ import annotations

import ast
import builtins
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cocattn import errors
from cocattn.errors import EXIT_CODES, describe, exit_code
from conftest import build_text_data

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cocattn"
BUILTIN_EXCEPTIONS = {
    name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)
}


def _exception_classes_in_source() -> dict[str, str]:
    """``{class name: file}`` for every class in src/cocattn whose name or a base's name says it
    is an exception (``...Error``, ``...Exception``, a built-in exception, or another such class)."""
    found: dict[str, str] = {}
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sorted(SRC.rglob("*.py"))}
    changed = True
    while changed:  # a class deriving from a class found earlier is one too (LengthTooShort(InputError))
        changed = False
        for path, tree in trees.items():
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef) or node.name in found:
                    continue
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if node.name.endswith(("Error", "Exception")) or bases & (BUILTIN_EXCEPTIONS | set(found)):
                    found[node.name] = str(path.relative_to(SRC))
                    changed = True
    return found


def test_every_error_class_lives_in_errors_and_has_its_own_exit_code():
    defined = _exception_classes_in_source()
    assert {"AtomicWriteError", "NonFiniteLossError", "FetchError", "LengthTooShort"} <= set(defined)
    elsewhere = {name: file for name, file in defined.items() if file != "errors.py"}
    assert not elsewhere, f"define error classes in cocattn/errors.py (and give each an exit code): {elsewhere}"
    classes = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == "cocattn.errors"
    ]
    assert {cls.__name__ for cls in classes} == set(defined)
    for cls in classes:
        assert issubclass(cls, errors.CocattnError), cls
        assert cls in EXIT_CODES, f"{cls.__name__} has no entry in EXIT_CODES"
    assert set(EXIT_CODES.values()) == {errors.FAILED, errors.USAGE, errors.INTERRUPTED, errors.TERMINATED}


BUILTIN_BASES = {
    "AtomicWriteError": OSError,
    "UnsafeFileError": ValueError,
    "DirectoryBusyError": ValueError,
    "NonFiniteLossError": RuntimeError,
    "FetchError": RuntimeError,
    "LengthTooShort": ValueError,
    "InputError": ValueError,
}


@pytest.mark.parametrize(("name", "base"), sorted(BUILTIN_BASES.items()))
def test_error_classes_keep_the_builtin_base_callers_catch(name, base):
    """Code written against the standard library (``except OSError``, ``except ValueError``) keeps
    catching cocattn's errors."""
    assert issubclass(getattr(errors, name), base)


def test_real_failures_are_caught_by_their_builtin_base(tmp_path):
    """The bases hold for errors raised by the real functions, not only for the classes."""
    from cocattn import files
    from cocattn._checks import bad_value, unknown_key

    pickled = tmp_path / "model"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(ValueError, match="pytorch_model.bin") as caught:
        files.refuse_pickles(pickled)
    assert type(caught.value) is errors.UnsafeFileError
    with pytest.raises(OSError) as caught:
        files.write_text(tmp_path / "no-such-dir" / "x.txt", "text")
    assert type(caught.value) is errors.AtomicWriteError
    err = bad_value("train.lr", -1, "a positive number")
    assert type(err) is errors.InputError and isinstance(err, ValueError)
    assert str(err) == "train.lr=-1 is not valid: expected a positive number"
    assert isinstance(unknown_key("section 'train'", "lrr", ["lr"]), errors.InputError)


def test_exit_code_takes_the_most_specific_class():
    assert exit_code(errors.InputError("x")) == exit_code(ValueError("x")) == 2
    assert exit_code(FileNotFoundError(2, "missing")) == 2  # a path that cannot be read
    assert exit_code(errors.AtomicWriteError(28, "disk full")) == 1  # a write that failed mid-run
    assert exit_code(errors.OutputNotWritableError(30, "read-only")) == 2  # found before any work
    assert exit_code(errors.NonFiniteLossError("nan")) == exit_code(errors.FetchError("no pip")) == 1
    assert exit_code(KeyboardInterrupt()) == 130
    assert exit_code(RuntimeError("a defect")) is None and exit_code(SystemExit(0)) is None
    assert describe(errors.NonFiniteLossError("loss became nan")) == "stopped: loss became nan"
    assert describe(ValueError("bad")) == "error: bad" and describe(KeyboardInterrupt()) == "interrupted"


# -- real `python -m cocattn` processes --------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", **extra)


def _cocattn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cocattn", *args], env=env or _env(), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return build_text_data(tmp_path_factory.mktemp("data"), vocab_size=400)


def _train_config(path: Path, data_dir: Path, **train) -> Path:
    config = {
        "name": "errors",
        "model": {"vocab_size": None, "n_layer": 1, "n_head": 2, "n_embd": 32, "max_seq_len": 64, "attention": "coca"},
        "data": {"dir": str(data_dir), "retrieval_fraction": 0.0},
        "train": {"batch_size": 4, "warmup": 0, "eval_interval": 0, "threads": 1, "progress": False, **train},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_input_exits_2_with_the_same_message_from_two_commands(tmp_path):
    expected = "model.attention='cocaa' is not valid: expected one of 'rope', 'coca'"
    for command in (("train", "--config", "tiny-cpu", "--print-config"), ("reproduce", "--plan")):
        done = _cocattn(*command, "model.attention=cocaa")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"cocattn {command[0]}: error: {expected}"), done.stderr
        assert "Traceback" not in done.stderr


def test_a_missing_path_exits_2_from_every_command_that_reads_one(tmp_path):
    nowhere = tmp_path / "nowhere"
    cases = {
        ("data", "info", str(nowhere)): f"cocattn data info: error: data directory {nowhere} does not exist",
        ("report", str(nowhere)): f"cocattn report: error: {nowhere} does not exist",
        ("train", "--config", f"{nowhere}.yaml"): f"cocattn train: error: config file {nowhere}.yaml does not exist",
    }
    for args, message in cases.items():
        done = _cocattn(*args)
        assert done.returncode == 2 and done.stderr.startswith(message), (args, done.stderr)


def test_an_out_that_cannot_be_written_exits_2_before_any_work_from_two_commands(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    cases = {
        "report": ("report", str(tmp_path), "--out", f"{blocker}/report"),
        "bench attention": ("bench", "attention", "--out", f"{blocker}/b.json"),
    }
    for name, args in cases.items():
        done = _cocattn(*args)
        assert done.returncode == 2, done.stderr
        assert f"cocattn {name}: error: " in done.stderr and f"--out='{blocker}/" in done.stderr
        assert f"cannot be written: {blocker} is a file, not a directory" in done.stderr
    assert blocker.read_text() == "mine"


def test_a_failed_fetch_exits_1(tmp_path):
    """The work started and failed (here: no apt-get on PATH for a Debian source): exit 1."""
    (tmp_path / "bin").mkdir()
    done = _cocattn(
        *("data", "build", "--preset", "custom", "--source", "jargon", "--vocab-size", "400"),
        *("--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--quiet"),
        env=_env(PATH=str(tmp_path / "bin")),
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("cocattn data build: error: cannot fetch jargon-text="), done.stderr
    assert "apt-get is not available" in done.stderr and "Traceback" not in done.stderr


def test_a_non_finite_loss_exits_1_and_says_stopped(tmp_path, data_dir):
    config = _train_config(tmp_path / "nan.yaml", data_dir, steps=20, lr=1e20, min_lr=0.0, grad_clip=0.0)
    done = _cocattn("train", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress")
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("cocattn train: stopped: "), done.stderr
    assert "became nan" in done.stderr or "became inf" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_exits_130(tmp_path, data_dir):
    config = _train_config(tmp_path / "long.yaml", data_dir, steps=100_000, log_interval=1)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cocattn", "train", "--config", str(config), "--out", str(run), "--no-progress"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not (run / "metrics.jsonl").is_file():
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.rstrip().endswith("cocattn train: interrupted"), stderr
