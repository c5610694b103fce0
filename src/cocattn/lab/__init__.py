"""The retrieval lab: small GPTs of any attention kind trained on synthetic retrieval tasks
(:mod:`cocattn.tasks.synthetic`) in minutes on a CPU, scored at 1-16x their training length, with
intervals over seeds. ``cocattn lab STUDY --out DIR`` is the command and :func:`run_lab` the same
call from Python; docs/LAB.md describes the studies, the parts and the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cocattn.lab.diagnostics import diagnose
from cocattn.lab.fit import Recipe, fit
from cocattn.lab.remedies import REMEDIES
from cocattn.lab.report import write_lab_report
from cocattn.lab.run import run_study
from cocattn.lab.score import model_predictions, score_predictions
from cocattn.lab.study import STUDIES, Study, make_study, parse_scaling
from cocattn.tasks.synthetic import TASKS, TaskSpec, fixed_offset_predictions, generate, make_task

__all__ = [
    "REMEDIES",
    "STUDIES",
    "TASKS",
    "diagnose",
    "Recipe",
    "Study",
    "TaskSpec",
    "fit",
    "fixed_offset_predictions",
    "generate",
    "make_study",
    "make_task",
    "model_predictions",
    "parse_scaling",
    "run_lab",
    "score_predictions",
    "write_lab_report",
]


def run_lab(
    study: str | Study, out: str | Path, jobs: int | None = None, progress: bool = True, **options: Any
) -> Path:
    """Run (or resume) a study into ``out`` and write its report; returns ``report.md``'s path.
    ``options``: :func:`make_study`'s (kinds, seeds, widths, pairs, multiples, scalings, recipe, ...)."""
    if not isinstance(study, Study):
        study = make_study(study, **options)
    run_study(study, out, jobs=jobs, progress=progress)
    return write_lab_report(out)
