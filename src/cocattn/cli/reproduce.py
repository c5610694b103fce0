"""``cocattn reproduce``: data → train every kind → evaluate → report, skipping finished stages."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from cocattn.pipeline.reproduce import PRESETS

    p = sub.add_parser(
        "reproduce",
        help="the paper's comparison end to end (default: tiny-cpu, minutes on a laptop CPU)",
        description=(
            "Build or reuse the data, train rope / alibi / coca / coca-strict with identical settings, evaluate "
            "sliding-window perplexity and passkey from 1x to 16x (CPU) or 64x (GPU presets) the training length, "
            "plain and with dynamic NTK, and write report.md, PNG plots and JSON into OUT. Rerunning skips "
            "finished stages; a killed run resumes."
        ),
    )
    p.add_argument(
        "--preset", default="tiny-cpu", help=f"one of {', '.join(PRESETS)} or a config file (default tiny-cpu)"
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument(
        "--data",
        default=None,
        help="an existing `cocattn data build` directory (default: build/reuse one in the cache)",
    )
    p.add_argument(
        "--no-progress",
        "--quiet",
        dest="quiet",
        action="store_true",
        help="no progress lines on the terminal (OUT/reproduce.log still gets them)",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a progress line (each kind's step, loss, tokens/s, the stage's ETA) every SECONDS while "
        "the kinds train and are evaluated (default 30)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the work the run would do (tokens, windows, FLOP per stage) and exit; nothing is run",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. train.steps=200 eval.kinds=[rope,coca] eval.passkey_cases=20",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.plan:
        from cocattn.config import load_config
        from cocattn.pipeline.plan import format_plan, plan_run
        from cocattn.pipeline.preflight import check_plan, data_dir_for

        cfg = load_config(args.preset, list(args.overrides))
        check_plan(cfg, data_dir_for(cfg, args.data))  # refused as the run itself would be
        print(format_plan(plan_run(args.preset, args.overrides, data_dir=args.data)))
        return 0
    from cocattn.pipeline.reproduce import reproduce

    if not args.progress_every > 0:
        from cocattn._checks import bad_value

        raise bad_value("--progress-every", args.progress_every, "a positive number of seconds")
    path = reproduce(
        args.preset,
        args.out,
        data_dir=args.data,
        overrides=args.overrides,
        progress=not args.quiet,
        progress_every=args.progress_every,
    )
    print(f"report: {path}")
    return 0
