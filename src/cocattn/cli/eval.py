"""``cocattn eval ppl|passkey|retrieval|sweep CKPT``: length-extrapolation measurements of one checkpoint.

CKPT is a cocattn model directory or a Hugging Face model directory. Every sub-command prints a
Markdown table and, with ``--out FILE.json``, writes the result records (:mod:`cocattn.evaluate.results`)
and a CSV beside them. The functions called are the Python API of :mod:`cocattn.evaluate`.
"""

from __future__ import annotations

import argparse
import sys

import torch

from cocattn._checks import bad_value, check_choice, positive_int

PAPER_PRESET = {
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
    check_choice(arg, name, ("float32", "bfloat16", "float16"))
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


def load_from_args(args: argparse.Namespace):
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


def _documents(args: argparse.Namespace):
    from cocattn.evaluate.documents import load_documents

    if not args.data:
        raise bad_value("--data", None, "a data directory (cocattn data build), a .jsonl or .txt file of documents")
    return load_documents(args.data, max_docs=args.max_docs)


def _finish(args: argparse.Namespace, records: list[dict]) -> int:
    from cocattn.evaluate.results import write_results
    from cocattn.report.writer import markdown_table

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


def _ppl_options(args: argparse.Namespace) -> dict:
    opts = {
        "stride": args.stride,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
        "batch_tokens": args.batch_tokens,
        "max_memory": _max_memory(args),
        "too_long": "skip" if args.skip_too_long else "error",
        "confidence": args.confidence,
        "ci_resamples": args.ci_resamples,
    }
    if getattr(args, "preset", None) == "paper":
        opts["stride"] = opts["stride"] or PAPER_PRESET["stride"]
        opts["max_tokens"] = opts["max_tokens"] or PAPER_PRESET["max_tokens"]
    return opts


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
        lm, docs, _lengths(args), scaling=scaling, progress=not args.no_progress, **_ppl_options(args)
    )
    return _finish(args, [record])


def _passkey_options(args: argparse.Namespace) -> dict:
    return {
        "cases": args.cases,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "max_memory": _max_memory(args),
        "batch_tokens": args.batch_tokens,
        "confidence": args.confidence,
    }


def run_passkey(args: argparse.Namespace) -> int:
    from cocattn.evaluate.passkey import evaluate_passkey

    check_ci_args(args)
    check_checkpoint(args)
    scaling = scaling_from_args(args)
    lm = load_from_args(args)
    record = evaluate_passkey(
        lm, _lengths(args), scaling=scaling, progress=not args.no_progress, **_passkey_options(args)
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
    records = evaluate_retrieval(
        lm,
        tasks,
        _lengths(args),
        cases=args.cases,
        seed=args.seed,
        scaling=scaling,
        haystack=args.haystack,
        documents=docs,
        max_new_tokens=args.max_new_tokens,
        answer_slack=args.answer_slack,
        tolerance=args.tolerance,
        batch_tokens=args.batch_tokens,
        max_memory=_max_memory(args),
        progress=not args.no_progress,
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
    records = evaluate_sweep(
        lm,
        docs,
        args.scalings,
        metrics=args.metrics,
        lengths=_lengths(args),
        ppl_options=_ppl_options(args),
        passkey_options=_passkey_options(args),
        progress=not args.no_progress,
    )
    return _finish(args, records)


def _common(p: argparse.ArgumentParser, scaling: bool = True) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="cocattn model directory or Hugging Face model directory")
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        metavar="N",
        help="context lengths in tokens (default: the training length x 1, 2, 4, 8, 16)",
    )
    if scaling:
        p.add_argument(
            "--rope",
            metavar="TYPE",
            help="inference-time RoPE scaling: dynamic, linear, yarn, ntk, ... (or TYPE:FACTOR); default none",
        )
        p.add_argument("--factor", type=float, help="scaling factor for --rope")
        p.add_argument(
            "--rope-json",
            metavar="JSON",
            help='full rope_parameters as JSON, e.g. \'{"rope_type": "yarn", "factor": 4, "beta_fast": 16}\'',
        )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: as stored / float32)")
    p.add_argument(
        "--autocast",
        default=None,
        metavar="DTYPE",
        help="bfloat16 | float16: float32 weights, forward passes under torch.autocast (cocattn checkpoints; "
        "what `cocattn reproduce` does on a GPU with eval.dtype=auto)",
    )
    p.add_argument(
        "--training-length",
        type=positive_int,
        default=None,
        help="override the training length L0 (default: from the checkpoint's config)",
    )
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        default=None,
        help="refuse to run when the estimated memory exceeds SIZE, e.g. 4GB (default: memory free now)",
    )
    p.add_argument("--out", metavar="FILE.json", help="write the result JSON here (and a CSV beside it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    ci_args(p)


def ci_args(p: argparse.ArgumentParser, from_results: bool = False) -> None:
    """``--confidence`` and ``--ci-resamples``; with ``from_results`` (``cocattn report``) they
    default to what the results were evaluated with."""
    from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

    fallback = "the results' own, else " if from_results else ""
    p.add_argument(
        "--confidence",
        type=float,
        default=None if from_results else DEFAULT_CONFIDENCE,
        metavar="LEVEL",
        help=f"level of the confidence intervals, strictly between 0 and 1 (default {fallback}{DEFAULT_CONFIDENCE})",
    )
    p.add_argument(
        "--ci-resamples",
        type=int,
        default=None if from_results else DEFAULT_RESAMPLES,
        metavar="N",
        help=f"bootstrap resamples of the perplexity intervals, over documents (default {fallback}{DEFAULT_RESAMPLES})",
    )


def _ppl_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", help="data directory (cocattn data build), .jsonl or .txt documents")
    p.add_argument(
        "--stride",
        type=positive_int,
        default=None,
        help="tokens scored per window after the first (default min(512, training length))",
    )
    p.add_argument("--max-docs", type=int, default=None, help="evaluate at most this many documents (default all)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="truncate documents to this many tokens (default: the longest length + 1)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass")
    _batch_tokens_arg(p)
    p.add_argument(
        "--skip-too-long",
        action="store_true",
        help="skip (with a warning) lengths no document fills instead of failing",
    )
    p.add_argument(
        "--preset",
        choices=["paper"],
        default=None,
        help="paper: 100 documents, stride 512, truncation 32768, lengths 512..32K",
    )


def _batch_tokens_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="speed only: as many perplexity windows (instead of --batch-size), or passkey prompts of one "
        "token length, per forward pass as fit in this many tokens",
    )


def _passkey_args(p: argparse.ArgumentParser, batch_tokens: bool = True) -> None:
    if batch_tokens:
        _batch_tokens_arg(p)
    p.add_argument("--cases", type=int, default=100, help="cases per length (default 100)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="greedy tokens generated per case (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of keys (default 0)")


def _retrieval_args(p: argparse.ArgumentParser) -> None:
    """The options of ``eval retrieval`` besides the common ones."""
    _batch_tokens_arg(p)
    p.add_argument(
        "--tasks",
        default="niah_single",
        metavar="TASKS",
        help="comma-separated tasks, each NAME or NAME:OPTION=VALUE[:...], or 'all': niah_single, "
        "niah_multikey, niah_multivalue, niah_multiquery, vt, cwe (e.g. niah_multikey:keys=8,vt:hops=2; "
        "default niah_single)",
    )
    p.add_argument("--cases", type=int, default=100, help="cases per task and length (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cases (default 0)")
    p.add_argument(
        "--haystack",
        choices=["repeat", "corpus"],
        default="repeat",
        help="repeat: the paper's repeated sentences (default); corpus: held-out text from --data",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="documents for --haystack corpus: a data directory (its held-out eval.jsonl), a .jsonl or .txt file",
    )
    p.add_argument("--max-docs", type=int, default=None, help="read at most this many documents (default all)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="tokens generated per case (default: the gold answer's tokens + --answer-slack)",
    )
    p.add_argument("--answer-slack", type=int, default=8, help="tokens generated beyond the gold answer's (default 8)")
    p.add_argument(
        "--tolerance",
        type=int,
        default=4,
        help="a prompt may fall short of its length by at most this many tokens (default 4; it is recorded per case)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.8,
        help="effective length: the lower 95%% bound must stay above this share of the 1x score (default 0.8)",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="perplexity, passkey retrieval and scaling sweeps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="eval_command", metavar="METRIC", required=True)

    p = sub.add_parser("ppl", help="sliding-window perplexity at several context lengths")
    _common(p)
    _ppl_args(p)
    p.set_defaults(func=run_ppl)

    p = sub.add_parser("passkey", help="passkey retrieval at several lengths (the paper's prompt)")
    _common(p)
    _passkey_args(p)
    p.set_defaults(func=run_passkey)

    p = sub.add_parser(
        "retrieval",
        help="RULER-style retrieval tasks: several needles, variable tracking, common words (docs/RETRIEVAL.md)",
        description="Needle-in-a-haystack variants, variable tracking and common-word extraction at "
        "exact token lengths (prompt + gold answer), scored in one place, with Wilson intervals, "
        "per-case records and effective lengths. Tasks and their definitions: docs/RETRIEVAL.md.",
    )
    _common(p)
    _retrieval_args(p)
    p.set_defaults(func=run_retrieval)

    p = sub.add_parser("sweep", help="perplexity and passkey over RoPE scalings (one row per scaling)")
    _common(p, scaling=False)
    _ppl_args(p)
    _passkey_args(p, batch_tokens=False)
    p.add_argument(
        "--scalings",
        nargs="+",
        default=None,
        metavar="SPEC",
        help="'none', TYPE:FACTOR or JSON (default: none dynamic:2 dynamic:4 dynamic:8 linear:4 yarn:4)",
    )
    p.add_argument("--metrics", nargs="+", default=["ppl", "passkey"], choices=["ppl", "passkey"])
    p.set_defaults(func=run_sweep)
