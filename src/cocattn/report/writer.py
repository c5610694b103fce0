"""``write_report``: report.md (the verdict, the models, then :data:`~cocattn.report.sections.SECTIONS`),
its PNG plots and results.csv, from result JSON alone. The same JSON gives the same files, byte for
byte; when several records share (model, scaling, metric, task), the newest (``created``) wins."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence, cast

from cocattn.evaluate.intervals import ci_options_of
from cocattn.evaluate.results import read_results, record_sort_key, results_csv
from cocattn.files import write_text
from cocattn.report.sections import SECTIONS, ReportContext, Section

__all__ = ["write_report"]


def _latest(records: Iterable[dict]) -> list[dict]:
    chosen: dict[tuple, dict] = {}
    for r in sorted(records, key=lambda r: r.get("created", "")):
        chosen[(r["model"], r.get("scaling_name", "none"), r["metric"], r.get("task"))] = r
    return sorted(chosen.values(), key=lambda r: (record_sort_key(r), r["metric"], r.get("task") or ""))


def write_report(
    source: str | Path | Iterable[str | Path] | Sequence[dict],
    out_dir: str | Path,
    *,
    title: str = "cocattn evaluation report",
    notes: Sequence[str] = (),
    confidence: float | None = None,
    resamples: int | None = None,
    sections: Sequence[Section] = SECTIONS,
) -> Path:
    """Write ``report.md``, the PNG plots and ``results.csv`` into ``out_dir``; returns report.md.

    ``source`` is result files / directories, or records already loaded. ``notes`` are bullet
    points put after the verdict (e.g. deviations from the paper's protocol). ``confidence`` and
    ``resamples``: the intervals' level and bootstrap resamples (default: those the records were
    evaluated with, else 0.95 and 2000).
    """
    from cocattn.report.verdict import verdict_section

    if isinstance(source, (list, tuple)) and source and isinstance(source[0], dict):
        records = list(source)
    else:
        records = read_results(cast("str | Path | Iterable[str | Path]", source))  # not loaded records: paths
    if not records:
        raise ValueError(f"no cocattn result JSON found in {source}")
    records = _latest(records)
    confidence, resamples = ci_options_of(records, confidence, resamples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(out, confidence, resamples)

    md = [f"# {title}", ""]
    md += verdict_section(records, confidence, resamples)
    models = sorted(
        {(r["model"], r.get("kind", "?"), r.get("attention", "?"), r.get("training_length")) for r in records}, key=str
    )
    md.append(
        "Models: "
        + "; ".join(f"`{m}` ({kind}, attention {att}, training length {l0})" for m, kind, att, l0 in models)
        + "."
    )
    md.append("")
    for note in notes:
        md.append(f"- {note}")
    if notes:
        md.append("")
    for section in sections:
        md += section(records, ctx)
    write_text(out / "results.csv", results_csv(records))
    path = out / "report.md"
    write_text(path, "\n".join(md).rstrip() + "\n")
    return path
