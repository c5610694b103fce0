"""Attention and RoPE-anomaly analyses: the definitions hold on real rotations, and both run on
cocattn and Hugging Face models."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cocattn.evaluate.attention import analyze_attention, attention_by_distance
from cocattn.evaluate.rope_anomaly import analyze_rope, initial_angles
from cocattn.report.analysis import plot_attention, plot_rope
from cocattn.rope import apply_rope, inv_freq_and_scaling, rope_cos_sin
from helpers.eval_models import gpt, llama, text


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-math.pi + 0.05, math.pi - 0.05).filter(lambda a: abs(a) > 0.05), st.floats(0.1, 3.0), st.floats(0.1, 3.0)
)
def test_negative_initial_angle_means_score_rises_with_distance(theta, rq, rk):
    """Θ in (-π, 0): the nearest keys' RoPE score increases with distance (the paper's anomaly)."""
    d, plane = 8, 3  # one plane carries the vectors; low frequency so the first steps are small
    inv_freq, _ = inv_freq_and_scaling({"rope_type": "default", "rope_theta": 10000.0}, d)
    q, k = torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    q[plane], q[plane + d // 2] = rq * math.cos(theta), rq * math.sin(theta)
    k[plane], k[plane + d // 2] = rk, 0.0
    got = initial_angles(q.view(1, 1, d).float(), k.view(1, 1, d).float(), torch.tensor([0]), torch.tensor([0]))
    assert float(got[0, 0, plane]) == pytest.approx(theta, abs=1e-4)
    m = 10
    pos = torch.arange(m + 1, dtype=torch.float64)
    cos, sin = rope_cos_sin(pos, inv_freq)
    qr = apply_rope(q.expand(m + 1, d), cos, sin)[m]
    kr = apply_rope(k.expand(m + 1, d), cos, sin)
    scores = kr.flip(0) @ qr  # index = distance m - n
    assert (scores[1] > scores[0]) == (theta < 0)


def test_attention_by_distance_of_uniform_causal_attention():
    t = 6
    probs = torch.tril(torch.ones(t, t)) / torch.arange(1, t + 1)[:, None]
    curve = attention_by_distance(probs.expand(1, 2, t, t))
    expected = [sum(1 / (m + 1) for m in range(dist, t)) / (t - dist) for dist in range(t)]
    torch.testing.assert_close(curve, torch.tensor(expected))


@pytest.mark.parametrize(
    "make", [lambda: gpt("rope", training_length=32), lambda: llama(training_length=32)], ids=["cocattn", "hf"]
)
def test_analyses_run_on_both_model_kinds(make, tmp_path):
    lm = make()
    ids = lm.encode(text(200, seed=3))
    result = analyze_attention(lm, ids, 128, ["none", "dynamic:4"], progress=False)
    assert result["length"] == 128 and [r["scaling_name"] for r in result["runs"]] == ["none", "dynamic x4"]
    for run in result["runs"]:
        assert all(sum(layer) == pytest.approx(1, abs=1e-4) for layer in run["last_query_mean"])
        assert all(len(curve) == 128 for curve in run["by_distance"])
    assert result["runs"][0]["last_query_mean"] != result["runs"][1]["last_query_mean"]
    assert plot_attention(result, tmp_path / "a.png").stat().st_size > 10_000
    rope = analyze_rope(lm, ids, 64, pairs=2000)
    assert len(rope["layers"]) == 2
    for layer in rope["layers"]:
        assert 0.2 < layer["anomalous_share"] < 0.8  # random projections: about half
        assert layer["visible_share"] <= layer["anomalous_share"]
        assert sum(layer["histogram_by_plane"][0]) == 2000 * 4  # pairs x heads
    assert plot_rope(rope, tmp_path / "r.png").stat().st_size > 10_000


def test_rope_analysis_on_coca_reports_no_angles():
    lm = gpt("coca", training_length=32)
    rope = analyze_rope(lm, lm.encode(text(100)), 64)
    assert rope["layers"] == [] and "CoCA" in rope["note"] and len(rope["by_distance"]) == 2


def test_analysis_length_longer_than_document_is_rejected():
    lm = gpt("rope", training_length=32)
    with pytest.raises(ValueError, match="length=500"):
        analyze_attention(lm, lm.encode(text(50))[:100], 500, progress=False)
