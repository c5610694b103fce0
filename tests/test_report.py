"""The report is rebuilt from result JSON alone: tables hold the stored values, plots are drawn."""

from __future__ import annotations

import pytest

from cocattn.cli import main
from cocattn.evaluate.passkey import evaluate_passkey
from cocattn.evaluate.perplexity import evaluate_perplexity
from cocattn.evaluate.results import read_results, write_results
from cocattn.report import markdown_table
from test_eval_fixtures import gpt, text


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    lm = gpt("rope", training_length=32)
    docs = [text(200, seed=s) for s in range(2)]
    write_results(out / "ppl.json", [evaluate_perplexity(lm, docs, [32, 64], progress=False),
                                     evaluate_perplexity(lm, docs, [32, 64], scaling={"rope_type": "dynamic", "factor": 4.0},
                                                         progress=False)])
    write_results(out / "sub" / "passkey.json", evaluate_passkey(lm, [200, 230], cases=4, max_new_tokens=1, progress=False))
    (out / "not-a-result.json").write_text('{"some": "config"}')
    return out


def test_report_regenerates_from_json_alone(results_dir, tmp_path):
    assert main(["report", str(results_dir), "--out", str(tmp_path)]) == 0
    report = (tmp_path / "report.md").read_text()
    records = read_results(results_dir)
    assert len(records) == 3
    for r in records:
        if r["metric"] == "ppl":
            row = next(line for line in report.splitlines() if line.startswith(f"| {r['model']} + {r['scaling_name']} |"))
            assert all(f"{v:.2f}" in row for v in r["values"])
    for name in ("ppl_vs_length.png", "passkey_vs_length.png", "passkey_depth_tiny-rope-none.png", "results.csv"):
        assert (tmp_path / name).stat().st_size > 100
    assert "## Passkey retrieval" in report and "| 0-25% |" in report
    # again in place: the same report
    assert main(["report", str(results_dir), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.md").read_text() == report


def test_report_without_results_is_an_error(tmp_path):
    assert main(["report", str(tmp_path)]) == 2


def test_markdown_table_layout():
    table = markdown_table([("a + none", {512: 19.66, 1024: None}), ("b + dynamic x4", {1024: 22.3})], "ppl")
    assert table.splitlines() == ["| model + scaling | 512 | 1K |", "|---|---|---|",
                                  "| a + none | 19.66 | – |", "| b + dynamic x4 | – | 22.30 |"]
