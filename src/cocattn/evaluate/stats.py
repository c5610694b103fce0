"""Confidence intervals for every number the reports compare: Wilson for accuracies; percentile
bootstraps over documents (perplexity), over models (a mean over seeds), and paired over the same
documents (ratios). Pure and deterministic for a given ``seed`` (NumPy's PCG64); docs/EVAL.md.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

import numpy as np

from cocattn._checks import check

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "z_value",
    "wilson_interval",
    "bootstrap_ppl_interval",
    "paired_ratio_interval",
    "bootstrap_mean_interval",
    "bootstrap_two_sample_interval",
    "check_confidence",
    "check_resamples",
]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 2000


def check_confidence(confidence: float) -> None:
    check(
        isinstance(confidence, (int, float)) and not isinstance(confidence, bool) and 0.0 < confidence < 1.0,
        "confidence",
        confidence,
        "a number strictly between 0 and 1 (e.g. 0.95)",
    )


def check_resamples(resamples: int) -> None:
    check(
        isinstance(resamples, int) and not isinstance(resamples, bool) and resamples >= 1,
        "ci_resamples",
        resamples,
        "a positive integer (bootstrap resamples, e.g. 2000)",
    )


def z_value(confidence: float = DEFAULT_CONFIDENCE) -> float:
    """The two-sided standard normal quantile: 1.959964 for 0.95."""
    check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for ``successes`` out of ``n`` trials.

    ``low = (p + z²/2n − z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)`` and ``high`` with ``+``.
    For 0/50 at 95%: (0, 0.0713); 25/50: (0.3664, 0.6336); 50/50: (0.9287, 1).
    """
    check(isinstance(n, int) and n >= 1, "n", n, "a positive number of trials")
    check(isinstance(successes, int) and 0 <= successes <= n, "successes", successes, f"an integer in [0, {n}]")
    z = z_value(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, (centre - half) / denom)
    high = 1.0 if successes == n else min(1.0, (centre + half) / denom)
    return low, high


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha], method="linear")
    return float(low), float(high)


def _doc_arrays(nll_sums: Sequence[float], tokens: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    nll = np.asarray(nll_sums, dtype=np.float64)
    cnt = np.asarray(tokens, dtype=np.float64)
    check(
        nll.ndim == 1 and nll.shape == cnt.shape and nll.size >= 1,
        "per-document NLL sums and token counts",
        f"<{nll.size} sums, {cnt.size} counts>",
        "two equally long, non-empty lists",
    )
    check(bool(np.all(cnt > 0)), "per-document token counts", tokens, "positive counts")
    return nll, cnt


def _draws(n_docs: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_docs, size=(resamples, n_docs))


def bootstrap_ppl_interval(
    nll_sums: Sequence[float],
    tokens: Sequence[int],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``exp(Σ nll / Σ tokens)`` over documents.

    ``nll_sums[i]`` and ``tokens[i]`` are document i's summed NLL (nats) and scored tokens. With
    a single document, or documents that all have the same mean NLL, the interval has zero width.
    """
    check_confidence(confidence)
    check_resamples(resamples)
    nll, cnt = _doc_arrays(nll_sums, tokens)
    idx = _draws(nll.size, resamples, seed)
    ppl = np.exp(nll[idx].sum(1) / cnt[idx].sum(1))
    return _percentiles(ppl, confidence)


def paired_ratio_interval(
    nll_a: Sequence[float],
    tokens_a: Sequence[int],
    nll_b: Sequence[float],
    tokens_b: Sequence[int],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(ratio, low, high)`` for ``ppl_a / ppl_b`` on the same documents (index i = the same
    document in both), with a paired percentile bootstrap: each resample draws one set of
    documents and recomputes both perplexities on it. The ratio of a model with itself is
    exactly ``(1, 1, 1)``."""
    check_confidence(confidence)
    check_resamples(resamples)
    a, ca = _doc_arrays(nll_a, tokens_a)
    b, cb = _doc_arrays(nll_b, tokens_b)
    check(a.size == b.size, "documents", f"<{a.size} against {b.size}>", "the same documents for both sides of a ratio")
    ratio = float(math.exp(a.sum() / ca.sum() - b.sum() / cb.sum()))
    idx = _draws(a.size, resamples, seed)
    log_ratio = a[idx].sum(1) / ca[idx].sum(1) - b[idx].sum(1) / cb[idx].sum(1)
    low, high = _percentiles(np.exp(log_ratio), confidence)
    return ratio, low, high


def bootstrap_mean_interval(
    values: Sequence[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` (e.g. one accuracy per seed) and its
    percentile bootstrap interval, drawing the values with replacement. One value, or equal
    values, give a zero-width interval."""
    check_confidence(confidence)
    check_resamples(resamples)
    x = np.asarray(values, dtype=np.float64)
    check(
        x.ndim == 1 and x.size >= 1 and bool(np.all(np.isfinite(x))),
        "values",
        list(values),
        "a non-empty list of finite numbers",
    )
    idx = _draws(x.size, resamples, seed)
    low, high = _percentiles(x[idx].mean(1), confidence)
    return float(x.mean()), low, high


def _two_samples(first: Sequence[float], second: Sequence[float], positive: bool) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, values in (("first", first), ("second", second)):
        x = np.asarray(values, dtype=np.float64)
        ok = x.ndim == 1 and x.size >= 1 and bool(np.all(np.isfinite(x))) and (not positive or bool(np.all(x > 0)))
        check(ok, name, list(values), f"a non-empty list of {'positive ' if positive else ''}finite numbers")
        arrays.append(x)
    return arrays[0], arrays[1]


def bootstrap_two_sample_interval(
    first: Sequence[float],
    second: Sequence[float],
    statistic: str = "ratio",
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(value, low, high)`` for two independent samples (e.g. one number per seed of two
    settings): ``statistic="ratio"`` is ``mean(first) / mean(second)`` (positive values only),
    ``"difference"`` is ``mean(first) - mean(second)``; the interval is a percentile bootstrap that
    draws each sample with replacement on its own."""
    check_confidence(confidence)
    check_resamples(resamples)
    check(statistic in ("ratio", "difference"), "statistic", statistic, "'ratio' or 'difference'")
    a, b = _two_samples(first, second, positive=statistic == "ratio")
    ma, mb = a[_draws(a.size, resamples, seed)].mean(1), b[_draws(b.size, resamples, seed + 1)].mean(1)
    if statistic == "ratio":
        low, high = _percentiles(ma / mb, confidence)
        return float(a.mean() / b.mean()), low, high
    low, high = _percentiles(ma - mb, confidence)
    return float(a.mean() - b.mean()), low, high
