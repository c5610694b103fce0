"""``cocattn report DIR``: regenerate report.md, PNG plots and results.csv from result JSON alone
(for a `cocattn reproduce` directory, with the run's hardware, timings and deviations from
reproduce.json)."""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cocattn.reproduce import DEVIATIONS_FILE, write_reproduce_report
    from cocattn.report import write_report

    source = Path(args.source[0])
    if len(args.source) == 1 and (source / DEVIATIONS_FILE).is_file() and args.out in (None, args.source[0]) \
            and args.title is None:
        # a `cocattn reproduce` directory: keep its hardware, timings and deviations from the paper
        path = write_reproduce_report(source)
    else:
        path = write_report(args.source, args.out or args.source[0], title=args.title or "cocattn evaluation report")
    print(f"wrote {path}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="tables and plots from evaluation result JSON",
                              description=__doc__)
    p.add_argument("source", nargs="+", metavar="DIR", help="result JSON files or directories (searched recursively)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: the first DIR)")
    p.add_argument("--title", default=None, help="report title (default: 'cocattn evaluation report', or the "
                   "reproduce run's own for a `cocattn reproduce` directory)")
    p.set_defaults(func=run)
