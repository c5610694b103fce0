"""Live progress of `cocattn reproduce`: periodic plain lines while the kinds train and
are evaluated, read incrementally from a pipe in a new process; the run log keeps the same lines;
`--no-progress` keeps them off the terminal. And the lines' parts on real files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cocattn.pipeline.progress import EvalWatch, ProgressLines, RunLog, TrainWatch, duration, last_record
from conftest import build_text_data

STEPS = 400
OVERRIDES = [
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "model.max_seq_len=160",
    f"train.steps={STEPS}",
    "train.warmup=1",
    "train.batch_size=2",
    "train.log_interval=1",
    "train.eval_interval=0",
    "train.checkpoint_interval=0",
    "eval.kinds=[rope,coca]",
    "eval.multiples=[1]",
    "eval.factors=[4]",
    "eval.documents=1",
    "eval.passkey_cases=1",
    "eval.passkey_new_tokens=2",
]
TRAIN_LINE = re.compile(r"\] train \d+(?:m\d\ds)?s?: rope (\d+)/(\d+)")
STAGE_END = re.compile(r"\] train rope: \d+ steps, final loss")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    return build_text_data(root, vocab_size=512, eval_documents=2, min_eval_chars=2_000, min_eval_tokens=400)


def _reproduce(data: Path, out: Path, *flags: str) -> tuple[list[tuple[float, str]], int]:
    """Run `cocattn reproduce` in a new process with stdout to a pipe; every line with the time
    it was read, as it arrives."""
    cmd = [sys.executable, "-m", "cocattn", "reproduce", "--preset", "tiny-cpu", "--out", str(out)]
    cmd += ["--data", str(data), "--progress-every", "0.5", *flags, *OVERRIDES]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:  # read incrementally: each line as the process writes it
        lines.append((time.monotonic(), line.rstrip("\n")))
    return lines, proc.wait(timeout=600)


@pytest.mark.slow
def test_progress_lines_appear_in_a_pipe_while_training_and_in_the_run_log(data, tmp_path):
    """Guarantee: piped, `cocattn reproduce` prints a plain progress line with each kind's
    step/total, loss, tokens/s and the stage's ETA while the kinds train, before the training
    stage ends; the evaluation gets its lines too; OUT/reproduce.log has the same lines."""
    out = tmp_path / "out"
    lines, code = _reproduce(data, out)
    text = [t for _, t in lines]
    assert code == 0, "\n".join(text[-20:])
    assert not any("\r" in t for t in text)
    end = next(i for i, t in enumerate(text) if STAGE_END.search(t))
    during = [(i, TRAIN_LINE.search(t)) for i, t in enumerate(text[:end])]
    mid = [i for i, m in during if m and 0 < int(m.group(1)) < STEPS and int(m.group(2)) == STEPS]
    assert mid, "no progress line with a step short of the total before training ended:\n" + "\n".join(text)
    first = text[mid[0]]
    assert re.search(r"rope \d+/400 loss \d+\.\d{3} [\d,]+ tok/s \| coca \d+/400", first) and "| ETA" in first
    assert lines[end][0] >= lines[mid[0]][0]  # read from the pipe before the stage's end was printed
    assert any(re.search(r"\] eval \d+s: rope \d/4 \| coca \d/4 \| results \d/8 \| ETA", t) for t in text)
    logged = (out / "reproduce.log").read_text().splitlines()
    assert logged and all(t in text for t in logged)  # the run log: the parent's lines, as printed
    assert all(t in logged for t in text if TRAIN_LINE.search(t) or STAGE_END.search(t) or "| results " in t)


@pytest.mark.slow
def test_no_progress_keeps_progress_lines_off_the_terminal_but_in_the_run_log(data, tmp_path):
    out = tmp_path / "quiet"
    lines, code = _reproduce(data, out, "--no-progress")
    text = [t for _, t in lines]
    assert code == 0, "\n".join(text[-20:])
    assert any(STAGE_END.search(t) for t in text)  # the stage messages stay
    assert not any(TRAIN_LINE.search(t) or "| results " in t for t in text), "\n".join(text)
    logged = (out / "reproduce.log").read_text()
    assert TRAIN_LINE.search(logged) and "| results " in logged


def test_train_watch_reads_each_kinds_newest_record_and_estimates_the_stage(tmp_path):
    """The training line from real metrics files, one being appended to (a torn last line)."""
    rope, coca, alibi = (tmp_path / k for k in ("rope", "coca", "alibi"))
    for d in (rope, coca, alibi):
        d.mkdir()
    rec = {"step": 100, "loss": 4.25, "lr": 1e-3, "tokens": 409_600, "tok_per_s": 4096.0, "elapsed_s": 100.0}
    (rope / "metrics.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps({"step": 100, "val_loss": 4.3}) + "\n")
    (coca / "metrics.jsonl").write_text(json.dumps({**rec, "step": 50, "tokens": 204_800}) + '\n{"step": 51, "lo')
    line = TrainWatch({"rope": rope, "coca": coca, "alibi": alibi}, 200)(65.0)
    # rope 100 + coca 150 + alibi 200 steps left at 1 + 1 steps/s: 225 s
    assert line == (
        "train 1m05s: rope 100/200 loss 4.250 4,096 tok/s | coca 50/200 loss 4.250 4,096 tok/s | alibi 0/200 | ETA 3m45s"
    )
    assert last_record(alibi / "metrics.jsonl") is None
    assert duration(3725) == "1h02m" and duration(59.6) == "1m00s"


def test_eval_watch_counts_result_files_and_estimates_from_those_written_in_this_stage(tmp_path):
    paths = {k: [tmp_path / f"{m}-{k}.json" for m in ("ppl", "passkey", "retrieval")] for k in ("rope", "coca")}
    paths["rope"][0].write_text("{}")  # from an earlier, killed run: not counted in the rate
    watch = EvalWatch(paths)
    assert watch(10.0).endswith("results 1/6 | ETA –")
    paths["coca"][0].write_text("{}")
    paths["coca"][1].write_text("{}")
    assert watch(20.0) == "eval 20s: rope 1/3 | coca 2/3 | results 3/6 | ETA 30s"


def test_progress_lines_come_every_interval_and_a_failing_line_is_skipped(tmp_path):
    log = RunLog(lambda m: None, tmp_path / "reproduce.log")
    calls = []

    def describe(elapsed: float) -> str:
        calls.append(elapsed)
        if len(calls) == 2:
            raise ValueError("a record without a field")
        return f"line {len(calls)}"

    with ProgressLines(describe, log, every_s=0.05):
        time.sleep(0.4)
    n = len(calls)
    time.sleep(0.15)
    assert len(calls) == n >= 3  # stopped with the block
    written = (tmp_path / "reproduce.log").read_text().splitlines()
    assert written[0].endswith("] line 1") and written[1].endswith("] line 3")
    assert all(line.startswith("[reproduce ") for line in written)


def test_a_progress_interval_that_is_not_positive_is_refused_before_anything_runs(tmp_path, capsys):
    from cocattn.cli import main

    out = tmp_path / "out"
    assert main(["reproduce", "--out", str(out), "--progress-every", "0", "--data", str(tmp_path)]) == 2
    assert "--progress-every=0.0 is not valid: expected a positive number of seconds" in capsys.readouterr().err
    assert not out.exists()
