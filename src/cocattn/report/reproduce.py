"""The report of a ``cocattn reproduce`` directory: ``report.md`` and plots from ``OUT/results``,
headed by the run's hardware, wall times, work rates and training results from ``OUT/reproduce.json``."""

from __future__ import annotations

import os
from pathlib import Path

from cocattn.report.writer import write_report
from cocattn.safeparse import loads_json

__all__ = ["DEVIATIONS_FILE", "write_reproduce_report", "read_json", "format_number"]

#: The run's metadata (settings, deviations from the paper, hardware, timings), beside report.md.
DEVIATIONS_FILE = "reproduce.json"


def write_reproduce_report(
    out: str | os.PathLike, *, confidence: float | None = None, resamples: int | None = None
) -> Path:
    """(Re)write ``report.md`` (the verdict first) and plots from ``OUT/results/*.json`` and
    ``OUT/reproduce.json``; ``confidence`` / ``resamples`` default to those the results carry."""
    out = Path(out)
    meta = read_json(out / DEVIATIONS_FILE) or {}
    notes = [f"Hardware: {meta['hardware']}; date {meta['date']}."] if meta.get("hardware") else []
    if meta.get("timings_s"):
        notes.append("Wall time: " + ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in meta["timings_s"].items()) + ".")
    rates = _achieved_rates(meta)
    if rates:
        notes.append(f"Work done in this invocation, counted by `cocattn reproduce --plan`: {rates}.")
    for kind, tr in (meta.get("train_results") or {}).items():
        if tr:
            notes.append(
                f"Training `{kind}`: {tr['steps']} steps, final loss {format_number(tr, 'final_loss', '.3f')}, "
                f"validation loss {format_number(tr, 'val_loss', '.3f')}, "
                f"{format_number(tr, 'tokens_per_s', ',.0f')} tokens/s, {format_number(tr, 'seconds', '.0f')} s."
            )
    notes += ["Deviation from the paper: " + n for n in meta.get("notes", [])]
    source = out / "results" if (out / "results").is_dir() else out
    return write_report(
        source,
        out,
        title=meta.get("title", "cocattn reproduce"),
        notes=notes,
        confidence=confidence,
        resamples=resamples,
    )


def format_number(record: dict, key: str, spec: str) -> str:
    """``record[key]`` formatted with ``spec``, or a dash where it is missing or null (older runs)."""
    value = record.get(key)
    return "–" if isinstance(value, bool) or not isinstance(value, (int, float)) else format(value, spec)


def _achieved_rates(meta: dict) -> str:
    """``training 42.7 PFLOP in 360 s (118 TFLOP/s), …`` for the stages this invocation ran."""
    done, timings = (meta.get("work") or {}).get("done_this_run") or {}, meta.get("timings_s") or {}
    parts = []
    for stage in ("train", "eval"):
        flops, seconds = done.get(f"{stage}_flops") or 0.0, timings.get(f"{stage}_s") or 0.0
        if flops > 0 and seconds > 0 and not (stage == "train" and done.get("train_resumed")):
            name = "training" if stage == "train" else "evaluation"
            parts.append(f"{name} {flops / 1e15:.3g} PFLOP in {seconds:.0f} s ({flops / seconds / 1e12:.3g} TFLOP/s)")
    return ", ".join(parts)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None where it is missing or unreadable."""
    try:
        return loads_json(path.read_text(), str(path))
    except (OSError, ValueError):
        return None
