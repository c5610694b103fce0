"""The settings of an attention transfer (:class:`TransferSettings`) and what may be fitted
(:data:`FITS`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cocattn._checks import check, check_choice

FITS = ("t", "q", "gain")


@dataclass(frozen=True)
class TransferSettings:
    """How to fit the CoCA attention (defaults: the ones that measured best on SmolLM2-135M,
    docs/HF.md)."""

    tokens: int = 65_536
    seq_len: int = 512
    steps: int = 300
    lr: float = 1e-2
    batch_size: int = 1
    fit: tuple[str, ...] = ("t", "q", "gain")
    seed: int = 0
    check_sequences: int = 4  # the per-layer errors reported are measured on this many sequences

    def __post_init__(self) -> None:
        check(isinstance(self.tokens, int) and self.tokens >= 1, "tokens", self.tokens, "a positive integer")
        check(isinstance(self.seq_len, int) and self.seq_len >= 2, "seq_len", self.seq_len, "an integer >= 2")
        check(isinstance(self.steps, int) and self.steps >= 0, "steps", self.steps, "an integer >= 0")
        check(
            isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
            "lr",
            self.lr,
            "a positive number",
        )
        check(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
            "batch_size",
            self.batch_size,
            "a positive integer",
        )
        fit = tuple(self.fit)
        for name in fit:
            check_choice("fit", name, FITS)
        check("t" in fit, "fit", ",".join(fit), "a list that includes 't' (the T projection is always fitted)")
        object.__setattr__(self, "fit", tuple(sorted(set(fit), key=FITS.index)))
        check(isinstance(self.seed, int), "seed", self.seed, "an integer")
        check(
            isinstance(self.check_sequences, int) and self.check_sequences >= 1,
            "check_sequences",
            self.check_sequences,
            "a positive integer",
        )

    @property
    def sequences(self) -> int:
        """Sequences of ``seq_len`` tokens wanted: ``ceil(tokens / seq_len)``."""
        return -(-self.tokens // self.seq_len)
