"""Result records carry their raw data and intervals: per-document NLL sums that add up exactly to
the pooled perplexity, a document bootstrap per length, Wilson intervals for passkey accuracy."""

from __future__ import annotations

import copy
import json
import math

import pytest

from cocattn.evaluate.intervals import (
    attach_intervals,
    check_ci_options,
    document_id,
    paired_ratio,
    passkey_intervals,
    ppl_intervals,
)
from cocattn.evaluate.passkey import evaluate_passkey
from cocattn.evaluate.perplexity import document_nll, evaluate_perplexity
from cocattn.evaluate.results import read_results, write_results
from cocattn.evaluate.stats import bootstrap_ppl_interval, wilson_interval
from helpers.eval_models import gpt, text


@pytest.fixture(scope="module")
def lm():
    return gpt("rope", training_length=32)


@pytest.fixture(scope="module")
def ppl_record(lm, tmp_path_factory):
    """Documents of different lengths (one shorter than the longest window), windows batched by
    tokens (so windows of one document are scored out of order), a skipped length; written to
    JSON by the evaluator's writer and read back."""
    docs = [text(40, seed=1), text(300, seed=2), text(120, seed=3), "", text(250, seed=4)]
    with pytest.warns(UserWarning, match="skipping"):
        record = evaluate_perplexity(
            lm, docs, [32, 64, 128, 4096], stride=16, max_tokens=200, batch_tokens=150, too_long="skip", progress=False
        )
    path = write_results(tmp_path_factory.mktemp("ppl") / "ppl.json", record)
    return read_results(path)[0], docs


def test_per_document_sums_add_up_exactly_to_the_pooled_totals(ppl_record):
    """Guarantee: the per-document NLL sums and token counts stored in the JSON add up exactly (not
    approximately) to the pooled totals behind each perplexity."""
    record, _ = ppl_record
    per_doc = record["details"]["per_document"]
    assert len(per_doc["ids"]) == 4 and record["details"]["documents"] == 4  # the empty document is not scored
    for j, n in enumerate(record["lengths"]):
        if n == 4096:  # skipped: longer than every document
            assert record["values"][j] is None and per_doc["nll_sum"][j] is None and record["ci95"][j] is None
            continue
        assert sum(per_doc["tokens"][j]) == record["counts"][j]
        total = math.fsum(per_doc["nll_sum"][j])
        assert total / record["counts"][j] == record["details"]["nll"][j]
        assert math.exp(total / record["counts"][j]) == record["values"][j]


def test_per_document_sums_are_each_documents_own_nll(lm, ppl_record):
    """Guarantee: each per-document sum is that document's NLL scored alone, one window at a time,
    and its id is its position plus a hash of the tokens scored."""
    record, docs = ppl_record
    per_doc = record["details"]["per_document"]
    kept = [(i, d) for i, d in enumerate(docs) if len(lm.begin_ids + lm.encode(d)) >= 2]
    for k, (i, doc) in enumerate(kept):
        tokens = (lm.begin_ids + lm.encode(doc))[:200]
        assert per_doc["ids"][k] == document_id(i, tokens)
        for j, n in enumerate(record["lengths"][:3]):
            nll, count = document_nll(lm, tokens, n, 16)
            assert per_doc["tokens"][j][k] == count
            assert per_doc["nll_sum"][j][k] == pytest.approx(nll, rel=1e-6)  # batched vs alone: float noise only
    assert [x.split(":")[0] for x in per_doc["ids"]] == ["0", "1", "2", "4"]
    assert document_id(0, [1, 2, 3]) != document_id(0, [1, 2, 4]) != document_id(1, [1, 2, 4])


def test_ci95_is_the_document_bootstrap_at_every_length(ppl_record):
    record, _ = ppl_record
    per_doc = record["details"]["per_document"]
    assert record["settings"]["confidence"] == 0.95 and record["settings"]["ci_resamples"] == 2000
    for j in range(3):
        low, high = record["ci95"][j]
        assert [low, high] == list(bootstrap_ppl_interval(per_doc["nll_sum"][j], per_doc["tokens"][j], seed=0))
        assert low < record["values"][j] < high
    # recomputed from the JSON at another level: narrower at 80% than at 95%
    narrow, _ = ppl_intervals(record, 0.8, 500)
    assert all(n[1] - n[0] < w[1] - w[0] for n, w in zip(narrow[:3], record["ci95"][:3]))


def test_paired_ratio_of_a_record_with_itself_and_across_documents(ppl_record, lm):
    record, docs = ppl_record
    same, _ = paired_ratio(record, 64, record, 64)
    assert (same["ratio"], same["low"], same["high"], same["documents"]) == (1.0, 1.0, 1.0, 4)
    longer, _ = paired_ratio(record, 128, record, 32)
    assert longer["ratio"] == pytest.approx(record["values"][2] / record["values"][0], rel=1e-12)
    assert longer["low"] <= longer["ratio"] <= longer["high"]
    other = evaluate_perplexity(lm, docs[:3], [32, 64], stride=16, max_tokens=200, progress=False)
    found, reason = paired_ratio(record, 64, other, 64)
    assert found is None and "different documents" in reason
    found, reason = paired_ratio(record, 4096, record, 32)
    assert found is None and "no value at 4096" in reason


def test_record_without_per_document_data_has_no_interval(ppl_record):
    """Guarantee: an old-schema record (no per-document sums) gets no interval and a reason,
    never an estimated one."""
    old = copy.deepcopy(ppl_record[0])
    del old["details"]["per_document"], old["ci95"]
    found, reason = ppl_intervals(old)
    assert found is None and "no per-document" in reason
    assert attach_intervals(old)["ci95"] is None
    broken = copy.deepcopy(ppl_record[0])
    broken["details"]["per_document"]["nll_sum"][0].pop()
    assert ppl_intervals(broken)[0] is None and "malformed" in ppl_intervals(broken)[1]


def test_passkey_records_carry_wilson_intervals():
    """Guarantee: passkey accuracy carries the Wilson interval of correct cases out of cases, per
    length and for each split; changing which cases are correct changes the intervals."""
    lm = gpt("rope", training_length=150)
    record = evaluate_passkey(lm, [200, 300], cases=8, max_new_tokens=1, progress=False)
    record = json.loads(json.dumps(record))
    for j, rows in enumerate(record["details"]["cases"]):
        k = sum(r["correct"] for r in rows)
        assert record["ci95"][j] == list(wilson_interval(k, len(rows)))
    assert record["settings"]["confidence"] == 0.95 and record["settings"]["ci_method"] == "wilson"
    assert set(record["details"]["ci95"]["by_depth"]) == {"0-25%", "25-50%", "50-75%", "75-100%"}
    # mark the within-window cases at 300 tokens correct: the intervals follow the counts
    rows = record["details"]["cases"][1]
    for r in rows:
        r["correct"] = r["within_training"]
    found = passkey_intervals(record, 0.95)
    k = sum(r["within_training"] for r in rows)
    assert 0 < k < 8
    assert found["values"][1] == wilson_interval(k, 8) != tuple(record["ci95"][1])
    assert found["within_training"][1] == wilson_interval(k, k) and found["within_training"][1][1] == 1
    assert found["beyond_training"][1] == wilson_interval(0, 8 - k) and found["beyond_training"][1][0] == 0
    # without per-case records: accuracy × cases is an exact count; the splits have none
    record["values"][1] = k / 8
    del record["details"]["cases"]
    bare = passkey_intervals(record, 0.95)
    assert bare["values"][1] == wilson_interval(k, 8) and bare["exact"] == [None, None]


@pytest.mark.parametrize(
    "confidence, resamples, match",
    [
        (1.0, 2000, "confidence=1.0"),
        (0.0, 2000, "confidence=0.0"),
        (0.95, 0, "ci_resamples=0"),
        (0.95, 2.5, "ci_resamples=2.5"),
        ("0.9", 10, "confidence='0.9'"),
    ],
)
def test_bad_ci_options_name_the_argument(lm, confidence, resamples, match):
    with pytest.raises(ValueError, match=match):
        check_ci_options(confidence, resamples)
    with pytest.raises(ValueError, match=match):
        evaluate_perplexity(lm, [text(100)], [32], confidence=confidence, ci_resamples=resamples, progress=False)
