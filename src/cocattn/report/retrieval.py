"""The retrieval suite's tables and plots (:mod:`cocattn.evaluate.retrieval`): what ``cocattn eval
retrieval`` prints and the retrieval section of ``cocattn report``. Per task the score with its
Wilson 95% interval by length, the aggregate over tasks, effective lengths, score-against-length
plots and depth × length heatmaps (definitions: docs/RETRIEVAL.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from cocattn.evaluate.retrieval import effective_length
from cocattn.report.format import length_label, row_label, slug
from cocattn.report.plots import pyplot, save_figure
from cocattn.tasks.depth import DEPTH_BUCKETS
from cocattn.tasks.ruler import METRIC_TEXT, SCORING, TASK_NAMES

__all__ = [
    "retrieval_records",
    "aggregate_rows",
    "effective_rows",
    "format_retrieval",
    "retrieval_section",
    "plot_task_vs_length",
    "plot_depth_heatmaps",
    "AGGREGATE_TEXT",
    "DEFAULT_RATIO",
]

DEFAULT_RATIO = 0.8
AGGREGATE_TEXT = (
    "aggregate = unweighted mean of the tasks' scores at each length (each task counts once, whatever "
    "its number of cases; RULER averages its tasks the same way), over the lengths every task has"
)


def _task_order(task: str) -> tuple[int, str]:
    return (TASK_NAMES.index(task) if task in TASK_NAMES else len(TASK_NAMES), task)


def retrieval_records(records: Iterable[dict]) -> list[dict]:
    """The retrieval records, the newest per (model, scaling, task), in a stable order."""
    chosen: dict[tuple, dict] = {}
    for r in sorted((r for r in records if r.get("metric") == "retrieval"), key=lambda r: r.get("created", "")):
        chosen[(r["model"], r.get("scaling_name", "none"), r.get("task"))] = r
    return sorted(
        chosen.values(),
        key=lambda r: (
            _task_order(r.get("task", "")),
            r["model"],
            r.get("scaling_name", "none") != "none",
            r.get("scaling_name", ""),
        ),
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if low is None else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def aggregate_rows(records: Sequence[dict]) -> list[tuple[str, list[str], dict[int, float]]]:
    """Per model + scaling: (label, tasks averaged, {length: mean score}) (see :data:`AGGREGATE_TEXT`)."""
    groups: dict[str, list[dict]] = {}
    for r in retrieval_records(records):
        groups.setdefault(row_label(r), []).append(r)
    out = []
    for label, rs in groups.items():
        common = set.intersection(*(set(n for n, v in zip(r["lengths"], r["values"]) if v is not None) for r in rs))
        means = {n: sum(dict(zip(r["lengths"], r["values"]))[n] for r in rs) / len(rs) for n in sorted(common)}
        out.append((label, [r["task"] for r in rs], means))
    return out


def _reference(record: dict, records: Sequence[dict]) -> tuple[float | None, str]:
    """The score at 1× that the threshold scales, and where it comes from."""
    l0 = record.get("training_length")
    for r in records:
        if (r["model"], r.get("task"), r.get("scaling_name", "none")) == (record["model"], record.get("task"), "none"):
            value = dict(zip(r["lengths"], r["values"])).get(l0)
            if value is not None:
                return value, "unscaled at 1×"
    value = dict(zip(record["lengths"], record["values"])).get(l0)
    return (value, "this scaling at 1×") if value is not None else (None, "no score at 1×")


def effective_rows(records: Sequence[dict], ratio: float = DEFAULT_RATIO) -> list[dict[str, Any]]:
    """One row per model, scaling and task: reference score, threshold, effective length; plus a
    row per model + scaling with task ``"all tasks"`` (the shortest of its tasks' lengths)."""
    records = retrieval_records(records)
    rows = []
    for r in records:
        reference, source = _reference(r, records)
        effective, threshold = effective_length(r["lengths"], r["details"]["ci_low"], reference, ratio)
        note = (
            "no score at 1×"
            if reference is None
            else "score 0 at 1×"
            if reference == 0
            else f"< {length_label(min(r['lengths']))}"
            if effective is None
            else ""
        )
        rows.append(
            {
                "label": row_label(r),
                "model": r["model"],
                "scaling": r.get("scaling_name", "none"),
                "task": r["task"],
                "reference": reference,
                "reference_source": source,
                "threshold": threshold,
                "effective_length": None if reference == 0 else effective,
                "note": note,
                "training_length": r.get("training_length"),
            }
        )
    by_label: dict[str, list[dict]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    for group in by_label.values():
        if len(group) > 1:
            lengths = [g["effective_length"] for g in group]
            notes = sorted({g["note"] for g in group if g["effective_length"] is None})
            rows.append(
                {
                    **group[0],
                    "task": "all tasks",
                    "reference": None,
                    "reference_source": "",
                    "threshold": None,
                    "effective_length": None if None in lengths else min(lengths),
                    "note": "; ".join(notes),
                }
            )
    return rows


def _effective_cell(row: dict) -> str:
    if row["effective_length"] is not None:
        return length_label(row["effective_length"])
    return row["note"] if row["note"].startswith("<") else f"– ({row['note']})"


def format_retrieval(records: Sequence[dict], ratio: float = DEFAULT_RATIO, heading: str = "###") -> str:
    """The Markdown tables (per task, aggregate, effective lengths) with the scoring stated."""
    records = retrieval_records(records)
    if not records:
        return ""
    parts = [f"Scoring: {SCORING}", ""]
    for task in sorted({r["task"] for r in records}, key=_task_order):
        parts += _task_section([r for r in records if r["task"] == task], task, heading)
    parts += _aggregate_section(records, heading)
    parts += _effective_section(records, ratio, heading)
    parts += _mix_section(records)
    return "\n".join(parts).rstrip() + "\n"


def _task_section(rs: Sequence[dict], task: str, heading: str) -> list[str]:
    """A task's heading, its score table by length and its truncation notes."""
    lengths = sorted({n for r in rs for n in r["lengths"]})
    metric = rs[0]["details"]["metric"]
    options = ", ".join(f"{k}={'auto' if v is None else v}" for k, v in rs[0]["settings"].get("options", {}).items())
    body = []
    for r in rs:
        d = r["details"]
        cells = {n: _cell(v, lo, hi) for n, v, lo, hi in zip(r["lengths"], r["values"], d["ci_low"], d["ci_high"])}
        body.append([row_label(r), *(cells.get(n, "–") for n in lengths)])
    return [
        f"{heading} {task} ({options}; score: {metric}, {METRIC_TEXT[metric]})",
        "",
        "Score [Wilson 95% interval] by length:",
        "",
        _table(["model + scaling", *map(length_label, lengths)], body),
        "",
        "Truncation: " + "; ".join(_truncation_note(r) for r in rs) + ".",
        "",
    ]


def _truncation_note(r: dict) -> str:
    """How many of a record's prompts fell short, outputs hit the budget, haystacks wrapped, lengths were skipped."""
    d = r["details"]
    short, trunc = sum(d["short_prompts"]), sum(d["truncated_outputs"])
    wrapped = sum(d.get("wrapped_haystacks") or [])
    return (
        f"{row_label(r)}: {sum(r['counts'])} cases, {short} prompts shorter than their length (by at most "
        f"{max(d['max_shortfall'])} tokens), {trunc} outputs stopped by the token budget before a "
        f"line break"
        + (f", {wrapped} haystacks reusing the corpus" if wrapped else "")
        + "".join(
            f"; not measured at {n} (too short: the fixed text needs more tokens)" for n in (d.get("skipped") or {})
        )
    )


def _aggregate_section(records: Sequence[dict], heading: str) -> list[str]:
    """The aggregate table (see :data:`AGGREGATE_TEXT`); [] when no model + scaling has one."""
    agg = aggregate_rows(records)
    if not agg:
        return []
    lengths = sorted({n for _, _, means in agg for n in means})
    return [
        f"{heading} Aggregate",
        "",
        AGGREGATE_TEXT + ".",
        "",
        _table(
            ["model + scaling", "tasks", *map(length_label, lengths)],
            [[label, ", ".join(tasks), *(_cell(means.get(n)) for n in lengths)] for label, tasks, means in agg],
        ),
        "",
    ]


def _effective_section(records: Sequence[dict], ratio: float, heading: str) -> list[str]:
    """The effective-length table (:func:`effective_rows`) with its definition."""
    eff = effective_rows(records, ratio)
    return [
        f"{heading} Effective length",
        "",
        f"The largest evaluated length up to which the score's lower 95% bound stays above {ratio:g} × the "
        "reference score (the same model's score on the task at its training length, unscaled when "
        'evaluated); "all tasks" = the shortest of the model\'s task lengths.',
        "",
        _table(
            ["model + scaling", "task", "reference (1×)", "threshold", "effective length"],
            [
                [
                    row["label"],
                    row["task"],
                    _cell(row["reference"]) + (f" ({row['reference_source']})" if row["reference"] is not None else ""),
                    _cell(row["threshold"]),
                    _effective_cell(row),
                ]
                for row in eff
            ],
        ),
        "",
    ]


def _mix_section(records: Sequence[dict]) -> list[str]:
    """The models' training warm-up (retrieval rows), when any record says it had one."""
    mixes = sorted({_mix_text(r.get("training_mix")) for r in records})
    if not any(mixes):
        return []
    return [
        "Training warm-up of the models: "
        + "; ".join(f"`{m}`: {_mix_text(r.get('training_mix'))}" for m, r in {r["model"]: r for r in records}.items())
        + ".",
        "",
    ]


def _mix_text(mix: dict | None) -> str:
    if not mix:
        return ""
    tasks = ", ".join(mix.get("retrieval_tasks") or ["passkey"])
    return f"{mix.get('retrieval_fraction', 0):.0%} retrieval rows ({tasks})"


def plot_task_vs_length(records: Sequence[dict], path: str | Path, task: str) -> Path:
    """A task's score against length (log x), one line per model + scaling, with Wilson intervals."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rs = [r for r in retrieval_records(records) if r["task"] == task]
    for r in rs:
        d = r["details"]
        points = [
            (n, v, lo, hi)
            for n, v, lo, hi in zip(r["lengths"], r["values"], d["ci_low"], d["ci_high"])
            if v is not None
        ]
        if not points:
            continue
        xs, ys, los, his = zip(*points)
        style = "--" if r.get("scaling_name", "none") != "none" else "-"
        ax.errorbar(
            xs,
            ys,
            yerr=[[y - lo for y, lo in zip(ys, los)], [hi - y for y, hi in zip(ys, his)]],
            fmt=style,
            marker="o",
            capsize=3,
            label=row_label(r),
        )
    lengths = sorted({n for r in rs for n in r["lengths"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [length_label(n) for n in lengths])
    for t in sorted({r["training_length"] for r in rs if r.get("training_length")}):
        ax.axvline(t, color="grey", linewidth=0.8, linestyle=":")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("context length (tokens, prompt + answer)")
    metric = rs[0]["details"]["metric"] if rs else "score"
    ax.set_ylabel(f"{task} score ({metric})")
    ax.set_title(f"{task} against context length (95% Wilson intervals)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_depth_heatmaps(records: Sequence[dict], path: str | Path) -> Path | None:
    """Score by depth bucket × length, one panel per task with needles, for the records of one
    model + scaling; None when none of them has depths."""
    import numpy as np

    rs = [r for r in retrieval_records(records) if r["details"].get("by_depth")]
    if not rs:
        return None
    plt = pyplot()
    width = max(len(r["lengths"]) for r in rs)
    fig, axes = plt.subplots(1, len(rs), figsize=(0.6 + (0.8 * width + 1.2) * len(rs), 3.2), squeeze=False)
    for index, (ax, r) in enumerate(zip(axes[0], rs)):
        by_depth = r["details"]["by_depth"]
        grid = np.array([[np.nan if v is None else v for v in by_depth[b]] for b in DEPTH_BUCKETS], dtype=float)
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(r["lengths"])), [length_label(n) for n in r["lengths"]], fontsize=7)
        ax.set_yticks(range(len(DEPTH_BUCKETS)), DEPTH_BUCKETS if index == 0 else [""] * len(DEPTH_BUCKETS), fontsize=7)
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if not np.isnan(grid[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{grid[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if grid[i, j] < 0.5 else "black",
                    )
        ax.set_title(r["task"], fontsize=8)
        ax.set_xlabel("length", fontsize=7)
    axes[0][0].set_ylabel("depth of the first required needle", fontsize=7)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.03)
    fig.suptitle(f"Retrieval score by depth: {row_label(rs[0])}", fontsize=9)
    return save_figure(fig, path, dpi=120)


def retrieval_section(records: Sequence[dict], out_dir: str | Path, ratio: float = DEFAULT_RATIO) -> list[str]:
    """Markdown lines of the report's retrieval section, writing its plots into ``out_dir``
    (``retrieval_<task>.png``, ``retrieval_depth_<model-scaling>.png``); [] without retrieval records."""
    records = retrieval_records(records)
    if not records:
        return []
    out = Path(out_dir)
    lines = [
        "## Retrieval suite (RULER-style tasks, docs/RETRIEVAL.md)",
        "",
        format_retrieval(records, ratio).rstrip(),
        "",
    ]
    for task in sorted({r["task"] for r in records}, key=_task_order):
        name = f"retrieval_{slug(task)}.png"
        plot_task_vs_length(records, out / name, task)
        lines += [f"![{task} against length]({name})", ""]
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(row_label(r), []).append(r)
    for label, rs in groups.items():
        name = f"retrieval_depth_{slug(label)}.png"
        if plot_depth_heatmaps(rs, out / name) is not None:
            lines += [f"![retrieval by depth: {label}]({name})", ""]
    return lines
