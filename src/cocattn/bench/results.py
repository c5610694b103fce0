"""A benchmark's rows as a Markdown table (ratios to a baseline kind) and as a JSON file with the
command, date, hardware and torch version."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from cocattn.bench.measure import hardware_name

__all__ = ["format_table", "write_results"]


def format_table(rows: list[dict[str, Any]], baseline: str = "rope", by: str = "length") -> str:
    """Markdown table with each kind's time and memory, and ratios to ``baseline``.

    Args:
        rows: the rows of :func:`~cocattn.bench.attention.bench_attention` (one per kind and
            length) or of :func:`~cocattn.bench.train.bench_train` (one per kind).
        baseline: the kind the ratios divide by.
        by: the rows' key of an attention table's lines.

    Returns:
        str: attention rows: one line per ``by`` value, one column per kind (ms, MiB, ops and
        their ratios; a failed case shows its status); training rows: one line per kind.
        ``"(no results)"`` for no rows.
    """
    if not rows:
        return "(no results)"
    if "tokens_per_s" in rows[0]:
        base = next((r for r in rows if r["kind"] == baseline), None)
        return _train_table(rows, base, baseline)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    lengths = sorted({r[by] for r in rows})
    cell = {(r["kind"], r[by]): r for r in rows}
    with_ops = any(r.get("ops") is not None for r in rows)
    unit = " / ops" if with_ops else ""
    head = "| N | " + " | ".join(f"{k} ms (×{baseline}) / MiB (×){unit}" for k in kinds) + " |"
    lines = [head, "|" + "---|" * (len(kinds) + 1)]
    for n in lengths:
        base = cell.get((baseline, n))
        parts = []
        for k in kinds:
            r = cell.get((k, n))
            if r is None or r["ms"] is None:
                parts.append(r["status"] if r else "–")
                continue
            tr = r["ms"] / base["ms"] if base and base["ms"] else math.nan
            mr = (
                r["peak_mib"] / base["peak_mib"]
                if base and base.get("peak_mib") and r["peak_mib"] is not None
                else math.nan
            )
            mem = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f} (×{mr:.2f})"
            ops = "" if not with_ops else f" / {'–' if r.get('ops') is None else r['ops']}"
            parts.append(f"{r['ms']:.1f} (×{tr:.2f}) / {mem}{ops}")
        lines.append(f"| {n} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def _train_table(rows: list[dict[str, Any]], base: dict[str, Any] | None, baseline: str) -> str:
    lines = [
        f"| kind | ms/step | tokens/s | × {baseline} tokens/s | GFLOP/s (of matmul) | faults/step | system time | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["tokens_per_s"] / base["tokens_per_s"] if base else float("nan")
        peak = "–" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        flops = f"{r['flops_per_s'] / 1e9:.1f} ({r['matmul_fraction']:.0%})" if "flops_per_s" in r else "–"
        faults = f"{r['page_faults_per_step']:,.0f}" if "page_faults_per_step" in r else "–"
        system = f"{r['system_time_share']:.1%}" if "system_time_share" in r else "–"
        lines.append(
            f"| {r['kind']} | {r['ms_per_step']:.1f} | {r['tokens_per_s']:.0f} | {ratio:.2f} | {flops} | {faults} | "
            f"{system} | {peak} |"
        )
    return "\n".join(lines)


def write_results(path: str | Path, kind: str, rows: list[dict[str, Any]], command: str) -> None:
    """Write ``{"benchmark": kind, "command", "date", "hardware", "torch", "results": rows}`` to
    ``path`` as JSON (atomically), creating its parent directory.

    Args:
        path: the JSON file (``--out``; checked writable before the benchmark ran).
        kind: ``"attention"`` or ``"train"``.
        rows: the benchmark's rows; the first one's ``device`` names the hardware.
        command: the command line that produced them.
    """
    from cocattn.files import write_json

    device = rows[0].get("device", "cpu") if rows else "cpu"
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # `--out newdir/x.json` (checked writable up front)
    write_json(
        Path(path),
        {
            "benchmark": kind,
            "command": command,
            "date": time.strftime("%Y-%m-%d"),
            "hardware": hardware_name(device),
            "torch": torch.__version__,
            "results": rows,
        },
    )
