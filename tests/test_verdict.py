"""The verdict is generated from the result JSON: `cocattn report` (a new process) reads the files the
evaluators wrote, and editing a number in them changes the sentence it prints."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cocattn.cli import main
from cocattn.evaluate.passkey import evaluate_passkey
from cocattn.evaluate.perplexity import evaluate_perplexity
from cocattn.evaluate.results import write_results
from cocattn.report.verdict import change_words, ratio_words
from helpers.eval_models import gpt, text

LENGTHS = [32, 64, 128]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Perplexity of a RoPE and a CoCA model (named as `cocattn reproduce` names them) on the same 8
    documents, and RoPE's passkey record, as JSON files written by the evaluators."""
    out = tmp_path_factory.mktemp("verdict") / "results"
    docs = [text(200, seed=s) for s in range(8)]
    for kind in ("rope", "coca"):
        lm = gpt(kind, training_length=32)
        lm.name = kind
        write_results(out / f"ppl-{kind}-plain.json", evaluate_perplexity(lm, docs, LENGTHS, progress=False))
        if kind == "rope":
            write_results(
                out / "passkey-rope-plain.json",
                evaluate_passkey(lm, [200, 256], cases=6, max_new_tokens=1, progress=False),
            )
    return out


def report(source: Path, *args: str, new_process: bool = False) -> tuple[int, str, str]:
    """`cocattn report SOURCE ARGS` (in a new process, or through the CLI's main function to save
    the start-up time): (exit code, report.md or '', stderr)."""
    if new_process:
        done = subprocess.run(
            [sys.executable, "-m", "cocattn", "report", str(source), *args], capture_output=True, text=True, timeout=600
        )
        code, err = done.returncode, done.stderr
    else:
        buffer = io.StringIO()
        with contextlib.redirect_stderr(buffer):
            code = main(["report", str(source), *args])
        err = buffer.getvalue()
    path = source / "report.md"
    return code, path.read_text() if path.is_file() else "", err


def verdict(md: str) -> str:
    start = md.index("## Verdict")
    return md[start : md.index("\n## ", start + 1)]


def set_nll(path: Path, length: int, nll_sums: list[float]) -> None:
    """Replace the per-document NLL sums at one length and the perplexity that follows from them."""
    record = json.loads(path.read_text())
    j = record["lengths"].index(length)
    record["details"]["per_document"]["nll_sum"][j] = nll_sums
    record["values"][j] = math.exp(math.fsum(nll_sums) / record["counts"][j])
    path.write_text(json.dumps(record))


def nll(path: Path, length: int) -> list[float]:
    record = json.loads(path.read_text())
    return record["details"]["per_document"]["nll_sum"][record["lengths"].index(length)]


def test_verdict_sentences_follow_the_numbers_in_the_json(results, tmp_path):
    """Guarantee: the verdict's sentences are computed from the JSON: making CoCA's documents
    clearly easier at 4× turns the sentence into "lower than RoPE's"; giving CoCA RoPE's
    numbers with noise on two documents turns it into "not distinguishable"; RoPE's own
    degradation follows its numbers the same way."""
    work = tmp_path / "results"
    shutil.copytree(results, work)
    rope, coca = work / "ppl-rope-plain.json", work / "ppl-coca-plain.json"

    set_nll(coca, 128, [x * 0.9 for x in nll(rope, 128)])  # every document 10% fewer nats than RoPE's
    code, md, err = report(work, new_process=True)
    assert code == 0, err
    v = verdict(md)
    assert "At 4× the training length (128 tokens), CoCA-Slack's perplexity is" in v
    line = next(s for s in v.splitlines() if "CoCA-Slack's perplexity" in s)
    assert ", paired bootstrap over 8 documents): lower than RoPE's." in line
    ratio = float(line.split("perplexity is ")[1].split("×")[0])
    tokens = json.loads(rope.read_text())["counts"][2]
    assert ratio == pytest.approx(math.exp(-0.1 * math.fsum(nll(rope, 128)) / tokens), abs=0.006)

    noisy = nll(rope, 128)
    noisy[0] *= 1.05
    noisy[1] *= 0.95
    set_nll(coca, 128, noisy)
    code, md, err = report(work)
    line = next(s for s in verdict(md).splitlines() if "CoCA-Slack's perplexity" in s)
    assert code == 0 and "not distinguishable from RoPE's at this sample size" in line.split("At 1×")[0]

    set_nll(rope, 128, [x * 1.2 for x in nll(rope, 32)])  # RoPE's documents 20% more nats at 4× than at 1×
    code, md, _ = report(work)
    line = next(s for s in verdict(md).splitlines() if s.startswith("- RoPE without scaling: perplexity"))
    assert line.endswith("(paired over 8 documents): it degrades.")
    set_nll(rope, 128, [x * 0.8 for x in nll(rope, 32)])
    code, md, _ = report(work)
    line = next(s for s in verdict(md).splitlines() if s.startswith("- RoPE without scaling: perplexity"))
    assert line.endswith("it improves.")


def test_verdict_states_passkey_with_wilson_intervals(results, tmp_path):
    work = tmp_path / "results"
    shutil.copytree(results, work)
    code, md, _ = report(work)
    line = next(s for s in verdict(md).splitlines() if s.startswith("- RoPE without scaling: 0"))
    record = json.loads((work / "passkey-rope-plain.json").read_text())
    k = round(record["values"][1] * 6)
    low, high = record["ci95"][1]
    assert f"{record['values'][1]:.2f} [{low:.2f}–{high:.2f}] at 8× ({k} of 6)" in line


def test_verdict_at_another_confidence_level(results, tmp_path):
    """Guarantee: `cocattn report --confidence 0.8` recomputes every interval at 80% from the
    stored data, and says so."""
    work = tmp_path / "results"
    shutil.copytree(results, work)
    code, md80, err = report(work, "--confidence", "0.8", "--ci-resamples", "500")
    assert code == 0, err
    assert "80% paired bootstrap" in md80 and "(500 resamples)" in md80 and "80% interval" in md80
    code, md95, _ = report(work)
    assert "95% paired bootstrap" in md95 and "(2,000 resamples)" in md95


@pytest.mark.parametrize(
    "args, match",
    [
        (["--ci-resamples", "0"], "--ci-resamples=0 is not valid"),
        (["--confidence", "1.5"], "--confidence=1.5 is not valid: expected a number strictly between 0 and 1"),
        (["--confidence", "0"], "--confidence=0.0 is not valid"),
    ],
)
def test_report_rejects_bad_interval_options(results, tmp_path, args, match):
    code, _, err = report(results, "--out", str(tmp_path / "out"), *args)
    assert code == 2 and match in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "low, high, words",
    [
        (0.77, 0.85, "lower than RoPE's"),
        (1.01, 1.2, "higher than RoPE's"),
        (0.95, 1.02, "not distinguishable from RoPE's at this sample size"),
        (1.0, 1.0, "not distinguishable from RoPE's at this sample size"),
    ],
)
def test_ratio_words_follow_the_interval_only(low, high, words):
    assert ratio_words(low, high, "RoPE") == words


def test_change_words():
    assert change_words(1.38, 1.52) == "it degrades"
    assert change_words(0.8, 0.9) == "it improves"
    assert change_words(0.99, 1.01) == "no change distinguishable at this sample size"


def test_verdict_gates_passkey_on_in_window_retrieval(results, tmp_path):
    """A model below 0.9 at 1x is named as not retrieving (with the measured reason for CoCA);
    editing the record's accuracy to 1.0 moves it to the models that retrieve."""
    work = tmp_path / "results"
    shutil.copytree(results, work)
    rope = json.loads((work / "passkey-rope-plain.json").read_text())
    for value, name, attention in ((0.0, "rope", "rope"), (0.0, "coca", "coca")):
        record = dict(rope, model=name, attention=attention, values=[value] * len(rope["values"]))
        record["details"] = dict(rope["details"], cases=None)
        (work / f"passkey-{name}-plain.json").write_text(json.dumps(record))
    code, md, err = report(work, new_process=True)
    assert code == 0, err
    text = verdict(md)
    assert "- Retrieving in-window (≥ 0.90 at 1×, no scaling): no model." in text
    coca = next(s for s in text.splitlines() if s.startswith("- CoCA-Slack does not retrieve in-window (0.00"))
    assert "Measured reason, for CoCA" in coca and "optimisation, not capacity" in coca
    rope_line = next(s for s in text.splitlines() if s.startswith("- RoPE does not retrieve in-window (0.00"))
    assert "Measured reason" not in rope_line
    record = json.loads((work / "passkey-rope-plain.json").read_text())
    record["values"] = [1.0] * len(record["values"])
    (work / "passkey-rope-plain.json").write_text(json.dumps(record))
    _, md, _ = report(work)
    assert "- Retrieving in-window (≥ 0.90 at 1×, no scaling): RoPE." in verdict(md)
