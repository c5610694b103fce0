"""``cocattn eval ppl|passkey|retrieval|sweep CKPT``: length-extrapolation measurements of one checkpoint.

CKPT is a cocattn model directory or a Hugging Face model directory. Every sub-command prints a
Markdown table and, with ``--out FILE.json``, writes the result records (:mod:`cocattn.evaluate.results`)
and a CSV beside them. The functions called are the Python API of :mod:`cocattn.evaluate`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import torch

from cocattn._checks import bad_value, check_choice
from cocattn.cli.eval_args import common_args, passkey_args, ppl_args, retrieval_args

if TYPE_CHECKING:
    from cocattn.evaluate.protocol import LanguageModel
    from cocattn.evaluate.suite import SuiteOptions

PAPER_PRESET: dict[str, Any] = {
    "lengths": [512, 1024, 2048, 4096, 8192, 16384, 32768],
    "stride": 512,
    "max_docs": 100,
    "max_tokens": 32768,
}
"""The paper's perplexity protocol: 100 documents, stride 512, truncated at 32,768 tokens."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise bad_value("--device", name, "'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise bad_value(
                "--device",
                name,
                "'cpu' or 'auto': this torch sees no CUDA GPU "
                f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'})",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise bad_value("--device", name, f"cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return device


def _dtype(name: str | None, arg: str = "--dtype") -> torch.dtype | None:
    if name is None:
        return None
    from cocattn.config import AUTOCAST_DTYPES

    check_choice(arg, name, AUTOCAST_DTYPES)
    return getattr(torch, name)


def scaling_from_args(args: argparse.Namespace) -> dict | None:
    """``--rope TYPE [--factor F]`` or ``--rope-json '{...}'`` as a rope_parameters dict (or None)."""
    from cocattn.evaluate.scaling import parse_scaling

    if getattr(args, "rope_json", None):
        if args.rope:
            raise bad_value("--rope-json", args.rope_json, "either --rope or --rope-json, not both")
        return parse_scaling(args.rope_json, "--rope-json")
    if not args.rope:
        if args.factor is not None:
            raise bad_value("--factor", args.factor, "--factor together with --rope TYPE")
        return None
    spec = args.rope if args.factor is None or ":" in args.rope else f"{args.rope}:{args.factor}"
    return parse_scaling(spec, "--rope")


def check_checkpoint(args: argparse.Namespace) -> str:
    """Fail fast (before reading data) when CKPT is not a model directory, or when ``--out``'s CSV
    twin is a file cocattn did not write; returns the directory's kind."""
    from cocattn.checkpoint import model_dir_kind
    from cocattn.evaluate.results import check_results_path

    if args.command == "eval" and getattr(args, "out", None):
        check_results_path(args.out, "--out")
    return model_dir_kind(args.checkpoint)


def load_from_args(args: argparse.Namespace) -> LanguageModel:
    from cocattn.evaluate.lm import load_lm

    return load_lm(
        args.checkpoint,
        device=_device(args.device),
        dtype=_dtype(args.dtype),
        training_length=args.training_length,
        autocast=_dtype(getattr(args, "autocast", None), "--autocast"),
    )


def _max_memory(args: argparse.Namespace) -> int | None:
    from cocattn.evaluate.memory import parse_bytes

    return parse_bytes(args.max_memory, "--max-memory") if args.max_memory else None


def _documents(args: argparse.Namespace) -> list[str]:
    from cocattn.evaluate.documents import load_documents

    if not args.data:
        raise bad_value("--data", None, "a data directory (cocattn data build), a .jsonl or .txt file of documents")
    return load_documents(args.data, max_docs=args.max_docs)


def _finish(args: argparse.Namespace, records: list[dict]) -> int:
    from cocattn.evaluate.results import write_results
    from cocattn.report.format import markdown_table

    for metric in ("ppl", "passkey"):
        rows = [
            (
                f"{r['model']} + {r['scaling_name']}",
                dict(zip(r["lengths"], r["values"])),
                dict(zip(r["lengths"], r.get("ci95") or [])),
            )
            for r in records
            if r["metric"] == metric
        ]
        if rows:
            level = f"{records[0]['settings'].get('confidence', 0.95) * 100:g}%"
            print(
                f"\n{'perplexity' if metric == 'ppl' else 'passkey accuracy'} ({level} interval in brackets):\n"
                f"{markdown_table(rows, metric)}"
            )
    if args.out:
        path = write_results(args.out, records)
        print(f"\nwrote {path} and {path.with_suffix('.csv')}", file=sys.stderr)
    return 0


def check_ci_args(args: argparse.Namespace) -> None:
    """``--confidence`` in (0, 1) and ``--ci-resamples`` >= 1, checked before anything is loaded."""
    from cocattn.evaluate.intervals import check_ci_options

    check_ci_options(args.confidence, args.ci_resamples, names=("--confidence", "--ci-resamples"))


def _options(args: argparse.Namespace, **fields: Any) -> SuiteOptions:
    """The evaluators' options (:class:`~cocattn.evaluate.suite.SuiteOptions`) from the options
    every sub-command has and the sub-command's own ``fields``."""
    from cocattn.evaluate.suite import SuiteOptions

    return SuiteOptions(
        batch_tokens=args.batch_tokens,
        max_memory=_max_memory(args),
        confidence=args.confidence,
        ci_resamples=args.ci_resamples,
        **fields,
    )


def _ppl_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The perplexity fields of :func:`_options` (``--preset paper`` fills stride and truncation)."""
    fields = {
        "stride": args.stride,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "too_long": "skip" if args.skip_too_long else "error",
    }
    if getattr(args, "preset", None) == "paper":
        fields["stride"] = fields["stride"] or PAPER_PRESET["stride"]
        fields["max_tokens"] = fields["max_tokens"] or PAPER_PRESET["max_tokens"]
    return fields


def _lengths(args: argparse.Namespace) -> list[int] | None:
    if args.lengths:
        return args.lengths
    if getattr(args, "preset", None) == "paper":
        return list(PAPER_PRESET["lengths"])
    return None


def run_ppl(args: argparse.Namespace) -> int:
    from cocattn.evaluate.perplexity import evaluate_perplexity

    check_ci_args(args)
    check_checkpoint(args)
    if args.preset == "paper" and args.max_docs is None:
        args.max_docs = PAPER_PRESET["max_docs"]
    scaling = scaling_from_args(args)
    docs = _documents(args)
    lm = load_from_args(args)
    record = evaluate_perplexity(
        lm,
        docs,
        _lengths(args),
        scaling=scaling,
        progress=not args.no_progress,
        **_options(args, **_ppl_fields(args)).perplexity(),
    )
    return _finish(args, [record])


def _passkey_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The passkey fields of :func:`_options`."""
    return {"passkey_cases": args.cases, "passkey_new_tokens": args.max_new_tokens, "seed": args.seed}


def run_passkey(args: argparse.Namespace) -> int:
    from cocattn.evaluate.passkey import evaluate_passkey

    check_ci_args(args)
    check_checkpoint(args)
    scaling = scaling_from_args(args)
    lm = load_from_args(args)
    record = evaluate_passkey(
        lm,
        _lengths(args),
        scaling=scaling,
        progress=not args.no_progress,
        **_options(args, **_passkey_fields(args)).passkey(),
    )
    return _finish(args, [record])


def run_retrieval(args: argparse.Namespace) -> int:
    from cocattn.evaluate.results import write_results
    from cocattn.evaluate.retrieval import evaluate_retrieval
    from cocattn.report.retrieval import format_retrieval
    from cocattn.tasks.ruler import parse_tasks

    check_checkpoint(args)
    tasks = parse_tasks(args.tasks)  # fail before loading
    if not 0 < args.threshold <= 1:
        raise bad_value("--threshold", args.threshold, "a number in (0, 1]: the share of the 1x score")
    scaling = scaling_from_args(args)
    docs = None
    if args.haystack == "corpus":
        docs = _documents(args)
    elif args.data:
        raise bad_value(
            "--data", args.data, "--data together with --haystack corpus (the repeat haystack reads no data)"
        )
    lm = load_from_args(args)
    lengths = _lengths(args)
    options = _options(
        args,
        seed=args.seed,
        retrieval_cases=args.cases,
        haystack=args.haystack,
        documents=docs,
        retrieval_new_tokens=args.max_new_tokens,
        answer_slack=args.answer_slack,
        tolerance=args.tolerance,
    )
    records = evaluate_retrieval(
        lm, tasks, lengths, scaling=scaling, progress=not args.no_progress, **options.retrieval()
    )
    print("\n" + format_retrieval(records, args.threshold))
    if args.out:
        path = write_results(args.out, records)
        print(f"wrote {path} and {path.with_suffix('.csv')} (plots: cocattn report {path} --out DIR)", file=sys.stderr)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from cocattn.evaluate.scaling import DEFAULT_SWEEP, parse_scaling
    from cocattn.evaluate.sweep import evaluate_sweep

    check_ci_args(args)
    check_checkpoint(args)
    args.scalings = args.scalings or list(DEFAULT_SWEEP)
    if args.preset == "paper" and args.max_docs is None:
        args.max_docs = PAPER_PRESET["max_docs"]
    for spec in args.scalings:
        parse_scaling(spec, "--scalings")  # fail before loading anything
    docs = _documents(args) if "ppl" in args.metrics else None
    lm = load_from_args(args)
    lengths = _lengths(args)
    options = _options(args, **_ppl_fields(args), **_passkey_fields(args))
    records = evaluate_sweep(
        lm,
        docs,
        args.scalings,
        metrics=args.metrics,
        lengths=lengths,
        ppl_options=options.perplexity(),
        passkey_options=options.passkey(),
        progress=not args.no_progress,
    )
    return _finish(args, records)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity, passkey retrieval and scaling sweeps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="METRIC", required=True)

    p = sub.add_parser("ppl", help="sliding-window perplexity at several context lengths")
    common_args(p)
    ppl_args(p)
    p.set_defaults(func=run_ppl)

    p = sub.add_parser("passkey", help="passkey retrieval at several lengths (the paper's prompt)")
    common_args(p)
    passkey_args(p)
    p.set_defaults(func=run_passkey)

    p = sub.add_parser(
        "retrieval",
        help="RULER-style retrieval tasks: several needles, variable tracking, common words (docs/RETRIEVAL.md)",
        description="Needle-in-a-haystack variants, variable tracking and common-word extraction at "
        "exact token lengths (prompt + gold answer), scored in one place, with Wilson intervals, "
        "per-case records and effective lengths. Tasks and their definitions: docs/RETRIEVAL.md.",
    )
    common_args(p)
    retrieval_args(p)
    p.set_defaults(func=run_retrieval)

    p = sub.add_parser("sweep", help="perplexity and passkey over RoPE scalings (one row per scaling)")
    common_args(p, scaling=False)
    ppl_args(p)
    passkey_args(p, batch_tokens=False)
    p.add_argument(
        "--scalings",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="'none', TYPE:FACTOR or JSON (default: none dynamic:2 dynamic:4 dynamic:8 linear:4 yarn:4)",
    )
    p.add_argument("--metrics", nargs="+", default=["ppl", "passkey"], choices=["ppl", "passkey"])
    p.set_defaults(func=run_sweep)
