"""Markdown tables and matplotlib plots from evaluation result JSON (:mod:`cocattn.evaluate.results`).

``write_report(source, out_dir)`` reads every result record under ``source`` (files or
directories) and writes into ``out_dir``:

- ``report.md``: perplexity, passkey accuracy / exact match / key log-probability, accuracy by depth
  and inside vs beyond the training window; rows are model + scaling, columns are lengths;
- ``ppl_vs_length.png`` (log y), ``passkey_vs_length.png`` and one ``passkey_depth_<row>.png``
  heatmap (depth bucket × length) per passkey row;
- ``results.csv``: every record as one row.

It needs nothing but the JSON, so ``cocattn report DIR`` redraws a report without rerunning
anything. When several records share (model, scaling, metric), the newest (``created``) wins.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from cocattn.evaluate.results import read_results, results_csv
from cocattn.io import write_text
from cocattn.plotting import pyplot, save_figure

__all__ = ["write_report", "markdown_table", "plot_metric_vs_length", "plot_depth_heatmap"]

DEPTH_BUCKETS = ("0-25%", "25-50%", "50-75%", "75-100%")


def _label(r: dict) -> str:
    return f"{r['model']} + {r.get('scaling_name', 'none')}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "row"


def _fmt(value: Any, metric: str) -> str:
    if value is None:
        return "–"
    if metric == "ppl":
        return f"{value:.2f}" if value < 1000 else f"{value:.0f}"
    if metric == "logprob":
        return f"{value:.2f}"
    return f"{value:.2f}"


def _length_label(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 and n % 1024 == 0 else str(n)


def markdown_table(rows: Sequence[tuple[str, dict[int, Any]]], metric: str, first: str = "model + scaling") -> str:
    """A Markdown table: one row per ``(label, {length: value})``, one column per length."""
    lengths = sorted({n for _, values in rows for n in values})
    lines = ["| " + " | ".join([first, *map(_length_label, lengths)]) + " |",
             "|" + "---|" * (len(lengths) + 1)]
    for label, values in rows:
        lines.append("| " + " | ".join([label, *(_fmt(values.get(n), metric) for n in lengths)]) + " |")
    return "\n".join(lines)


def _latest(records: Iterable[dict]) -> list[dict]:
    chosen: dict[tuple, dict] = {}
    for r in sorted(records, key=lambda r: r.get("created", "")):
        chosen[(r["model"], r.get("scaling_name", "none"), r["metric"], r.get("task"))] = r
    return sorted(chosen.values(), key=lambda r: (r["model"], r.get("scaling_name", "none") != "none", r.get("scaling_name", "")))


def plot_metric_vs_length(records: Sequence[dict], path: str | Path, metric: str) -> Path:
    """Perplexity (log y) or passkey accuracy against length (log x), one line per record."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in records:
        points = [(n, v) for n, v in zip(r["lengths"], r["values"]) if v is not None]
        if not points:
            continue
        xs, ys = zip(*points)
        style = "--" if r.get("scaling_name", "none") != "none" else "-"
        ax.plot(xs, ys, style, marker="o", label=_label(r))
    ax.set_xscale("log", base=2)
    lengths = sorted({n for r in records for n in r["lengths"]})
    ax.set_xticks(lengths, [_length_label(n) for n in lengths])
    ax.set_xlabel("context length (tokens)")
    if metric == "ppl":
        ax.set_yscale("log")
        ax.set_ylabel("perplexity (sliding window)")
        ax.set_title("Perplexity against context length")
    else:
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("passkey accuracy")
        ax.set_title("Passkey retrieval against context length")
    train = sorted({r.get("training_length") for r in records if r.get("training_length")})
    for t in train:
        ax.axvline(t, color="grey", linewidth=0.8, linestyle=":")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_depth_heatmap(record: dict, path: str | Path) -> Path:
    """Passkey accuracy by depth bucket (rows) × length (columns) for one record."""
    plt = pyplot()
    import numpy as np

    by_depth = record["details"]["by_depth"]
    grid = np.array([[np.nan if v is None else v for v in by_depth[b]] for b in DEPTH_BUCKETS], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(record["lengths"]), 3.2))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(record["lengths"])), [_length_label(n) for n in record["lengths"]])
    ax.set_yticks(range(len(DEPTH_BUCKETS)), DEPTH_BUCKETS)
    ax.set_xlabel("context length")
    ax.set_ylabel("key depth")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] < 0.5 else "black")
    ax.set_title(f"Passkey accuracy by depth: {_label(record)}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def _settings_line(records: Sequence[dict]) -> str:
    keys = sorted({k for r in records for k in r.get("settings", {})})
    parts = []
    for k in keys:
        values = sorted({str(r["settings"].get(k)) for r in records if k in r.get("settings", {})})
        parts.append(f"{k} = {', '.join(values)}")
    return "; ".join(parts)


def write_report(source: str | Path | Iterable[str | Path] | Sequence[dict], out_dir: str | Path, *,
                 title: str = "cocattn evaluation report", notes: Sequence[str] = ()) -> Path:
    """Write ``report.md``, the PNG plots and ``results.csv`` into ``out_dir``; returns report.md.

    ``source`` is result files / directories, or records already loaded. ``notes`` are bullet
    points put at the top (e.g. deviations from the paper's protocol).
    """
    if isinstance(source, (list, tuple)) and source and isinstance(source[0], dict):
        records = list(source)
    else:
        records = read_results(source)
    if not records:
        raise ValueError(f"no cocattn result JSON found in {source}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = _latest(records)
    ppl = [r for r in records if r["metric"] == "ppl"]
    passkey = [r for r in records if r["metric"] == "passkey"]

    md = [f"# {title}", ""]
    models = sorted({(r["model"], r.get("kind", "?"), r.get("attention", "?"), r.get("training_length")) for r in records},
                    key=str)
    md.append("Models: " + "; ".join(f"`{m}` ({kind}, attention {att}, training length {l0})" for m, kind, att, l0 in models) + ".")
    md.append("")
    for note in notes:
        md.append(f"- {note}")
    if notes:
        md.append("")

    if ppl:
        plot_metric_vs_length(ppl, out / "ppl_vs_length.png", "ppl")
        md += ["## Perplexity (sliding window, token-weighted)", "",
               markdown_table([(_label(r), dict(zip(r["lengths"], r["values"]))) for r in ppl], "ppl"), "",
               f"Settings: {_settings_line(ppl)}. Tokens scored per length: "
               + ", ".join(sorted({str(c) for r in ppl for c in r.get("counts", []) if c})) + ".", "",
               "![perplexity against length](ppl_vs_length.png)", ""]
    if passkey:
        plot_metric_vs_length(passkey, out / "passkey_vs_length.png", "passkey")
        md += ["## Passkey retrieval", "",
               "Accuracy (the key appears in the greedy output):", "",
               markdown_table([(_label(r), dict(zip(r["lengths"], r["values"]))) for r in passkey], "acc"), "",
               "Exact match (the first number generated is the key):", "",
               markdown_table([(_label(r), dict(zip(r["lengths"], r["details"]["exact"]))) for r in passkey], "acc"), "",
               "Mean log-probability of the key's tokens given the prompt (higher is better):", "",
               markdown_table([(_label(r), dict(zip(r["lengths"], r["details"]["logprob"]))) for r in passkey], "logprob"), "",
               "Accuracy when the key lies within the last training-length tokens / before them:", "",
               markdown_table([(f"{_label(r)} ({part})", dict(zip(r["lengths"], r["details"][key])))
                               for r in passkey for part, key in (("within", "within_training"), ("beyond", "beyond_training"))], "acc"), "",
               f"Settings: {_settings_line(passkey)}. Generation: "
               + "; ".join(sorted({str(r['details'].get('generation')) for r in passkey})) + ".", "",
               "![passkey accuracy against length](passkey_vs_length.png)", "",
               "### Accuracy by depth of the key", ""]
        for r in passkey:
            name = f"passkey_depth_{_slug(_label(r))}.png"
            plot_depth_heatmap(r, out / name)
            rows = [(b, dict(zip(r["lengths"], r["details"]["by_depth"][b]))) for b in DEPTH_BUCKETS]
            md += [f"**{_label(r)}**", "", markdown_table(rows, "acc", first="depth"), "", f"![depth heatmap]({name})", ""]
    from cocattn.retrieval_report import retrieval_section

    md += retrieval_section(records, out)
    write_text(out / "results.csv", results_csv(records))
    path = out / "report.md"
    write_text(path, "\n".join(md).rstrip() + "\n")
    return path
