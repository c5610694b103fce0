"""``cocattn report DIR``: regenerate report.md, PNG plots and results.csv from result JSON alone."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from cocattn.report import write_report

    path = write_report(args.source, args.out or args.source[0], title=args.title)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="tables and plots from evaluation result JSON",
                              description=__doc__)
    p.add_argument("source", nargs="+", metavar="DIR", help="result JSON files or directories (searched recursively)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: the first DIR)")
    p.add_argument("--title", default="cocattn evaluation report")
    p.set_defaults(func=run)
