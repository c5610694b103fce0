"""``cocattn lab STUDY --out DIR``: the retrieval lab. Trains small GPTs of each attention kind on a
synthetic retrieval task (generated on the fly, seeded), scores them at 1-16x their training
length, plain and with RoPE scalings, and writes lab.json, report.md (tables with intervals over
seeds) and plots. Studies: extrapolation (copy task, four kinds, five seeds), learning (the same,
steps to 90 % in-window, with attention diagnostics), capacity (MQAR accuracy over width x pairs),
remedies (CoCA's training options against the released code's CoCA and RoPE at init std 0.02).
A rerun resumes."""

from __future__ import annotations

import argparse
import sys

from cocattn.cli._options import key_values


def _recipe_options(args: argparse.Namespace) -> dict:
    given = {
        k: getattr(args, k)
        for k in ("steps", "batch_size", "lr", "min_lr", "warmup", "curve_every")
        if getattr(args, k) is not None
    }
    if "lr" in given and "min_lr" not in given:
        given["min_lr"] = given["lr"] / 10
    return given


def run(args: argparse.Namespace) -> int:
    from cocattn.attention.coca_options import TAU_ACTIVATIONS
    from cocattn.lab import make_study, run_lab

    options = {
        "task": args.task,
        "task_options": key_values(args.task_option, "--task-option", "segment=4, vocab_size=64, scale_pairs=true"),
        "coca": key_values(args.coca, "--coca", "t_init_std=0.08, tau=softplus", TAU_ACTIVATIONS) or None,
        "remedies": tuple(args.remedies) if args.remedies else None,
        "kinds": tuple(args.kinds) if args.kinds else None,
        "seeds": args.seeds,
        "widths": tuple(args.widths) if args.widths else None,
        "pairs": tuple(args.pairs) if args.pairs else None,
        "multiples": tuple(args.multiples) if args.multiples else None,
        "scalings": ("plain", *args.rope) if args.rope else None,
        "n_layer": args.layers,
        "n_head": args.heads,
        "init_std": args.init_std,
        "eval_cases": args.eval_cases,
        "recipe_options": _recipe_options(args),
    }
    study = make_study(args.study, **options)
    if args.plan:
        from cocattn.lab.study import unit_names

        names = unit_names(study)
        print(
            f"{study.study}: {len(names)} models ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}), {study.recipe.steps} steps each"
        )
        return 0
    path = run_lab(study, args.out, jobs=args.jobs, progress=not args.no_progress)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from cocattn.lab import STUDIES, TASKS

    p = subparsers.add_parser(
        "lab", help="synthetic retrieval lab: extrapolation, learning speed, capacity", description=__doc__
    )
    p.add_argument("study", choices=STUDIES, help="which study")
    p.add_argument("--out", required=True, metavar="DIR", help="where the study writes (a rerun resumes)")
    p.add_argument("--task", choices=TASKS, default=None, help="the task (default: copy; capacity: mqar)")
    p.add_argument(
        "--task-option",
        action="append",
        metavar="KEY=VALUE",
        help="a task setting (segment, vocab_size, pairs, scale_pairs, power_a, train_length)",
    )
    p.add_argument(
        "--kinds",
        nargs="+",
        metavar="KIND",
        help="attention kinds (default: rope coca coca-strict alibi; capacity and remedies: rope coca coca-strict)",
    )
    p.add_argument("--seeds", type=int, help="models per kind (default 5; capacity 3)")
    p.add_argument("--widths", nargs="+", type=int, metavar="W", help="model widths (default 64; capacity 16 32 64)")
    p.add_argument("--pairs", nargs="+", type=int, metavar="P", help="mqar key-value pairs (capacity: 2 4 8)")
    p.add_argument(
        "--coca",
        action="append",
        metavar="KEY=VALUE",
        help="a CoCA training option for every CoCA model (tau, t_init_std, q_init_std, t_bias, score_scale, t_lr_mult)",
    )
    p.add_argument(
        "--remedies",
        nargs="+",
        metavar="NAME",
        help="named CoCA option sets, one model each per CoCA kind (remedies study default: all of cocattn.lab.REMEDIES)",
    )
    p.add_argument(
        "--multiples",
        nargs="+",
        type=int,
        metavar="M",
        help="test lengths as multiples of the training length (default 1 2 4 8 16)",
    )
    p.add_argument(
        "--rope",
        nargs="+",
        metavar="TYPE:FACTOR",
        help="RoPE scalings scored beside plain (default dynamic:2 dynamic:4 dynamic:8)",
    )
    p.add_argument("--layers", type=int, help="transformer blocks (default 2)")
    p.add_argument("--heads", type=int, help="attention heads (default 4)")
    p.add_argument("--init-std", type=float, help="weight init std, every kind alike (default 0.08; remedies 0.02)")
    p.add_argument("--steps", type=int, help="training steps per model (default 1000; remedies 600)")
    p.add_argument("--batch-size", type=int, help="rows per step")
    p.add_argument("--lr", type=float, help="peak learning rate (min_lr: a tenth)")
    p.add_argument("--min-lr", type=float, help="final learning rate")
    p.add_argument("--warmup", type=int, help="warm-up steps")
    p.add_argument("--curve-every", type=int, help="score in-window every this many steps (learning curve)")
    p.add_argument("--eval-cases", type=int, help="cases per length (default 200)")
    p.add_argument("--jobs", type=int, help="models trained side by side (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    p.add_argument("--plan", action="store_true", help="check the study and list its models; train nothing")
    p.set_defaults(func=run)
