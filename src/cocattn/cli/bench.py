"""``cocattn bench attention|train``: speed and memory, as a table and JSON."""

from __future__ import annotations

import argparse
import shlex
import sys


def _ints(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        mult = 1024 if part.endswith("k") else 1
        out.append(int(float(part.rstrip("k")) * mult))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: attention kernels, training throughput")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)

    a = bsub.add_parser("attention", help="forward+backward time and peak memory per attention kind and length")
    a.add_argument(
        "--kinds",
        default="rope,coca,coca-strict,alibi,nope,coca-einsum",
        help="comma-separated kinds (coca-einsum = the paper's N×N form)",
    )
    a.add_argument("--lengths", type=_ints, default=None, help="e.g. 1k,2k,4k (default CPU 1K…16K, GPU 2K…128K)")
    a.add_argument("--batch", type=int, default=1)
    a.add_argument("--heads", type=int, default=None, help="default 4 on CPU, 16 on GPU")
    a.add_argument("--kv-heads", type=int, default=None)
    a.add_argument("--head-dim", type=int, default=64)
    a.add_argument("--dtype", default=None, help="float32 (CPU default) | bfloat16 (GPU default) | float16")
    a.add_argument("--device", default=None)
    a.add_argument(
        "--repeats", type=int, default=None, help="timed steps, median reported (default 3 on CPU, 10 on GPU)"
    )
    a.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="with interleaving: time each kind for at least this many seconds (default 0.25 on GPU)",
    )
    a.add_argument(
        "--interleave",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time the kinds of one length in rounds in one process (default on GPU); "
        "--no-interleave runs each case alone in a subprocess (the CPU default, needed for CPU peak memory)",
    )
    a.add_argument("--forward-only", action="store_true")
    a.add_argument("--compile", action="store_true", help="each kind's function through torch.compile")
    a.add_argument("--out", default="bench-attention.json", help="JSON output file")
    a.set_defaults(func=_attention)

    t = bsub.add_parser("train", help="training tokens/s and peak memory per attention kind at one config")
    t.add_argument("--config", default="tiny-cpu", help="preset name or YAML/JSON file (its model section is used)")
    t.add_argument("--kinds", default="rope,coca,coca-strict,alibi,nope")
    t.add_argument("--batch-size", type=int, default=None, help="default: the config's train.batch_size")
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--device", default=None)
    t.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default torch's; reproduce's workers use 1 on 2 cores)"
    )
    t.add_argument("--compile", action="store_true", help="torch.compile the model (warmup_s includes the compilation)")
    t.add_argument(
        "--chunked-loss", action="store_true", help="the loss a chunk of positions at a time (train.chunked_loss)"
    )
    t.add_argument("--out", default="bench-train.json")
    t.set_defaults(func=_train)


def _attention(args: argparse.Namespace) -> int:
    from cocattn.bench.attention import bench_attention
    from cocattn.bench.measure import hardware_name
    from cocattn.bench.results import format_table, write_results

    rows = bench_attention(
        tuple(k.strip() for k in args.kinds.split(",") if k.strip()),
        args.lengths,
        batch=args.batch,
        heads=args.heads,
        kv_heads=args.kv_heads,
        head_dim=args.head_dim,
        dtype=args.dtype,
        device=args.device,
        repeats=args.repeats,
        backward=not args.forward_only,
        compile=args.compile,
        interleave=args.interleave,
        min_time=args.min_time,
    )
    device = rows[0]["device"] if rows else "cpu"
    print(
        f"\n{hardware_name(device)}, {rows[0]['dtype'] if rows else ''}, batch {args.batch}, heads {rows[0]['heads'] if rows else ''}, head_dim {args.head_dim}, "
        f"{'forward only' if args.forward_only else 'forward+backward'}"
        f"{', compiled' if args.compile else ''}, median of {_samples(rows)} steps\n"
    )
    print(format_table(rows))
    write_results(args.out, "attention", rows, "cocattn " + shlex.join(sys.argv[1:]))
    print(f"\nwrote {args.out}")
    return 0


def _samples(rows: list[dict]) -> str:
    counts = sorted({r.get("samples", r["repeats"]) for r in rows if r.get("ms") is not None})
    if not counts:
        return "0"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def _train(args: argparse.Namespace) -> int:
    from cocattn.bench.measure import hardware_name
    from cocattn.bench.results import format_table, write_results
    from cocattn.bench.train import bench_train
    from cocattn.config import load_config

    cfg = load_config(args.config)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = cfg.to_dict()["model"]
    model["vocab_size"] = model.get("vocab_size") or 4096  # the pypi data preset's tokenizer size
    batch = args.batch_size or cfg.train.batch_size
    rows = bench_train(
        model,
        tuple(k.strip() for k in args.kinds.split(",")),
        batch_size=batch,
        steps=args.steps,
        device=args.device,
        compile=args.compile,
        chunked_loss=args.chunked_loss,
    )
    r = rows[0]
    print(
        f"\n{hardware_name(r['device'])}, config {args.config}, batch {batch} × {r['seq_len']} tokens, "
        f"allocator {r['allocator']}{', compiled' if args.compile else ''}{', chunked loss' if args.chunked_loss else ''}; "
        f"matmul rate {r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s; median of {args.steps} steps\n"
    )
    print(format_table(rows))
    write_results(args.out, "train", rows, "cocattn " + shlex.join(sys.argv[1:]))
    print(f"\nwrote {args.out}")
    return 0
