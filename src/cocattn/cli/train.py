"""``cocattn train --config NAME|FILE [--data DIR] [--out RUN_DIR] [--resume] [key=value ...]``.

Continued training of a saved model, staged as in the paper (1: T projections; 2: Q, T, V; 3: all):
``cocattn train --config FILE --init-from MODEL_DIR --stage N --data DIR --out RUN_DIR``, where
MODEL_DIR is a Hugging Face model (e.g. from ``cocattn convert llama``) or a cocattn model
directory, and DIR was tokenized with the model's tokenizer. Only ``model.max_seq_len`` (the
training length) is read from the config's model section.

The same command under ``torchrun`` trains with DDP or FSDP2 (``train.distributed``), e.g.
``torchrun --nproc_per_node 8 -m cocattn train --config small-gpu --data data/full``; multi-node
is plain torchrun (``--nnodes N --node_rank R --rdzv_endpoint HOST:PORT``), with the run directory
on a file system that rank 0 can write.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (resumable; DDP/FSDP under torchrun)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        required=True,
        metavar="NAME|FILE",
        help="a preset (tiny-cpu, small-gpu, paper-350m) or a YAML/JSON file",
    )
    parser.add_argument("--data", metavar="DIR", help="data directory from `cocattn data build` (data.dir)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default runs/<config name>-<attention>)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    parser.add_argument(
        "--init-from",
        metavar="MODEL_DIR",
        help="continue training this Hugging Face or cocattn model directory (train.init_from)",
    )
    parser.add_argument(
        "--stage",
        type=int,
        choices=(1, 2, 3),
        metavar="N",
        help="with --init-from: 1 = T projections only, 2 = Q/T/V projections, 3 = all weights (train.stage)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides such as train.lr=3e-4 model.attention=coca"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cocattn import files
    from cocattn.config import load_config
    from cocattn.train import train

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.dir={args.data}")
    config = load_config(args.config, overrides)
    if args.init_from is not None or args.stage is not None:  # set directly: a path is not parsed as YAML
        train_cfg = dataclasses.replace(
            config.train,
            init_from=args.init_from if args.init_from is not None else config.train.init_from,
            stage=args.stage if args.stage is not None else config.train.stage,
        )
        config = dataclasses.replace(config, train=train_cfg)
        config.validate()
    if args.print_config:
        print(files.dumps_json(config.to_dict()), end="")
        return 0
    if config.train.init_from:
        stage = f"-stage{config.train.stage}" if config.train.stage else ""
        default_out = f"runs/{config.name or 'run'}-{Path(config.train.init_from).name}{stage}"
    else:
        default_out = f"runs/{config.name or 'run'}-{config.model.attention}"
    out = args.out or default_out
    result = train(config, out, resume=args.resume, progress=False if args.no_progress else None)
    if result.world_size == 1 or _rank() == 0:
        val = f", val loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        print(
            f"trained {result.steps} steps ({result.tokens:,} tokens, {result.tokens_per_s:,.0f} tok/s): "
            f"loss {result.final_loss:.4f}{val}; model in {result.model_dir}"
        )
    return 0


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))
