"""Bad input, signals and hostile files: one regression test per cause (A-M) of docs/RELIABILITY.md,
section 9, each run the way a user meets it: ``cocattn`` in a new process, checking the exit code, the
one-line message naming the input, and that nothing was deleted or left running. Before the fixes
these gave tracebacks, hung, ate memory, deleted files or returned silently wrong results."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import build_text_data
from helpers.eval_models import save_cli_models, text

DEEP = "nested more than 100 levels deep"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``gpt`` (a native CoCA model directory, L0 32), ``hf`` (a tiny LLaMA), ``docs.jsonl``."""
    return save_cli_models(tmp_path_factory.mktemp("models"))


def cocattn(*args: str, timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """``cocattn ARGS`` in a new process (this checkout's source first on the path)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-m", "cocattn", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def refused(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2 with one error line holding every needle, and no traceback; returns that line."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert ": error: " in line, done.stderr[-3000:]
    for needle in needles:
        assert needle in line, line
    return line


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# -- A: deep nesting everywhere JSON or YAML is read --------------------------------------------


@pytest.mark.parametrize("entry", ["config_file", "override", "rope_json", "hf_config", "result_json"])
def test_deep_nesting_is_refused_at_every_entry_point(models, tmp_path, entry):
    """Cause A: a config file (100,000 deep), an override (3,000), ``--rope-json`` (20,000), an HF
    config.json (100,000) and a result JSON under ``cocattn report`` gave a RecursionError
    traceback; now exit 2 naming the input and the bound."""
    if entry == "config_file":
        (tmp_path / "deep.json").write_text('{"model": ' + _deep(100_000) + "}")
        done = cocattn("train", "--config", tmp_path / "deep.json", "--print-config")
        refused(done, "deep.json", DEEP)
    elif entry == "override":
        done = cocattn("train", "--config", "tiny-cpu", "train.betas=" + _deep(3_000), "--print-config")
        refused(done, "train.betas", DEEP)
    elif entry == "rope_json":
        spec = '{"a":' * 20_000 + "1" + "}" * 20_000  # 120 kB: under the kernel's 128 kB per argument
        done = cocattn("eval", "ppl", models / "gpt", "--data", models / "docs.jsonl", "--rope-json", spec)
        refused(done, "--rope-json", DEEP)
    elif entry == "hf_config":
        shutil.copytree(models / "hf", tmp_path / "hf")
        (tmp_path / "hf" / "config.json").write_text('{"model_type": "llama", "x": ' + _deep(100_000) + "}")
        done = cocattn("eval", "ppl", tmp_path / "hf", "--data", models / "docs.jsonl", "--lengths", "16")
        refused(done, "config.json", DEEP)
    else:
        (tmp_path / "r.json").write_text('{"schema": "cocattn.eval/1", "x": ' + _deep(100_000) + "}")
        done = cocattn("report", tmp_path / "r.json", "--out", tmp_path / "out")
        refused(done, "r.json", DEEP)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- B: YAML billion laughs ---------------------------------------------------------------------


def _laughs(levels: int = 9) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    body = "\n".join("  " + line for line in lines)
    return f"eval:\n  multiples: [1, 2]\n  extra:\n{body.replace('  l', '    l')}\n"


@pytest.mark.parametrize(
    "command", [("train", "--config", "{f}", "--print-config"), ("reproduce", "--preset", "{f}", "--plan")]
)
def test_yaml_billion_laughs_is_refused_at_once(tmp_path, command):
    """Cause B: anchors and aliases nested nine deep inside the eval section were expanded when the
    section was re-serialised (1.9 GB and growing after 60 s, ``--plan`` too); now refused in
    well under the time it took to hang, naming the file."""
    config = tmp_path / "laughs.yaml"
    config.write_text(_laughs())
    start = time.perf_counter()
    done = cocattn(*[c.replace("{f}", str(config)) for c in command], timeout=60)
    refused(done, "laughs.yaml", "aliases expanded")
    assert time.perf_counter() - start < 30


# -- C, D: model sizes and tokenizer ids checked against the files ------------------------------


def _edit_model_config(directory: Path, **model) -> None:
    config = json.loads((directory / "config.json").read_text())
    config["model"].update(model)
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("edit", [{"n_layer": 1_000_000}, {"vocab_size": 10**12}, {"n_embd": 64}])
def test_model_sizes_are_checked_against_the_weights_before_the_model_is_built(models, tmp_path, edit):
    """Cause C: ``n_layer=1000000`` in config.json built layers until memory ran out (7.3 GB in
    35 s), ``vocab_size=10**12`` gave a RuntimeError traceback. The safetensors header is read
    first; the config's shapes must be the weights' ones."""
    model = tmp_path / "m"
    shutil.copytree(models / "gpt", model)
    _edit_model_config(model, **edit)
    done = cocattn("eval", "passkey", model, "--lengths", "64", "--cases", "1", "--no-progress", timeout=60)
    refused(done, "config.json", "does not describe these weights")


def test_a_tokenizer_id_beyond_the_vocabulary_is_refused(models, tmp_path):
    """Cause D: a tokenizer.json with one id set to 2**31 (and a consistent sha256 in config.json)
    gave an IndexError traceback in the embedding."""
    model = tmp_path / "m"
    shutil.copytree(models / "gpt", model)
    tok = json.loads((model / "tokenizer.json").read_text())
    tok["model"]["vocab"][next(iter(tok["model"]["vocab"]))] = 2**31
    (model / "tokenizer.json").write_text(json.dumps(tok))
    config = json.loads((model / "config.json").read_text())
    data = (model / "tokenizer.json").read_bytes()
    config["files"]["tokenizer.json"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (model / "config.json").write_text(json.dumps(config))
    done = cocattn("eval", "passkey", model, "--lengths", "64", "--cases", "1", "--no-progress")
    refused(done, "tokenizer.json", "2147483648", "beyond the model's vocabulary")


# -- E: one long document -----------------------------------------------------------------------


def _peak_rss_of(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``cocattn ARGS`` in a child of a fresh Python (so RUSAGE_CHILDREN is that child's alone)."""
    code = (
        "import resource, subprocess, sys; "
        f"p = subprocess.run([sys.executable, '-m', 'cocattn', *{list(map(str, args))!r}], capture_output=True, text=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.stderr.write(p.stderr); sys.exit(p.returncode)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path)),
    )
    return done, int(done.stdout.split()[-1]) / 1024 if done.stdout.strip() else math.nan


def test_a_long_document_costs_what_the_evaluation_needs_not_its_size(models, tmp_path):
    """Cause E: the whole document was tokenised before truncation (an 85 MB line: 148 s and
    13.3 GB for a 129-token evaluation; a 4 MB one used 1 GB under ``--max-memory 300MB``). Now a
    3 MB document costs about what a short one does (before: about 450 MB more)."""
    short, long = tmp_path / "short.jsonl", tmp_path / "long.jsonl"
    short.write_text(json.dumps({"text": text(400)}) + "\n")
    long.write_text(json.dumps({"text": (text(2000) + " ") * 300}) + "\n")  # about 3 MB
    args = ("eval", "ppl", models / "gpt", "--lengths", "128", "--no-progress", "--max-memory", "300MB", "--data")
    small, small_rss = _peak_rss_of(*args, short)
    big, big_rss = _peak_rss_of(*args, long)
    assert small.returncode == big.returncode == 0, big.stderr[-2000:]
    assert big_rss - small_rss < 120, (small_rss, big_rss)  # MiB


def test_tokenising_counts_in_the_memory_guard():
    """Cause E, second half: tokenisation is counted against ``--max-memory``."""
    from cocattn.evaluate.memory import check_fits, tokenize_bytes

    dims = {"params": 1000, "vocab": 300, "hidden": 32, "ffn": 128, "heads": 4, "layers": 2}
    need = tokenize_bytes(32768, 10**8)
    assert 0 < need < 64 * 2 * (4 * 32784 + 64) + 1
    with pytest.raises(ValueError, match="tokenising the documents needs about"):
        check_fits(dims, 1, 1, "cpu", max_memory=need - 1, extra=need, what="tokenising the documents")


# -- F: convert replaces only what it created ---------------------------------------------------


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["dst_is_src", "dst_is_parent_of_src", "user_directory", "user_file"])
def test_convert_overwrite_never_deletes_what_it_did_not_create(models, tmp_path, case):
    """Cause F: ``convert --overwrite`` replaced the source in place (DST = SRC), deleted the source
    and everything beside it (DST = SRC's parent), and wiped a user's directory or file at DST."""
    parent = tmp_path / "m"
    src = parent / "src"
    shutil.copytree(models / "hf", src)
    (parent / "notes.txt").write_text("precious")
    dst = {"dst_is_src": src, "dst_is_parent_of_src": parent, "user_directory": tmp_path / "mine"}.get(case)
    if case == "user_directory":
        dst.mkdir()
        (dst / "thesis.tex").write_text("precious")
    if case == "user_file":
        dst = tmp_path / "mine.txt"
        dst.write_text("precious")
    before = _tree(tmp_path)
    done = cocattn("convert", "llama", src, dst, "--overwrite")
    refused(done, "dst=", "Nothing was deleted" if case in ("user_directory", "user_file") else "apart from the source")
    assert _tree(tmp_path) == before


def test_convert_overwrite_replaces_its_own_output(models, tmp_path):
    """The other half of cause F's rule: a directory convert wrote is replaced by ``--overwrite``."""
    dst = tmp_path / "coca"
    assert cocattn("convert", "llama", models / "hf", dst).returncode == 0
    assert (dst / ".cocattn-output.json").is_file()
    done = cocattn("convert", "llama", models / "hf", dst, "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    (dst / "mine.txt").write_text("precious")  # a file added by the user makes it theirs
    refused(cocattn("convert", "llama", models / "hf", dst, "--overwrite"), "mine.txt")
    assert (dst / "mine.txt").read_text() == "precious"


# -- G: eval --out r.json and a foreign r.csv ---------------------------------------------------


def test_eval_out_does_not_replace_a_csv_it_did_not_write(models, tmp_path):
    """Cause G: ``eval --out r.json`` silently replaced ``r.csv``, a file the user never named."""
    (tmp_path / "r.csv").write_text("precious\n")
    done = cocattn(
        "eval",
        "passkey",
        models / "gpt",
        "--lengths",
        "64",
        "--cases",
        "2",
        "--no-progress",
        "--out",
        tmp_path / "r.json",
    )
    refused(done, "--out=", "r.csv", "not a cocattn results CSV")
    assert (tmp_path / "r.csv").read_text() == "precious\n" and not (tmp_path / "r.json").exists()


# -- H: result JSON validated where the report reads it -----------------------------------------


def _record(**changes) -> dict:
    record = {
        "schema": "cocattn.eval/1",
        "metric": "ppl",
        "model": "rope",
        "kind": "cocattn",
        "attention": "rope",
        "training_length": 64,
        "scaling": None,
        "scaling_name": "none",
        "lengths": [64, 128],
        "values": [12.0, 30.0],
        "counts": [100, 100],
        "settings": {},
        "details": {},
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"values": ["12", 30.0]}, "values[0]='12'"),
        ({"lengths": ["64", 128]}, "lengths[0]='64'"),
        ({"values": [10**400, 30.0]}, "a finite number"),
        ({"values": [float("nan"), 30.0]}, "values[0]=nan"),
        ({"values": [12.0, float("inf")]}, "values[1]=inf"),
        ({"values": [-12.0, 30.0]}, "values[0]=-12.0"),
        ({"lengths": list(range(1, 10_001)), "values": [5.0] * 10_000, "counts": [1] * 10_000}, "1 to 256 lengths"),
        (
            {"details": {"per_document": {"ids": ["0:a"], "nll_sum": [[float("nan")], [1.0]], "tokens": [[1], [1]]}}},
            "nan",
        ),
    ],
)
def test_report_refuses_result_json_with_numbers_it_cannot_use(tmp_path, changes, needle):
    """Cause H: strings gave a TypeError traceback, 10**400 an OverflowError, NaN and Infinity were
    reported ("perplexity nan at 1×" with a contradicting ratio), negative perplexities accepted,
    and 10,000 lengths hung in the plot's tick layout; now exit 2 naming the file and the field."""
    (tmp_path / "r.json").write_text(json.dumps(_record(**changes)))
    done = cocattn("report", tmp_path / "r.json", "--out", tmp_path / "out", timeout=60)
    refused(done, "r.json", needle)


def test_report_of_valid_result_json_still_works(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(_record()))
    done = cocattn("report", tmp_path / "r.json", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| rope + none |" in (tmp_path / "out" / "report.md").read_text()


# -- I: --training-length for native checkpoints ------------------------------------------------


def test_training_length_sets_the_rope_scaling_of_native_checkpoints(models, tmp_path):
    """Cause I: ``--training-length`` was recorded but dynamic NTK used the checkpoint's own length,
    so the table did not change; the Hugging Face path honoured it."""
    values = {}
    for extra in ([], ["--training-length", "8"]):
        out = tmp_path / f"r{len(extra)}.json"
        args = [
            "eval",
            "ppl",
            models / "gpt",
            "--data",
            models / "docs.jsonl",
            "--lengths",
            "32",
            "64",
            "--stride",
            "16",
        ]
        done = cocattn(*args, "--rope", "dynamic", "--factor", "4", "--no-progress", "--out", out, *extra)
        assert done.returncode == 0, done.stderr[-2000:]
        record = json.loads(out.read_text())
        values[len(extra)] = record["values"]
    assert record["training_length"] == 8
    assert values[0] != values[2]  # L0 = 8 puts both lengths beyond it: the scaling changes the numbers


# -- M: one line ---------------------------------------------------------------------------------


def test_a_transformers_validation_error_is_one_line(models, tmp_path):
    """Cause M: transformers' message for ``head_dim=7`` holds a newline: the error took two lines."""
    shutil.copytree(models / "hf", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "head_dim": 7}))
    done = cocattn("eval", "ppl", tmp_path / "hf", "--data", models / "docs.jsonl", "--lengths", "16", "--no-progress")
    assert done.returncode == 2, done.stderr[-2000:]
    error = [i for i, line in enumerate(done.stderr.splitlines()) if ": error: " in line]
    assert len(error) == 1 and error[0] == len(done.stderr.strip().splitlines()) - 1, done.stderr
    assert "head_dim" in done.stderr.splitlines()[error[0]] or "7" in done.stderr.splitlines()[error[0]]


# -- J, K, L: reproduce -------------------------------------------------------------------------

TINY = [
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "model.max_seq_len=160",
    "train.batch_size=2",
    "train.warmup=1",
    "train.eval_interval=0",
    "train.checkpoint_interval=10",
    "train.log_interval=5",
    "train.threads=1",
    "eval.kinds=[rope,coca]",
    "eval.multiples=[1,2]",
    "eval.factors=[4]",
    "eval.documents=1",
    "eval.passkey_cases=1",
    "eval.passkey_new_tokens=2",
    "eval.retrieval_tasks=[]",
]


@pytest.fixture(scope="module")
def reproduce_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    return build_text_data(root, vocab_size=512, eval_documents=1, min_eval_chars=2_000, min_eval_tokens=400)


def test_reproduce_checks_its_whole_plan_before_any_work(reproduce_data, tmp_path):
    """Cause K: with ``model.max_seq_len=64`` both models trained and perplexity was evaluated
    before the passkey length was refused, and ``--plan`` accepted the config."""
    args = ["--preset", "tiny-cpu", "--data", reproduce_data, *TINY, "model.max_seq_len=32", "train.steps=2"]
    refused(cocattn("reproduce", "--plan", *args), "model.max_seq_len=32", "passkey prompt")
    refused(cocattn("reproduce", "--out", tmp_path / "out", "--quiet", *args), "model.max_seq_len=32")
    assert not (tmp_path / "out" / "runs").exists()


def _children(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        found.update(map(int, kids))
        todo.extend(map(int, kids))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # one reproduce killed during training, then rerun to the end (about 1 min on 2 cores)
def test_sigterm_to_reproduce_stops_its_workers_and_the_rerun_resumes(reproduce_data, tmp_path):
    """Cause L: SIGTERM to ``reproduce`` left its workers training as
    orphans holding the run locks (the rerun was refused naming the orphan). Now the parent stops
    them: no process of the run is alive 10 s after the signal, it exits 143 with one line, the
    locks are free, and the rerun resumes from the checkpoints. Cause J then: a rerun with other
    model settings is refused, naming the setting, instead of reusing the stale models."""
    out = tmp_path / "out"
    args = ["reproduce", "--preset", "tiny-cpu", "--data", reproduce_data, "--out", out, "--quiet", *TINY]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "cocattn", *map(str, args), "train.steps=3000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 240
        runs = [out / "runs" / kind / "checkpoints" for kind in ("rope", "coca")]
        while time.time() < deadline and proc.poll() is None and not all(r.is_dir() for r in runs):
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        workers = _children(proc.pid)
        assert len(workers) >= 2
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        stopped = time.time() + 10
        while time.time() < stopped and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers outlived the run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    # Python's resource tracker (a helper process of multiprocessing, not cocattn) may add a
    # "leaked semaphore" warning when a worker had to be killed; every line of cocattn's is checked
    ours = [line for line in stderr.splitlines() if "resource_tracker" not in line and "warnings.warn" not in line]
    assert [line for line in ours if line.strip()] == [
        "cocattn reproduce: terminated: SIGTERM: the worker processes were stopped; a rerun resumes from their "
        "checkpoints"
    ], stderr
    last = {}
    for kind in ("rope", "coca"):  # a kind that started late may be the only one killed mid-training
        metrics = (out / "runs" / kind / "metrics.jsonl").read_text().splitlines()
        last[kind] = max(json.loads(line)["step"] for line in metrics if line)
    assert min(last.values()) < 3000, last  # killed mid-training (3,000 tiny steps outlast the wait)
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    done = json.loads((out / "reproduce.json").read_text())["work"]["done_this_run"]
    assert done["train_resumed"] is True
    changed = cocattn(*args, "train.steps=3000", "model.n_layer=2")
    refused(changed, "model.n_layer 1 → 2", "another --out")
    changed = cocattn(*args, "train.steps=3000", "eval.passkey_cases=3")
    refused(changed, "eval.passkey_cases 1 → 3")
