"""The options of ``cocattn eval``'s sub-commands (and ``--confidence`` / ``--ci-resamples``, which
``cocattn report`` shares)."""

from __future__ import annotations

import argparse

from cocattn._checks import positive_int


def common_args(p: argparse.ArgumentParser, scaling: bool = True) -> None:
    """CKPT and the options every sub-command has (``--rope`` and its kin only with ``scaling``)."""
    p.add_argument("checkpoint", metavar="CKPT", help="cocattn model directory or Hugging Face model directory")
    p.add_argument(
        "--lengths",
        type=int,
        nargs="+",
        metavar="N",
        help="context lengths in tokens (default: the training length x 1, 2, 4, 8, 16)",
    )
    if scaling:
        p.add_argument(
            "--rope",
            metavar="TYPE",
            help="inference-time RoPE scaling: dynamic, linear, yarn, ntk, ... (or TYPE:FACTOR); default none",
        )
        p.add_argument("--factor", type=float, help="scaling factor for --rope")
        p.add_argument(
            "--rope-json",
            metavar="JSON",
            help='full rope_parameters as JSON, e.g. \'{"rope_type": "yarn", "factor": 4, "beta_fast": 16}\'',
        )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: as stored / float32)")
    p.add_argument(
        "--autocast",
        default=None,
        metavar="DTYPE",
        help="bfloat16 | float16: float32 weights, forward passes under torch.autocast (cocattn checkpoints; "
        "what `cocattn reproduce` does on a GPU with eval.dtype=auto)",
    )
    p.add_argument(
        "--training-length",
        type=positive_int,
        default=None,
        help="override the training length L0 (default: from the checkpoint's config)",
    )
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        default=None,
        help="refuse to run when the estimated memory exceeds SIZE, e.g. 4GB (default: memory free now)",
    )
    p.add_argument("--out", metavar="FILE.json", help="write the result JSON here (and a CSV beside it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    ci_args(p)


def ci_args(p: argparse.ArgumentParser, from_results: bool = False) -> None:
    """``--confidence`` and ``--ci-resamples``; with ``from_results`` (``cocattn report``) they
    default to what the results were evaluated with."""
    from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES

    fallback = "the results' own, else " if from_results else ""
    p.add_argument(
        "--confidence",
        type=float,
        default=None if from_results else DEFAULT_CONFIDENCE,
        metavar="LEVEL",
        help=f"level of the confidence intervals, strictly between 0 and 1 (default {fallback}{DEFAULT_CONFIDENCE})",
    )
    p.add_argument(
        "--ci-resamples",
        type=int,
        default=None if from_results else DEFAULT_RESAMPLES,
        metavar="N",
        help=f"bootstrap resamples of the perplexity intervals, over documents (default {fallback}{DEFAULT_RESAMPLES})",
    )


def ppl_args(p: argparse.ArgumentParser) -> None:
    """The perplexity options (``eval ppl``, ``eval sweep``)."""
    p.add_argument("--data", metavar="DIR", help="data directory (cocattn data build), .jsonl or .txt documents")
    p.add_argument(
        "--stride",
        type=positive_int,
        default=None,
        help="tokens scored per window after the first (default min(512, training length))",
    )
    p.add_argument("--max-docs", type=int, default=None, help="evaluate at most this many documents (default all)")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="truncate documents to this many tokens (default: the longest length + 1)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="windows per forward pass")
    batch_tokens_arg(p)
    p.add_argument(
        "--skip-too-long",
        action="store_true",
        help="skip (with a warning) lengths no document fills instead of failing",
    )
    p.add_argument(
        "--preset",
        choices=["paper"],
        default=None,
        help="paper: 100 documents, stride 512, truncation 32768, lengths 512..32K",
    )


def batch_tokens_arg(p: argparse.ArgumentParser) -> None:
    """``--batch-tokens`` (speed only)."""
    p.add_argument(
        "--batch-tokens",
        type=int,
        default=None,
        help="speed only: as many perplexity windows (instead of --batch-size), or passkey prompts of one "
        "token length, per forward pass as fit in this many tokens",
    )


def passkey_args(p: argparse.ArgumentParser, batch_tokens: bool = True) -> None:
    """The passkey options (``eval passkey``, ``eval sweep``, which has ``--batch-tokens`` already)."""
    if batch_tokens:
        batch_tokens_arg(p)
    p.add_argument("--cases", type=int, default=100, help="cases per length (default 100)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="greedy tokens generated per case (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of keys (default 0)")


def retrieval_args(p: argparse.ArgumentParser) -> None:
    """The options of ``eval retrieval`` besides the common ones."""
    batch_tokens_arg(p)
    p.add_argument(
        "--tasks",
        default="niah_single",
        metavar="TASKS",
        help="comma-separated tasks, each NAME or NAME:OPTION=VALUE[:...], or 'all': niah_single, "
        "niah_multikey, niah_multivalue, niah_multiquery, vt, cwe (e.g. niah_multikey:keys=8,vt:hops=2; "
        "default niah_single)",
    )
    p.add_argument("--cases", type=int, default=100, help="cases per task and length (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cases (default 0)")
    p.add_argument(
        "--haystack",
        choices=["repeat", "corpus"],
        default="repeat",
        help="repeat: the paper's repeated sentences (default); corpus: held-out text from --data",
    )
    p.add_argument(
        "--data",
        metavar="DIR",
        help="documents for --haystack corpus: a data directory (its held-out eval.jsonl), a .jsonl or .txt file",
    )
    p.add_argument("--max-docs", type=int, default=None, help="read at most this many documents (default all)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="tokens generated per case (default: the gold answer's tokens + --answer-slack)",
    )
    p.add_argument("--answer-slack", type=int, default=8, help="tokens generated beyond the gold answer's (default 8)")
    p.add_argument(
        "--tolerance",
        type=int,
        default=4,
        help="a prompt may fall short of its length by at most this many tokens (default 4; it is recorded per case)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=0.8,
        help="effective length: the lower 95%% bound must stay above this share of the 1x score (default 0.8)",
    )
