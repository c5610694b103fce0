"""cocattn: Collinear Constrained Attention (CoCA, arXiv 2309.08646) at vanilla cost, and the
tools to measure length extrapolation."""

__version__ = "0.1.0"

from cocattn.attention import (  # noqa: E402
    Attention,
    KVCache,
    alibi_attention,
    coca_attention,
    nope_attention,
    rope_attention,
)
from cocattn.rope import RopeParameters, inv_freq_and_scaling, rope_parameters  # noqa: E402

__all__ = [
    "__version__",
    "Attention",
    "KVCache",
    "RopeParameters",
    "alibi_attention",
    "coca_attention",
    "inv_freq_and_scaling",
    "nope_attention",
    "rope_attention",
    "rope_parameters",
]
