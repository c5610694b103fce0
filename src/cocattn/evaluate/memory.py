"""Memory estimates made before a long evaluation starts, so it refuses at once instead of dying:
an upper bound for one forward pass without gradients from the model's sizes
(``LanguageModel.dims()``): weights, float32 logits, one layer's activations and attention scores
(docs/EVAL.md).
"""

from __future__ import annotations

import re

import torch

from cocattn._checks import bad_value

__all__ = ["estimate_forward_bytes", "available_bytes", "parse_bytes", "format_bytes", "check_fits"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "kib": 1024,
    "m": 1e6,
    "mb": 1e6,
    "mib": 1024**2,
    "g": 1e9,
    "gb": 1e9,
    "gib": 1024**3,
    "t": 1e12,
    "tb": 1e12,
    "tib": 1024**4,
}


def parse_bytes(value: str | int | float, arg: str = "max_memory") -> int:
    """``"4GB"``, ``"512MiB"``, ``"2.5g"`` or a number of bytes."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise bad_value(arg, value, "a positive size such as '4GB' or '512MiB'")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS or float(match.group(1)) <= 0:
        raise bad_value(arg, value, "a positive size such as '4GB', '512MiB' or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def estimate_forward_bytes(dims: dict[str, int], length: int, batch: int = 1) -> int:
    """Upper-bound bytes of one no-grad forward pass of ``batch`` sequences of ``length`` tokens.

    Args:
        dims: the model's sizes (:meth:`LanguageModel.dims`; ``bytes_per_value`` defaults to 4).

    Returns:
        int: weights ``params × bytes`` + float32 logits and log-softmax ``2 × batch × length ×
        vocab × 4`` + one layer's activations ``batch × length × (4 × hidden + 2 × ffn) × bytes``
        + one layer's attention scores ``2 × batch × heads × length² × bytes``.
    """
    b = dims.get("bytes_per_value", 4)
    weights = dims["params"] * b
    logits = 2 * batch * length * dims["vocab"] * 4
    activations = batch * length * (4 * dims["hidden"] + 2 * dims["ffn"]) * b
    scores = 2 * batch * dims["heads"] * length * length * b
    return int(weights + logits + activations + scores)


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device`` (CUDA: free device memory; CPU: MemAvailable), None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


TOKENIZE_BYTES_PER_CHAR = 64
"""Bytes a tokenizer holds per character it tokenises (the normalised text, its alignments and
the pieces: tokenizers keeps several machine words per character)."""


def tokenize_bytes(max_tokens: int, longest_chars: int) -> int:
    """Upper-bound bytes of tokenising what an evaluation needs: at most ``max_tokens`` tokens of
    each document, from a prefix of it (``LanguageModel.encode_prefix``, doubled at most once for
    text of the usual density), never more than the longest document."""
    from cocattn.evaluate.protocol import PREFIX_MARGIN

    chars = min(int(longest_chars), 2 * (4 * (max_tokens + PREFIX_MARGIN) + 64))
    return TOKENIZE_BYTES_PER_CHAR * chars


def check_fits(
    dims: dict[str, int],
    length: int,
    batch: int,
    device: torch.device | str,
    max_memory: int | None = None,
    *,
    extra: int = 0,
    what: str | None = None,
) -> int:
    """The estimate for ``length`` (plus ``extra`` bytes: tokenising the documents); a ValueError
    quoting it when it exceeds the limit. ``what`` names the step when it is not the forward pass.

    The limit is ``max_memory`` when given, else the memory free on ``device`` now.
    """
    need = (0 if what else estimate_forward_bytes(dims, length, batch)) + int(extra)
    limit = max_memory if max_memory is not None else available_bytes(device)
    if limit is not None and need > limit:
        source = "max_memory" if max_memory is not None else f"free memory on {torch.device(device)}"
        step = what or f"length={length} (batch {batch})" + (" with tokenising the documents" if extra else "")
        raise ValueError(
            f"{step} needs about {format_bytes(need)}, more than the "
            f"{format_bytes(limit)} allowed ({source}); use shorter --lengths, --batch-size 1, or raise --max-memory"
        )
    return need
