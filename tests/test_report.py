"""The report is rebuilt from result JSON alone: tables hold the stored values and their intervals,
plots are drawn, and results from before per-document data was stored still render, with a note."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cocattn.cli import main
from cocattn.evaluate.passkey import evaluate_passkey
from cocattn.evaluate.perplexity import evaluate_perplexity
from cocattn.evaluate.results import read_results, write_results
from cocattn.report.format import format_value, markdown_table
from helpers.eval_models import gpt, text

OLD_RESULTS = Path(__file__).resolve().parent / "data" / "old-schema-results"  # from docs/results/tiny-cpu, 2026-11-26


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    lm = gpt("rope", training_length=32)
    docs = [text(200, seed=s) for s in range(2)]
    write_results(
        out / "ppl.json",
        [
            evaluate_perplexity(lm, docs, [32, 64], progress=False),
            evaluate_perplexity(lm, docs, [32, 64], scaling={"rope_type": "dynamic", "factor": 4.0}, progress=False),
        ],
    )
    write_results(
        out / "sub" / "passkey.json", evaluate_passkey(lm, [200, 230], cases=4, max_new_tokens=1, progress=False)
    )
    (out / "not-a-result.json").write_text('{"some": "config"}')
    return out


def test_report_regenerates_from_json_alone(results_dir, tmp_path):
    assert main(["report", str(results_dir), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    records = read_results(results_dir)
    assert len(records) == 3
    for r in records:  # each value with the interval its record carries
        section = report[report.index("## Perplexity" if r["metric"] == "ppl" else "## Passkey") :]
        row = next(line for line in section.splitlines() if line.startswith(f"| {r['model']} + {r['scaling_name']} |"))
        cells = row.strip("| ").split(" | ")[1:]
        assert cells == [
            format_value(v, "ppl" if r["metric"] == "ppl" else "acc", ci) for v, ci in zip(r["values"], r["ci95"])
        ]
        assert all("[" in cell for cell in cells)
    for name in ("ppl_vs_length.png", "passkey_vs_length.png", "passkey_depth.png", "results.csv"):
        assert (tmp_path / name).stat().st_size > 100
    assert "## Passkey retrieval" in report and "| 0-25% |" in report
    assert report.index("## Verdict") < report.index("## Perplexity") < report.index("## Passkey")
    assert "No intervals" not in report
    # again in place: the same report
    assert main(["report", str(results_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == report


def test_report_without_results_is_an_error(tmp_path):
    assert main(["report", str(tmp_path)]) == 2


def test_markdown_table_layout():
    table = markdown_table([("a + none", {512: 19.66, 1024: None}), ("b + dynamic x4", {1024: 22.3})], "ppl")
    assert table.splitlines() == [
        "| model + scaling | 512 | 1K |",
        "|---|---|---|",
        "| a + none | 19.7 | – |",
        "| b + dynamic x4 | – | 22.3 |",
    ]
    table = markdown_table(
        [
            ("a", {128: 183.07, 256: 5.123}, {128: (176.4, 190.2), 256: (4.9, 5.31)}),
            ("b", {128: 1234.4, 256: None}, {128: None, 256: None}),
        ],
        "ppl",
    )
    assert table.splitlines()[2:] == ["| a | 183 [176–190] | 5.12 [4.90–5.31] |", "| b | 1234 | – |"]
    assert (
        markdown_table([("a", {1: 0.94}, {1: (0.8413, 0.9837)})], "acc").splitlines()[2] == "| a | 0.94 [0.84–0.98] |"
    )


def test_old_results_without_per_document_data_render_with_a_note(tmp_path):
    """Guarantee: `cocattn report` on result JSON written before per-document sums were stored
    (tests/data/old-schema-results) renders every table and plot: perplexities without intervals and a
    note saying why, passkey accuracies with Wilson intervals from the stored cases, and a
    verdict that gives point ratios with "no interval" -- never a crash, never an invented interval."""
    old = tmp_path / "old"
    shutil.copytree(OLD_RESULTS, old)
    done = subprocess.run(
        [sys.executable, "-m", "cocattn", "report", str(old), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "> **No intervals for** any perplexity record: no per-document NLL sums" in report
    assert "no per-document NLL sums (result JSON written before they were stored)" in report
    ppl_table = report[
        report.index("## Perplexity") : report.index("In brackets")
        if "In brackets" in report
        else report.index("Settings:")
    ]
    rope = next(line for line in ppl_table.splitlines() if line.startswith("| rope + none |"))
    assert rope == "| rope + none | 166 | 165 | 172 | 179 | 183 |"  # docs/RESULTS.md: 165.74 ... 183.07
    assert "| rope + none | 0.00 [0.00–0.39] |" in report  # 0 of 6 cases: Wilson (0, 0.390)
    line = next(
        s
        for s in report.splitlines()
        if s.startswith("- *no scaling*: At 16× the training length (2,048 tokens), CoCA-Slack's")
    )
    assert line.endswith("perplexity is 1.04× RoPE's (no interval). At 1× (128 tokens): 0.998× (no interval).")
    assert (
        "> **No intervals** for any perplexity record: no per-document NLL sums (result JSON written before" in report
    )
    assert "95% interval" not in report[: report.index("## Perplexity")].split("Passkey retrieval**")[0]
    for name in ("ppl_vs_length.png", "passkey_vs_length.png", "passkey_depth.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000
    assert sorted(p.name for p in old.iterdir()) == sorted(p.name for p in OLD_RESULTS.iterdir())  # source untouched
    assert all((old / p.name).read_bytes() == p.read_bytes() for p in OLD_RESULTS.iterdir())
