"""`cocattn reproduce`: the GPU preset end to end on CPU with its sizes shrunk, stage skipping on
rerun, and the report rebuilt from its JSON alone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch

from cocattn.cli import main
from cocattn.pipeline.reproduce import reproduce
from conftest import build_text_data

SHRINK = [  # the small-gpu preset's structure (kinds, schedule, evaluation protocol), CPU-sized
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "model.max_seq_len=160",
    "train.steps=3",
    "train.warmup=1",
    "train.batch_size=2",
    "train.compile=false",
    "train.eval_interval=0",
    "train.checkpoint_interval=2",
    "train.threads=1",
    "eval.kinds=[rope,coca]",
    "eval.multiples=[1,2]",
    "eval.factors=[4]",
    "eval.documents=2",
    "eval.passkey_cases=2",
    "eval.passkey_new_tokens=4",
    "eval.dtype=bfloat16",
    "eval.retrieval_tasks=[niah_single,niah_multiquery]",
    "eval.retrieval_cases=2",
]


@pytest.fixture(scope="module")
def small_gpu_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproduce")
    data = build_text_data(root, vocab_size=512, eval_documents=2, min_eval_chars=2_000, min_eval_tokens=400)
    out = root / "out"
    logs: list[str] = []
    reproduce("small-gpu", out, data_dir=data, overrides=SHRINK, progress=False, log=logs.append)
    return data, out, logs


def test_gpu_preset_smoke_on_cpu(small_gpu_run):
    """Guarantee: `cocattn reproduce --preset small-gpu` runs every stage (train, perplexity and
    passkey with and without dynamic NTK, report) on a machine without a GPU."""
    _, out, logs = small_gpu_run
    report = (out / "report.md").read_text()
    for row in ("rope + none", "rope + dynamic x4", "coca + none", "coca + dynamic x4"):
        assert f"| {row} |" in report
    assert "## Perplexity" in report and "## Passkey retrieval" in report
    assert (out / "ppl_vs_length.png").stat().st_size > 1000
    results = sorted(p.name for p in (out / "results").glob("*.json"))
    assert results == sorted(
        f"{m}-{k}-{s}.json"
        for m in ("ppl", "passkey", "retrieval")
        for k in ("rope", "coca")
        for s in ("plain", "dynamic4")
    )
    assert "## Retrieval suite" in report and "### niah_multiquery" in report and "Effective length" in report
    retrieval = json.loads((out / "results" / "retrieval-coca-dynamic4.json").read_text())["results"]
    assert [r["task"] for r in retrieval] == ["niah_single", "niah_multiquery"]
    assert retrieval[0]["counts"] == [2, 2] and retrieval[1]["values"][0] is None  # too short at 160: said so
    assert "160" in retrieval[1]["details"]["skipped"] and "Retrieval suite (not in the paper)" in report
    meta = json.loads((out / "reproduce.json").read_text())
    assert set(meta["train_results"]) == {"rope", "coca"}
    assert all(r["steps"] == 3 for r in meta["train_results"].values())
    assert any("train coca" in line for line in logs)
    assert "eval.dtype=bfloat16" in report  # evaluated under bf16 autocast, and the report says so
    assert "Work done in this invocation" in report and "TFLOP/s)" in report  # achieved rate of each stage


def test_rerun_skips_finished_stages(small_gpu_run):
    """Guarantee: rerunning a finished reproduce does no training or evaluation again."""
    data, out, _ = small_gpu_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    logs: list[str] = []
    start = time.perf_counter()
    reproduce("small-gpu", out, data_dir=data, overrides=SHRINK, progress=False, log=logs.append)
    assert time.perf_counter() - start < 30
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")} == before
    assert [line for line in logs if line.startswith("train")] == [
        f"train {k}: done already ({out / 'runs' / k})" for k in ("rope", "coca")
    ]


def test_report_is_rebuilt_from_json_alone_with_the_runs_notes(small_gpu_run, tmp_path):
    """Guarantee: `cocattn report DIR` on a reproduce directory rebuilds report.md and the plots
    from the JSON alone, keeping the hardware, timings and deviations from the paper."""
    _, out, _ = small_gpu_run
    original = (out / "report.md").read_text()
    (out / "report.md").unlink()
    (out / "ppl_vs_length.png").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == original
    assert (out / "ppl_vs_length.png").is_file()
    assert "Deviation from the paper" in original and "Hardware:" in original


def test_results_carry_intervals_and_the_report_opens_with_the_verdict(small_gpu_run):
    """Guarantee: every result JSON of a reproduce run carries `ci95` (one pair per length) at the
    run's level, perplexity records their per-document sums; report.md opens with the verdict,
    generated for every kind and scaling, and its tables show the intervals."""
    _, out, _ = small_gpu_run
    paths = sorted((out / "results").glob("p*.json"))  # ppl-*, passkey-* (retrieval records: their own ci_low/high)
    assert len(paths) == 8
    for path in paths:
        record = json.loads(path.read_text())
        assert len(record["ci95"]) == len(record["lengths"]) and all(len(ci) == 2 for ci in record["ci95"])
        assert record["settings"]["confidence"] == 0.95
        if record["metric"] == "ppl":
            assert record["settings"]["ci_resamples"] == 2000
            assert len(record["details"]["per_document"]["ids"]) == 2
    report = (out / "report.md").read_text()
    assert report.index("## Verdict") < report.index("Models:") < report.index("## Perplexity")
    verdict = report[report.index("## Verdict") : report.index("Models:")]
    for scaling in ("no scaling", "dynamic NTK ×4"):
        assert f"- *{scaling}*: At 2× the training length (320 tokens), CoCA-Slack's perplexity is" in verdict
    for name in ("RoPE", "CoCA-Slack"):
        for scaling in ("without scaling", "with dynamic NTK ×4"):
            assert f"- {name} {scaling}: perplexity " in verdict and f"- {name} {scaling}: 0" in verdict
    assert "paired bootstrap over 2 documents" in verdict
    assert "| rope + none | " in report and "] | " in report.split("| rope + none | ")[1].split("\n")[0]


def test_report_rebuilds_byte_identically_in_a_new_process(small_gpu_run, tmp_path):
    """Guarantee: `cocattn report DIR` (a new process) on a copy of a reproduce directory, its
    report and plots deleted, writes report.md, results.csv and every PNG byte for byte as the run
    wrote them; run twice, the same bytes again."""
    _, out, _ = small_gpu_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("runs"))
    written = sorted(p.name for p in out.iterdir() if p.suffix in (".md", ".png", ".csv"))
    assert {"report.md", "results.csv", "ppl_vs_length.png", "passkey_vs_length.png", "passkey_depth.png"} <= set(
        written
    )
    for name in written:
        (copy / name).unlink()
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "cocattn", "report", str(copy)], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        assert [name for name in written if (copy / name).read_bytes() != (out / name).read_bytes()] == []


def test_report_of_a_run_with_null_training_figures_does_not_crash(small_gpu_run, tmp_path):
    """Runs resumed after their final checkpoint by older versions recorded
    `final_loss`/`val_loss` = null; `cocattn report` on such a directory crashed formatting None.
    It now writes the report with a dash in their place."""
    _, out, _ = small_gpu_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("runs"))
    meta = json.loads((copy / "reproduce.json").read_text())
    assert set(meta["train_results"]) == {"rope", "coca"}
    meta["train_results"]["coca"].update(final_loss=None, val_loss=None, tokens_per_s=0)
    (copy / "reproduce.json").write_text(json.dumps(meta))
    done = subprocess.run(
        [sys.executable, "-m", "cocattn", "report", str(copy)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    report = (copy / "report.md").read_text()
    assert "Training `coca`: 3 steps, final loss –, validation loss –, 0 tokens/s" in report
    rope = meta["train_results"]["rope"]
    assert f"Training `rope`: 3 steps, final loss {rope['final_loss']:.3f}, " in report


@pytest.mark.parametrize(
    "override, match",
    [
        ("eval.ci_resamples=0", "eval.ci_resamples=0 is not valid"),
        ("eval.confidence=1.5", "eval.confidence=1.5 is not valid: expected a number strictly between 0 and 1"),
        ("eval.confidence=0", "eval.confidence=0 is not valid"),
    ],
)
def test_bad_interval_settings_fail_before_anything_runs(tmp_path, override, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        reproduce(
            "tiny-cpu",
            tmp_path / "out",
            data_dir=tmp_path / "no-data",
            overrides=[override],
            progress=False,
            log=lambda _: None,
        )
    assert not (tmp_path / "out").exists()


def test_plan_counts_what_the_run_scored_and_trained(small_gpu_run):
    """Guarantee: `cocattn reproduce --plan --data DIR` counts the same documents, windows and
    scored tokens as the run's perplexity evaluation, and the same settings and training steps."""
    from cocattn.pipeline.plan import plan_run

    data, out, _ = small_gpu_run
    plan = plan_run("small-gpu", SHRINK, data_dir=data)
    assert plan.documents_counted and plan.documents == 2
    assert plan.settings == [(k, s) for k in ("rope", "coca") for s in ("plain", "dynamic4")]
    for kind, slug in plan.settings:
        record = json.loads((out / "results" / f"ppl-{kind}-{slug}.json").read_text())
        assert [plan.ppl_scored[n] for n in record["lengths"]] == record["counts"]
    meta = json.loads((out / "reproduce.json").read_text())
    assert all(r["steps"] == plan.train_steps for r in meta["train_results"].values())


def test_data_without_evaluation_documents_fails_before_training(tmp_path):
    """Guarantee: a data directory with no held-out documents is refused up front, naming the
    directory, before any model is trained."""
    data = build_text_data(tmp_path, vocab_size=512)  # eval_documents=0
    logs: list[str] = []
    with pytest.raises(ValueError, match="held-out evaluation documents"):
        reproduce("small-gpu", tmp_path / "out", data_dir=data, overrides=SHRINK, progress=False, log=logs.append)
    assert not any(line.startswith("train") for line in logs)
    assert not (tmp_path / "out" / "runs").exists()


def test_kinds_side_by_side_equal_one_at_a_time(small_gpu_run, tmp_path):
    """Guarantee: training and evaluating the kinds in parallel processes (the CPU default) gives
    the same models and results as one at a time in this process (eval.jobs=1)."""
    data, out, logs = small_gpu_run
    assert any(line.startswith("train: rope, coca side by side (2 processes") for line in logs)  # the CPU default
    serial = tmp_path / "serial"
    reproduce(
        "small-gpu", serial, data_dir=data, overrides=SHRINK + ["eval.jobs=1"], progress=False, log=lambda m: None
    )
    done = json.loads((serial / "reproduce.json").read_text())["work"]["done_this_run"]
    assert done["train_jobs"]["processes"] == done["eval_jobs"]["processes"] == 1
    from safetensors.torch import load_file

    for kind in ("rope", "coca"):
        a = load_file(out / "runs" / kind / "model" / "model.safetensors")
        b = load_file(serial / "runs" / kind / "model" / "model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for path in sorted((out / "results").glob("*.json")):
        x, y = json.loads(path.read_text()), json.loads((serial / "results" / path.name).read_text())
        x, y = x.get("results", [x]), y.get("results", [y])  # a retrieval file holds one record per task
        for rx, ry in zip(x, y, strict=True):
            vx = [v for v in rx["values"] if v is not None]
            vy = [v for v in ry["values"] if v is not None]
            assert vx == pytest.approx(vy, rel=1e-5), path.name  # evaluation threads may differ: last bits only


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_jobs_fail_before_anything_runs(tmp_path, value):
    with pytest.raises(ValueError, match="eval.jobs"):
        reproduce(
            "tiny-cpu",
            tmp_path / "out",
            data_dir=tmp_path / "no-data",
            overrides=[f"eval.jobs={value}"],
            progress=False,
            log=lambda m: None,
        )


def test_a_second_reproduce_into_a_busy_directory_is_refused_naming_the_holder(tmp_path):
    """A reproduce directory is locked by the process writing it; a second
    `cocattn reproduce --out` into it exits 2 naming the holder's PID and writes nothing."""
    import os

    from cocattn import files

    out = tmp_path / "out"
    out.mkdir()
    with files.DirectoryLock(out, "reproduce directory"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "cocattn",
                "reproduce",
                "--preset",
                "tiny-cpu",
                "--out",
                str(out),
                "--data",
                str(tmp_path / "no-data"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 2, done.stderr
        assert f"reproduce directory {out} is in use by another cocattn process (PID {os.getpid()})" in done.stderr
        assert [p.name for p in out.iterdir()] == [".cocattn.lock"]
    files.DirectoryLock(out).release()  # the first holder's lock went with it
