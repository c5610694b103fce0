"""What a ``cocattn reproduce`` run will compute, before it runs (``cocattn reproduce --plan``):
training tokens, the perplexity windows and passkey prompts of every evaluation setting, and each
stage's floating-point operations, counted without training or loading anything (docs/TRAINING.md,
"Counting the work")."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from cocattn.bench.flops import ModelShape

if TYPE_CHECKING:
    from cocattn.config import RunConfig

__all__ = ["ModelShape", "RunPlan", "plan_run", "plan_config", "perplexity_windows", "format_plan"]


@dataclass
class RunPlan:
    preset: str
    model: ModelShape
    kinds: list[str]
    train_steps: int
    train_tokens_per_step: int
    train_flops_per_kind: float
    settings: list[tuple[str, str]]
    """(kind, scaling) pairs evaluated."""
    lengths: list[int]
    documents: int
    documents_counted: bool
    """True: the documents were tokenised; False: each assumed as long as the truncation."""
    ppl_windows: dict[int, int] = field(default_factory=dict)
    ppl_tokens: dict[int, int] = field(default_factory=dict)
    """Tokens read by the model per length and setting (windows overlap: each is read again)."""
    ppl_scored: dict[int, int] = field(default_factory=dict)
    """Tokens scored per length and setting (each once: the perplexity's token count)."""
    ppl_flops: dict[int, float] = field(default_factory=dict)
    passkey_prompts: int = 0
    passkey_tokens: dict[int, int] = field(default_factory=dict)
    passkey_flops: dict[int, float] = field(default_factory=dict)
    retrieval_prompts: int = 0
    """Retrieval-suite prompts per length and setting (tasks × cases; 0 without eval.retrieval_tasks)."""
    retrieval_flops: dict[int, float] = field(default_factory=dict)

    @property
    def train_flops(self) -> float:
        return self.train_flops_per_kind * len(self.kinds)

    @property
    def eval_flops(self) -> float:
        return len(self.settings) * (
            sum(self.ppl_flops.values()) + sum(self.passkey_flops.values()) + sum(self.retrieval_flops.values())
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "parameters": self.model.parameters,
            "kinds": self.kinds,
            "train": {
                "steps": self.train_steps,
                "tokens_per_kind": self.train_steps * self.train_tokens_per_step,
                "flops": self.train_flops,
            },
            "eval": {
                "settings": [list(s) for s in self.settings],
                "lengths": self.lengths,
                "documents": self.documents,
                "documents_counted": self.documents_counted,
                "ppl_windows_per_setting": self.ppl_windows,
                "ppl_tokens_per_setting": self.ppl_tokens,
                "ppl_scored_per_setting": self.ppl_scored,
                "passkey_prompts_per_length": self.passkey_prompts,
                "passkey_tokens_per_setting": self.passkey_tokens,
                "retrieval_prompts_per_length": self.retrieval_prompts,
                "flops": self.eval_flops,
            },
        }


def plan_run(preset: str = "tiny-cpu", overrides: Iterable[str] = (), data_dir: str | Path | None = None) -> RunPlan:
    """The work of ``reproduce(preset, overrides=…, data_dir=…)``, counted (docs/TRAINING.md).

    Returns:
        RunPlan: tokens, windows, prompts and FLOP per stage.
    """
    from cocattn.config import load_config

    return plan_config(load_config(preset, list(overrides)), preset, data_dir)


def plan_config(cfg: RunConfig, preset: str, data_dir: str | Path | None = None) -> RunPlan:
    """:func:`plan_run` for an already loaded run configuration (what ``reproduce`` holds)."""
    from cocattn.config import eval_config
    from cocattn.pipeline.naming import eval_scalings, scaling_slug

    settings = eval_config(cfg)
    model_cfg = cfg.to_dict()["model"]  # vocab_size null: the data's, below
    model_cfg["vocab_size"] = model_cfg.get("vocab_size") or settings.vocab_size
    shape = ModelShape.from_config(model_cfg)
    l0, t = model_cfg["max_seq_len"], cfg.train
    rows = t.batch_size * t.grad_accum
    train_step = 3.0 * rows * shape.forward_flops(l0, l0)
    lengths = [l0 * m for m in settings.multiples]
    stride = settings.stride or l0
    max_tokens = settings.doc_tokens or max(lengths) + 1
    doc_lengths, counted = _document_lengths(data_dir, settings.documents, max_tokens)
    plan = RunPlan(
        preset=preset,
        model=shape,
        kinds=list(settings.kinds),
        train_steps=t.steps,
        train_tokens_per_step=rows * l0,
        train_flops_per_kind=t.steps * train_step,
        settings=[(k, scaling_slug(s)) for k in settings.kinds for s in eval_scalings(k, settings.factors)],
        lengths=lengths,
        documents=len(doc_lengths),
        documents_counted=counted,
        passkey_prompts=settings.passkey_cases,
    )
    for n, windows in perplexity_windows(doc_lengths, lengths, stride).items():
        plan.ppl_windows[n] = len(windows)
        plan.ppl_tokens[n] = sum(end - begin for begin, end, _ in windows)
        plan.ppl_scored[n] = sum(end - first + 1 for _, end, first in windows)
        plan.ppl_flops[n] = sum(shape.forward_flops(end - begin, end - first + 1) for begin, end, first in windows)
    new = settings.passkey_new_tokens
    for n in lengths:
        plan.passkey_tokens[n] = settings.passkey_cases * (n + new)
        # prompt, decoding, and the answer's scoring pass (prompt + answer again)
        per_case = (
            shape.forward_flops(n, 1)
            + sum(shape.decode_flops(n + i) for i in range(new))
            + shape.forward_flops(n + new, new)
        )
        plan.passkey_flops[n] = settings.passkey_cases * per_case
    plan.retrieval_prompts = len(settings.retrieval_tasks) * settings.retrieval_cases
    new = RETRIEVAL_NEW_TOKENS  # about a gold answer and the slack; decoding only, no scoring pass
    for n in lengths:
        per_case = shape.forward_flops(n - new, 1) + sum(shape.decode_flops(n - new + i) for i in range(new))
        plan.retrieval_flops[n] = plan.retrieval_prompts * per_case
    return plan


RETRIEVAL_NEW_TOKENS = 16
"""Tokens decoded per retrieval case in the plan's count (a 5-digit answer and the 8-token slack)."""


def perplexity_windows(
    doc_lengths: list[int], lengths: list[int], stride: int
) -> dict[int, list[tuple[int, int, int]]]:
    """The windows :func:`~cocattn.evaluate.perplexity.evaluate_perplexity` reads at each length
    (with ``too_long="skip"``, as ``reproduce`` runs it): every document at every length, a document
    shorter than the length in one window; no window at a length past the longest document."""
    from cocattn.evaluate.perplexity import window_plan

    longest = max(doc_lengths, default=0)
    return {n: [w for doc in doc_lengths for w in window_plan(doc, n, stride)] if n <= longest else [] for n in lengths}


def _document_lengths(data_dir: str | Path | None, documents: int, max_tokens: int) -> tuple[list[int], bool]:
    if data_dir is None or not (Path(data_dir) / "manifest.json").is_file():
        return [max_tokens] * documents, False
    from cocattn.data import load_eval_documents
    from cocattn.data.read.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(data_dir)
    docs = load_eval_documents(data_dir)[:documents]
    return [min(len(tokenizer.encode(d.text).ids), max_tokens) for d in docs], True


def _si(x: float, unit: str = "FLOP") -> str:
    """``10.67 PFLOP``, ``98.30 Mtokens``: two decimals and an SI prefix."""
    for prefix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}"


def _tokens(n: int) -> str:
    return f"{n / 1e9:.2f} B tokens" if n >= 1e9 else f"{n / 1e6:.2f} M tokens"


def format_plan(plan: RunPlan) -> str:
    """The plan as a short text report with one table per stage."""
    m = plan.model
    lines = [
        f"cocattn reproduce --preset {plan.preset}: the work, counted (nothing is run)",
        "",
        f"Model: {m.parameters / 1e6:.1f} M parameters ({m.block_matmul_params / 1e6:.1f} M in the blocks' matrix "
        f"products), {m.n_layer} layers, d_model {m.d_model}, vocabulary {m.vocab_size}.",
        f"Training: {len(plan.kinds)} kinds ({', '.join(plan.kinds)}) × {plan.train_steps} steps × "
        f"{plan.train_tokens_per_step:,} tokens = {_tokens(plan.train_steps * plan.train_tokens_per_step)} and "
        f"{_si(plan.train_flops_per_kind)} per kind; {_si(plan.train_flops)} in all.",
        f"Evaluation: {len(plan.settings)} settings ({', '.join(f'{k} {s}' for k, s in plan.settings)}), "
        f"{plan.documents} documents ({'tokenised' if plan.documents_counted else 'each assumed as long as the truncation'}), "
        f"{plan.passkey_prompts} passkey prompts per length.",
        "",
        "| length | perplexity windows | tokens read | FLOP | passkey tokens | FLOP |",
        "|---|---|---|---|---|---|",
    ]
    for n in plan.lengths:
        lines.append(
            f"| {n:,} | {plan.ppl_windows[n]:,} | {plan.ppl_tokens[n]:,} | {_si(plan.ppl_flops[n])} | "
            f"{plan.passkey_tokens[n]:,} | {_si(plan.passkey_flops[n])} |"
        )
    per_setting = sum(plan.ppl_flops.values()) + sum(plan.passkey_flops.values()) + sum(plan.retrieval_flops.values())
    if plan.retrieval_prompts:
        lines += [
            f"| retrieval suite | {plan.retrieval_prompts:,} prompts per length | | "
            f"{_si(sum(plan.retrieval_flops.values()))} per setting | | |"
        ]
    lines += [
        f"| per setting | {sum(plan.ppl_windows.values()):,} | {sum(plan.ppl_tokens.values()):,} | "
        f"{_si(sum(plan.ppl_flops.values()))} | {sum(plan.passkey_tokens.values()):,} | {_si(sum(plan.passkey_flops.values()))} |",
        "",
        f"Evaluation in all: {_si(plan.eval_flops)} ({_si(per_setting)} × {len(plan.settings)} settings), "
        f"{plan.eval_flops / plan.train_flops:.2f}× the training's.",
        "Time: multiply the measured time of one stage on your machine by these ratios; evaluation runs eagerly (no "
        "torch.compile) and decodes token by token, so its FLOP rate is lower than training's.",
    ]
    return "\n".join(lines)
