"""``cocattn analyze attention|rope CKPT``: what attention does when a model extrapolates.

- ``attention``: per-layer attention of the last query at an extrapolated length (default 4× the
  training length) on a real document, with and without dynamic NTK, plotted like the paper's
  Figure 11 (full range and last 500 tokens), plus mean attention against distance.
- ``rope``: for RoPE models, the initial query-key angle Θ per rotary plane and the share of
  (query, key, plane) triples in the anomalous region Θ ∈ (-π, 0) per layer; for any model, mean
  attention against distance.

Both write ``<out>/<name>.json`` and PNG plots beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cocattn._checks import bad_value, positive_int

if TYPE_CHECKING:
    from cocattn.evaluate.protocol import LanguageModel


def _document(args: argparse.Namespace, lm: LanguageModel, length: int) -> list[int]:
    """The first document with at least ``length`` tokens (the ``--doc``-th such one)."""
    from cocattn.evaluate.documents import load_documents

    if not args.data:
        raise bad_value("--data", None, "a data directory (cocattn data build), a .jsonl or .txt file of documents")
    long_enough = []
    for text in load_documents(args.data):
        ids = lm.encode_prefix(text, length)
        if len(ids) >= length:
            long_enough.append(ids)
            if len(long_enough) > args.doc:
                return ids
    raise bad_value(
        "--length",
        length,
        f"a length that at least {args.doc + 1} document(s) of {args.data} reach ({len(long_enough)} do)",
    )


def run_attention(args: argparse.Namespace) -> int:
    from cocattn.cli.eval import check_checkpoint, load_from_args
    from cocattn.evaluate.attention import analyze_attention
    from cocattn.report.analysis import plot_attention, plot_distance
    from cocattn.evaluate.memory import parse_bytes
    from cocattn.evaluate.scaling import parse_scaling
    from cocattn.files import write_json

    check_checkpoint(args)
    for spec in args.scalings:
        parse_scaling(spec, "--scalings")
    lm = load_from_args(args)
    length = args.length or 4 * lm.training_length
    ids = _document(args, lm, length)
    result = analyze_attention(
        lm,
        ids,
        length,
        args.scalings,
        progress=not args.no_progress,
        max_memory=parse_bytes(args.max_memory, "--max-memory") if args.max_memory else None,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"attention-{lm.name}.json", result)
    figure = plot_attention(result, out / f"attention-{lm.name}.png", last=args.last)
    plot_distance(result, out / f"attention-distance-{lm.name}.png")
    print(f"wrote {out / f'attention-{lm.name}.json'}, {figure} and the distance plot", file=sys.stderr)
    return 0


def run_rope(args: argparse.Namespace) -> int:
    from cocattn.cli.eval import check_checkpoint, load_from_args
    from cocattn.evaluate.rope_anomaly import analyze_rope
    from cocattn.report.analysis import plot_rope
    from cocattn.files import write_json

    check_checkpoint(args)
    lm = load_from_args(args)
    length = args.length or lm.training_length
    ids = _document(args, lm, length)
    result = analyze_rope(lm, ids, length, pairs=args.pairs, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"rope-{lm.name}.json", result)
    plot_rope(result, out / f"rope-{lm.name}.png")
    if result["layers"]:
        print("layer  anomalous share  visible share (border >= 1 token)")
        for i, layer in enumerate(result["layers"]):
            print(f"{i:5d}  {layer['anomalous_share']:15.3f}  {layer['visible_share']:.3f}")
    else:
        print(result["note"])
    print(f"wrote {out / f'rope-{lm.name}.json'} and {out / f'rope-{lm.name}.png'}", file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser, default_length: str) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="cocattn model directory or Hugging Face model directory")
    p.add_argument("--data", metavar="DIR", help="data directory (cocattn data build), .jsonl or .txt documents")
    p.add_argument("--doc", type=int, default=0, help="use the N-th document long enough (default 0)")
    p.add_argument(
        "--length", type=positive_int, default=None, help=f"tokens of the document to use (default {default_length})"
    )
    p.add_argument("--out", default="analysis", metavar="DIR", help="output directory (default ./analysis)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default=None)
    p.add_argument("--training-length", type=positive_int, default=None)
    p.add_argument("--max-memory", default=None, metavar="SIZE")
    p.add_argument("--no-progress", action="store_true")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="attention scores and the RoPE anomaly at extrapolated lengths",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="analyze_command", metavar="ANALYSIS", required=True)

    p = sub.add_parser("attention", help="last-query attention with and without dynamic NTK (paper Fig. 11)")
    _common(p, "4x the training length")
    p.add_argument(
        "--scalings",
        nargs="+",
        default=["none", "dynamic:4"],
        metavar="SPEC",
        help="scalings to compare (default: none dynamic:4)",
    )
    p.add_argument("--last", type=int, default=500, help="tokens in the zoomed panel (default 500)")
    p.set_defaults(func=run_attention)

    p = sub.add_parser("rope", help="query-key angle per RoPE plane and the anomalous share, per layer")
    _common(p, "the training length")
    p.add_argument("--pairs", type=int, default=20_000, help="sampled (query, key) pairs per layer (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_rope)
