"""The lab's report: ``report.md``, ``summary.json`` and plots, from ``lab.json`` alone.

The same ``lab.json`` gives the same files (the bootstrap is seeded), so ``cocattn report DIR``
rebuilds a lab directory's report exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cocattn import files
from cocattn.lab.summary import ADOPT_SPEEDUP, display_label, study_labels, summarize
from cocattn.safeparse import loads_json
from cocattn.tasks.synthetic import RELATIVE_SOLVABLE

__all__ = ["write_lab_report", "is_lab_dir"]

TASK_LINES = {
    "copy": "a marked segment, a random gap, the marker and the segment again: the repeat is scored. The distance is uniform over the row, so only content lookup (an induction head) solves it.",
    "copy-fixed": "the copy task with the segment always at the start and the repeat at the end: in-window a fixed-offset head solves it, so a collapse at 2x exposes a positional shortcut.",
    "mqar": "Zoology's multi-query associative recall: key-value pairs, then the keys asked again in random order at power-law gaps; each query is a case.",
    "needle": "one marked value at a uniform depth of noise tokens, asked for at the end by a second marker (passkey reduced to tokens).",
}


def is_lab_dir(path: Path) -> bool:
    return (Path(path) / "lab.json").is_file()


_label = display_label


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    return f"{row['mean']:.2f} [{row['low']:.2f}–{row['high']:.2f}]"


def _acc(
    summary: dict[str, Any], kind: str, scaling: str, multiple: int, width: int | None = None, pairs: int | None = None
) -> dict[str, Any] | None:
    for r in summary["accuracy"]:
        if (
            r["kind"] == kind
            and r["scaling"] == scaling
            and r["multiple"] == multiple
            and (width is None or r["width"] == width)
            and (pairs is None or r["pairs"] == pairs)
        ):
            return r
    return None


def _extrapolation_table(study: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    mults = study["multiples"]
    lines = [
        "| kind | scaling | " + " | ".join(f"{m}× ({m * study['task']['train_length']})" for m in mults) + " |",
        "|---|---|" + "---|" * len(mults),
    ]
    for kind in study_labels(study):
        for scaling in study["scalings"]:
            cells = [_acc(summary, kind, scaling, m) for m in mults]
            if all(c is None for c in cells):
                continue
            lines.append(f"| {_label(kind)} | {scaling} | " + " | ".join(_cell(c) for c in cells) + " |")
    return lines


def _learning_table(summary: dict[str, Any], steps: int) -> list[str]:
    lines = [
        f"| kind | width | pairs | seeds at ≥ {summary['target']:.0%} | mean steps to {summary['target']:.0%} [95% interval over seeds] | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["learning"]:
        bound = "≥ " if r["lower_bound"] else ""
        per_seed = ", ".join("never" if s is None else f"{s:.0f}" for s in r["steps_to_target"])
        lines.append(
            f"| {_label(r['kind'])} | {r['width']} | {r['pairs'] or '–'} | {r['reached']}/{r['seeds']} | {bound}{r['mean']:.0f} [{r['low']:.0f}–{r['high']:.0f}] | {per_seed} |"
        )
    lines.append("")
    lines.append(
        f"Steps are interpolated linearly between the curve's checks. A seed that never reached the target "
        f"counts as {steps} steps (the run's length), so a mean marked ≥ is a lower bound."
    )
    return lines


def _extrapolation_verdict(study: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    out = []
    mults = [m for m in study["multiples"] if m > 1]
    labels = study_labels(study)
    inwin = {k: _acc(summary, k, "plain", 1) for k in labels}
    learned = [k for k, r in inwin.items() if r and r["mean"] >= summary["target"]]
    missed = [k for k in labels if k not in learned]
    out.append(
        f"In-window (1×), the seeds' mean accuracy reached {summary['target']:.0%} for "
        + (", ".join(_label(k) for k in learned) or "no kind")
        + ("" if not missed else "; not for " + ", ".join(f"{_label(k)} ({_cell(inwin[k])})" for k in missed))
        + "."
    )
    for kind in labels:
        plain = [(m, _acc(summary, kind, "plain", m)) for m in mults]
        scaled = [s for s in study["scalings"] if s != "plain" and _acc(summary, kind, s, 1) is not None]
        best = []
        for m in mults:
            found = [(s, _acc(summary, kind, s, m)) for s in scaled]
            options = [(s, r) for s, r in found if r is not None]
            if options:
                s, r = max(options, key=lambda o: o[1]["mean"])
                best.append(f"{m}× {r['mean']:.2f} ({s})")
        text = f"{_label(kind)}: " + ", ".join(
            f"{m}× {r['mean']:.2f} [{r['low']:.2f}–{r['high']:.2f}]" for m, r in plain if r
        )
        if best:
            text += "; best scaling: " + ", ".join(best)
        out.append(text + ".")
    return out


def _capacity_section(study: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    widths, pairs = study["widths"], study["pairs"]
    lines = []
    for kind in study["kinds"]:
        lines += [
            f"**{_label(kind)}** (rows: width, columns: key-value pairs)",
            "",
            "| width | " + " | ".join(str(p) for p in pairs) + " | mean |",
            "|---|" + "---|" * (len(pairs) + 1),
        ]
        for w in widths:
            cells = [_acc(summary, kind, "plain", 1, w, p) for p in pairs]
            mean = _mean_over_pairs(summary, kind, w, pairs)
            shown = "–" if mean is None else f"{mean:.2f}"
            lines.append(f"| {w} | " + " | ".join(_cell(c) for c in cells) + f" | {shown} |")
        lines.append("")
    lines += _su_sentence(study, summary)
    return lines


def _mean_over_pairs(summary: dict[str, Any], kind: str, width: int, pairs: list[int]) -> float | None:
    cells = [_acc(summary, kind, "plain", 1, width, p) for p in pairs]
    present = [c for c in cells if c is not None]
    if len(present) < len(cells):
        return None
    return sum(c["mean"] for c in present) / len(present)


def _su_sentence(study: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Su's prediction: a CoCA head fits what a standard head of half its size fits. Each CoCA
    width against RoPE at half, the same and double that width (means over the pair counts)."""
    if "rope" not in study["kinds"]:
        return []
    widths, pairs = study["widths"], study["pairs"]
    out = [
        "Su's prediction (a CoCA head holds what a RoPE head of half its width holds), from the means over pair counts:",
        "",
    ]
    for kind in (k for k in study["kinds"] if k in ("coca", "coca-strict")):
        for w in widths:
            coca = _mean_over_pairs(summary, kind, w, pairs)
            if coca is None:
                continue
            means = {f: _mean_over_pairs(summary, "rope", f, pairs) for f in (w // 2, w, 2 * w) if f in widths}
            rope = {f: v for f, v in means.items() if v is not None}
            if not rope:
                continue
            nearest = min(rope, key=lambda f: abs(rope[f] - coca))
            named = {w // 2: "half the width", w: "the same width", 2 * w: "double the width"}
            shown = ", ".join(f"{v:.2f} at {f}" for f, v in sorted(rope.items()))
            out.append(f"- {_label(kind)} at width {w}: {coca:.2f}; RoPE: {shown}; nearest: RoPE at {named[nearest]}.")
    return out + _not_capacity(study, summary)


def _not_capacity(study: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Where capacity cannot bind (fewest pairs, widest model), a CoCA kind clearly below RoPE
    is short of something else: learning the lookup in this budget."""
    pairs, width = min(study["pairs"]), max(study["widths"])
    rope = _acc(summary, "rope", "plain", 1, width, pairs)
    out = []
    for kind in (k for k in study["kinds"] if k in ("coca", "coca-strict")):
        coca = _acc(summary, kind, "plain", 1, width, pairs)
        if rope is not None and coca is not None and rope["low"] > coca["high"]:
            out.append(
                f"- With {pairs} pairs at width {width}, where a head's capacity does not bind, {_label(kind)} scores "
                f"{_cell(coca)} against RoPE's {_cell(rope)}: that gap is not capacity; in this budget {_label(kind)} "
                "has not learned the lookup (see the learning table)."
            )
    return out


DIAGNOSTIC_NAMES = {
    "entropy": "attention entropy (nats)",
    "score_std": "score spread",
    "tau_zero": "τ zeroed by the ReLU",
    "grad_q": "‖∇ Q proj.‖",
    "grad_k": "‖∇ K / T proj.‖",
}


def _diagnostics_section(summary: dict[str, Any]) -> list[str]:
    """Per model label, each diagnostic at init and early in training (mean over layers and
    seeds [bootstrap over seeds])."""
    rows = [r for r in summary["learning"] if "diagnostics" in r]
    if not rows:
        return []
    steps = sorted({int(s) for r in rows for s in r["diagnostics"]["at"]})
    lines = [
        "Mean over layers, then over seeds [95% bootstrap over seeds], at step "
        + ", ".join(map(str, steps))
        + " (cells: one value per step). Score spread: the standard deviation of a query's scores "
        "over its keys; τ zeroed: the share of tied T entries the ReLU sets to 0 (CoCA with ReLU only); "
        "gradient norms of the task loss on one batch.",
        "",
        "| model | " + " | ".join(DIAGNOSTIC_NAMES.values()) + " |",
        "|---|" + "---|" * len(DIAGNOSTIC_NAMES),
    ]
    for r in rows:
        cells = []
        for name in DIAGNOSTIC_NAMES:
            values = [r["diagnostics"]["at"].get(str(step), {}).get(name) for step in steps]
            cells.append(" → ".join("–" if v is None else _short(v) for v in values))
        lines.append(f"| {_label(r['kind'])} | " + " | ".join(cells) + " |")
    return lines


def _short(v: dict[str, Any]) -> str:
    return f"{v['mean']:.3g} [{v['low']:.3g}–{v['high']:.3g}]"


def _remedies_section(summary: dict[str, Any], study: dict[str, Any]) -> list[str]:
    """Each remedy against the released code's CoCA: speed-up and accuracy change beyond the window."""
    mults = [m for m in study["multiples"] if m > 1]
    steps = {r["kind"]: r for r in summary["learning"]}
    lines = [
        "Speed-up: the released code's mean steps to "
        f"{summary['target']:.0%} divided by the remedy's (> 1: faster), [95% bootstrap over the seeds of both]. "
        "Δ: the remedy's mean accuracy minus the released code's at each multiple of the training length, plain "
        "[95% bootstrap]. A remedy meets the rule for a default when its speed-up interval starts at "
        f"≥ {ADOPT_SPEEDUP:g}× and no Δ interval lies below zero.",
        "",
        "| model | function class | steps to 90 % | speed-up | "
        + " | ".join(f"Δ {m}×" for m in mults)
        + " | meets the rule |",
        "|---|---|---|---|" + "---|" * len(mults) + "---|",
    ]
    for r in summary["remedies"]:
        label = f"{r['kind']}+{r['remedy']}"
        learned = steps.get(label)
        bound = "≥ " if learned and learned["lower_bound"] else ""
        reached = f"{bound}{learned['mean']:.0f} [{learned['low']:.0f}–{learned['high']:.0f}]" if learned else "–"
        change = {c["multiple"]: c for c in r["beyond_window"]}
        cells = [
            f"{change[m]['change']:+.2f} [{change[m]['low']:+.2f}–{change[m]['high']:+.2f}]" if m in change else "–"
            for m in mults
        ]
        lines.append(
            f"| {_label(label)} | {r['function_class']} | {reached} | {r['speedup']:.2f}× [{r['speedup_low']:.2f}–{r['speedup_high']:.2f}] | "
            + " | ".join(cells)
            + f" | {'yes' if r['adopt'] else 'no'} |"
        )
    return lines


def _cost_lines(lab: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    run, cost = lab["run"], summary["cost"]
    return [
        f"- Cost: {cost['models']} models, {cost['cpu_minutes']:.1f} CPU-minutes; the last invocation took {run['wall_seconds_last_invocation'] / 60:.1f} min wall "
        f"({run['jobs']} worker(s), {run['threads_per_job'] or 'default'} thread(s) each).",
        f"- Hardware: {run['hardware']}. Commit: {run['commit'] or 'unknown'}. Date: {run['date']}.",
    ]


def _setup_lines(study: dict[str, Any]) -> list[str]:
    task, recipe = study["task"], study["recipe"]
    solvable = RELATIVE_SOLVABLE[task["name"]]
    settings = {
        "copy": f"segment {task['segment']}",
        "copy-fixed": f"segment {task['segment']}",
        "needle": f"value of {task['segment']} tokens",
        "mqar": f"pairs {task['pairs']}{' (scaled with length)' if task['scale_pairs'] else ''}, power_a {task['power_a']}",
    }[task["name"]]
    return [
        f"- Task `{task['name']}` ({settings}, vocabulary {task['vocab_size']}, training length {task['train_length']}): {TASK_LINES[task['name']]}",
        f"- A pure relative-position head {'can' if solvable else 'cannot'} solve it{' in-window' if solvable else ''}.",
        f"- Models: {study['n_layer']} layers, {study['n_head']} heads, width {', '.join(map(str, study['widths']))}, MLP ×{study['mlp_ratio']:g}, init std {study['init_std']:g}; "
        f"{recipe['steps']} steps × {recipe['batch_size']} rows, AdamW lr {recipe['lr']:g} → {recipe['min_lr']:g} (warm-up {recipe['warmup']}), weight decay {recipe['weight_decay']:g}; {study['seeds']} seeds.",
        f"- Scoring: {study['eval_cases']} fresh cases per length; a case is right when every answer token is the model's argmax. "
        "Cells: the mean over seeds [95% percentile bootstrap over seeds]; each model's Wilson interval over its cases is in summary.json.",
    ]


def _report_lines(lab: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    study = lab["study"]
    lines = [f"# cocattn lab: {study['study']} ({study['task']['name']})", ""]
    if study["study"] != "capacity":
        lines += ["## Answer", "", *[f"- {s}" for s in _extrapolation_verdict(study, summary)], ""]
    lines += ["## Setup", "", *_setup_lines(study), *_cost_lines(lab, summary), ""]
    if study["study"] == "capacity":
        lines += [
            "## Capacity: in-window accuracy",
            "",
            *_capacity_section(study, summary),
            "",
            "![capacity](capacity.png)",
            "",
        ]
    else:
        lines += [
            "## Accuracy against length",
            "",
            *_extrapolation_table(study, summary),
            "",
            "![accuracy against length](extrapolation.png)",
            "",
        ]
    lines += [
        "## Learning speed (in-window accuracy during training)",
        "",
        *_learning_table(summary, study["recipe"]["steps"]),
        "",
        "![learning curves](learning.png)",
        "",
    ]
    if summary.get("remedies"):
        lines += ["## Remedies against the released code's CoCA", "", *_remedies_section(summary, study), ""]
    diagnostics = _diagnostics_section(summary)
    if diagnostics:
        lines += ["## Attention diagnostics", "", *diagnostics, "", "![diagnostics](diagnostics.png)", ""]
    return lines


def write_lab_report(directory: str | Path, confidence: float | None = None, resamples: int | None = None) -> Path:
    """``report.md``, ``summary.json`` and the plots of the lab run in ``directory``."""
    from cocattn.lab.plots import plot_lab

    directory = Path(directory)
    lab = loads_json((directory / "lab.json").read_text(), str(directory / "lab.json"))
    summary = summarize(lab["study"], lab["units"], confidence, resamples)
    files.write_json(directory / "summary.json", summary)
    plot_lab(directory, lab["study"], summary)
    path = directory / "report.md"
    files.write_text(path, "\n".join(_report_lines(lab, summary)) + "\n")
    return path
