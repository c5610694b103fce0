"""``cocattn report DIR``: regenerate report.md (verdict, tables with confidence intervals), PNG
plots and results.csv from result JSON alone (for a `cocattn reproduce` directory, with the run's
hardware, timings and deviations from reproduce.json). The same JSON gives the same files, byte for
byte; results without per-document data (older JSON) are shown without their intervals, with a note."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cocattn.evaluate.intervals import check_ci_options
    from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
    from cocattn.report.reproduce import DEVIATIONS_FILE, write_reproduce_report
    from cocattn.report.writer import write_report

    check_ci_options(
        DEFAULT_CONFIDENCE if args.confidence is None else args.confidence,  # those given, at once
        DEFAULT_RESAMPLES if args.ci_resamples is None else args.ci_resamples,
        names=("--confidence", "--ci-resamples"),
    )
    ci = {"confidence": args.confidence, "resamples": args.ci_resamples}
    source = Path(args.source[0])
    from cocattn.lab.report import is_lab_dir, write_lab_report

    if len(args.source) == 1 and is_lab_dir(source) and args.out in (None, args.source[0]) and args.title is None:
        path = write_lab_report(source, args.confidence, args.ci_resamples)  # a `cocattn lab` directory
    elif (
        len(args.source) == 1
        and (source / DEVIATIONS_FILE).is_file()
        and args.out in (None, args.source[0])
        and args.title is None
    ):
        # a `cocattn reproduce` directory: keep its hardware, timings and deviations from the paper
        path = write_reproduce_report(source, **ci)
    else:
        path = write_report(
            args.source, args.out or args.source[0], title=args.title or "cocattn evaluation report", **ci
        )
    print(f"wrote {path}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from cocattn.cli.eval_args import ci_args

    p = subparsers.add_parser("report", help="tables and plots from evaluation result JSON", description=__doc__)
    p.add_argument("source", nargs="+", metavar="DIR", help="result JSON files or directories (searched recursively)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: the first DIR)")
    p.add_argument(
        "--title",
        default=None,
        help="report title (default: 'cocattn evaluation report', or the "
        "reproduce run's own for a `cocattn reproduce` directory)",
    )
    ci_args(p, from_results=True)
    p.set_defaults(func=run)
