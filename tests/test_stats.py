"""Confidence intervals against published values and exact identities."""

import math

import pytest

from cocattn.evaluate.stats import bootstrap_ppl_interval, paired_ratio_interval, wilson_interval, z_value


@pytest.mark.parametrize(
    "k,n,low,high",
    [
        # Wilson 95% intervals (z = 1.959964), e.g. Newcombe (1998), Table I, and any statistics package
        (0, 50, 0.0, 0.0713),
        (25, 50, 0.3664, 0.6336),
        (50, 50, 0.9287, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe 1998, example (b) 81/263: 0.2553 to 0.3662
        (15, 148, 0.0624, 0.1605),  # Newcombe 1998, example (c) 15/148: 0.0624 to 0.1605
    ],
)
def test_wilson_published_values(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_narrows_with_n_and_contains_p():
    widths = []
    for n in (10, 100, 1000):
        lo, hi = wilson_interval(n // 2, n)
        assert lo < 0.5 < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_z_value():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.99) == pytest.approx(2.575829, abs=1e-6)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan"), True])
def test_bad_confidence(bad):
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence=bad)


def test_bad_counts():
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError, match="n="):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="ci_resamples"):
        bootstrap_ppl_interval([1.0], [1], resamples=0)


def test_bootstrap_identical_documents_zero_width():
    lo, hi = bootstrap_ppl_interval([200.0] * 8, [100] * 8)
    assert lo == hi == pytest.approx(math.exp(2.0))


def test_bootstrap_contains_estimate_and_is_seeded():
    nll = [150.0, 300.0, 210.0, 90.0, 400.0, 260.0]
    tok = [100, 100, 100, 50, 150, 120]
    point = math.exp(sum(nll) / sum(tok))
    lo, hi = bootstrap_ppl_interval(nll, tok, seed=3)
    assert lo < point < hi
    assert (lo, hi) == bootstrap_ppl_interval(nll, tok, seed=3)
    assert (lo, hi) != bootstrap_ppl_interval(nll, tok, seed=4)
    # more confidence, wider interval
    lo99, hi99 = bootstrap_ppl_interval(nll, tok, seed=3, confidence=0.99)
    assert lo99 <= lo and hi99 >= hi


def test_paired_ratio_with_itself_is_exactly_one():
    nll = [150.0, 300.0, 210.0, 90.0]
    tok = [100, 100, 100, 50]
    assert paired_ratio_interval(nll, tok, nll, tok) == (1.0, 1.0, 1.0)


def test_paired_ratio_known_constant_shift():
    # model a is worse by exactly 0.1 nats per token on every document: ratio exp(0.1), zero width
    tok = [100, 80, 120, 60]
    b = [150.0, 300.0, 210.0, 90.0]
    a = [x + 0.1 * t for x, t in zip(b, tok)]
    r, lo, hi = paired_ratio_interval(a, tok, b, tok)
    assert r == pytest.approx(math.exp(0.1)) and lo == pytest.approx(r) and hi == pytest.approx(r)


def test_paired_is_narrower_than_unpaired():
    # documents differ a lot in difficulty, the models differ a little: pairing cancels the former
    tok = [100] * 10
    b = [100.0 * (1 + i) for i in range(10)]
    a = [x * 1.05 for x in b]
    _, lo, hi = paired_ratio_interval(a, tok, b, tok)
    lo_a, hi_a = bootstrap_ppl_interval(a, tok)
    assert (hi - lo) < 0.1 * (hi_a - lo_a) / (sum(a) / 1000)
    with pytest.raises(ValueError, match="same documents"):
        paired_ratio_interval(a[:5], tok[:5], b, tok)


def test_two_sample_interval_known_ratio_and_difference():
    from cocattn.evaluate.stats import bootstrap_two_sample_interval

    assert bootstrap_two_sample_interval([300.0] * 5, [200.0] * 5) == (1.5, 1.5, 1.5)
    assert bootstrap_two_sample_interval([0.5] * 3, [0.75] * 4, "difference") == (-0.25, -0.25, -0.25)
    ratio, low, high = bootstrap_two_sample_interval([300, 320, 280, 310, 290], [200, 150, 250, 190, 210])
    assert ratio == pytest.approx(1500 / 1000) and low < ratio < high and low > 1.0
    with pytest.raises(ValueError, match="positive"):
        bootstrap_two_sample_interval([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_two_sample_interval([1.0], [1.0], "product")
