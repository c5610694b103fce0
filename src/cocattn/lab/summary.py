"""A study's numbers with their intervals, from its units' records alone: accuracy per model
(Wilson) and per kind (mean of its seeds, bootstrap over seeds), steps to 90 %, the attention
diagnostics along the curve, and each remedy against the released CoCA (docs/LAB.md,
"Intervals"). Models are grouped by *label*: the kind, plus ``+remedy`` for a remedy.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cocattn.attention.kinds import is_coca
from cocattn.evaluate.results import KIND_NAMES
from cocattn.evaluate.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    bootstrap_mean_interval,
    bootstrap_two_sample_interval,
    wilson_interval,
)
from cocattn.lab.diagnostics import DIAGNOSTICS
from cocattn.lab.remedies import RELEASED, function_class

__all__ = ["summarize", "steps_to", "model_label", "study_labels", "display_label", "TARGET", "ADOPT_SPEEDUP"]

TARGET = 0.9
ADOPT_SPEEDUP = 1.5
"""A remedy qualifies as a default when the lower end of its speed-up interval is at least this
and no multiple beyond the window is worse (the upper end of the accuracy change below zero)."""


def model_label(record: dict[str, Any]) -> str:
    """``kind`` or ``kind+remedy`` (the released code's CoCA is the plain kind)."""
    remedy = record.get("remedy") or RELEASED
    return record["kind"] if remedy == RELEASED else f"{record['kind']}+{remedy}"


def study_labels(study: dict[str, Any]) -> list[str]:
    """Every model label of a study, in report order: each kind, then its remedies."""
    labels = []
    for kind in study["kinds"]:
        labels.append(kind)
        if is_coca(kind):
            labels += [f"{kind}+{r}" for r in study.get("remedies") or () if r != RELEASED]
    return labels


def display_label(label: str) -> str:
    """``CoCA-Slack + t-init`` for ``coca+t-init``."""
    kind, _, remedy = label.partition("+")
    name = KIND_NAMES.get(kind, kind)
    return f"{name} + {remedy}" if remedy else name


def steps_to(curve: list[dict[str, Any]], target: float = TARGET) -> float | None:
    """The step at which ``curve``'s in-window accuracy first reaches ``target``, interpolated
    linearly between the two checks around the crossing (None: never reached)."""
    previous = None
    for point in curve:
        if point["accuracy"] >= target:
            if previous is None or point["accuracy"] == previous["accuracy"]:
                return float(point["step"])
            share = (target - previous["accuracy"]) / (point["accuracy"] - previous["accuracy"])
            return float(previous["step"] + share * (point["step"] - previous["step"]))
        previous = point
    return None


def _interval(values: list[float], confidence: float, resamples: int) -> dict[str, Any]:
    mean, low, high = bootstrap_mean_interval(values, confidence=confidence, resamples=resamples, seed=0)
    return {"mean": mean, "low": low, "high": high, "seeds": len(values), "values": values}


def _accuracy_rows(records: list[dict[str, Any]], confidence: float, resamples: int) -> list[dict[str, Any]]:
    """One row per kind x width x pairs x scaling x multiple: the seeds' mean and interval, and
    every model's accuracy with its Wilson interval."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        for r in rec["results"]:
            key = (model_label(rec), rec["width"], rec["pairs"], r["scaling"], r["multiple"], r["length"])
            groups[key].append({"seed": rec["seed"], **r})
    rows = []
    for (kind, width, pairs, scaling, multiple, length), runs in groups.items():
        runs.sort(key=lambda r: r["seed"])
        per_model = [
            {
                "seed": r["seed"],
                "accuracy": r["correct"] / r["cases"],
                "wilson": list(wilson_interval(r["correct"], r["cases"], confidence)),
                "cases": r["cases"],
                "token_accuracy": r["tokens_correct"] / r["tokens"],
            }
            for r in runs
        ]
        rows.append(
            {
                "kind": kind,
                "width": width,
                "pairs": pairs,
                "scaling": scaling,
                "multiple": multiple,
                "length": length,
                **_interval([m["accuracy"] for m in per_model], confidence, resamples),
                "token_accuracy": sum(m["token_accuracy"] for m in per_model) / len(per_model),
                "models": per_model,
            }
        )
    return sorted(
        rows,
        key=lambda r: (r["kind"], r["width"], r["pairs"] or 0, r["scaling"] != "plain", r["scaling"], r["multiple"]),
    )


def _learning_rows(
    records: list[dict[str, Any]], steps: int, confidence: float, resamples: int
) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if rec.get("curve"):
            groups[(model_label(rec), rec["width"], rec["pairs"])].append(rec)
    rows = []
    for (kind, width, pairs), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        recs.sort(key=lambda r: r["seed"])
        reached = [steps_to(r["curve"]) for r in recs]
        censored = _censored_steps(recs, steps)
        curve_steps = [p["step"] for p in recs[0]["curve"]]
        mean_curve = [sum(r["curve"][i]["accuracy"] for r in recs) / len(recs) for i in range(len(curve_steps))]
        extra = {}
        if "layers" in recs[0]["curve"][0]:
            extra = {"diagnostics": _diagnostic_curves(recs, confidence, resamples)}
        rows.append(
            {
                "kind": kind,
                "width": width,
                "pairs": pairs,
                "steps_to_target": reached,
                "reached": sum(s is not None for s in reached),
                "lower_bound": any(s is None for s in reached),
                **_interval(censored, confidence, resamples),
                "curve_steps": curve_steps,
                "curve_mean": mean_curve,
                "curves": [[p["accuracy"] for p in r["curve"]] for r in recs],
                **extra,
            }
        )
    return rows


DIAGNOSTIC_STEPS = (0, 100, 200)
"""Curve checks whose diagnostics get intervals over seeds (init, and early in training)."""


def _layer_mean(point: dict[str, Any], name: str) -> float | None:
    values = [layer[name] for layer in point["layers"] if layer[name] is not None]
    return sum(values) / len(values) if values else None


def _diagnostic_curves(recs: list[dict[str, Any]], confidence: float, resamples: int) -> dict[str, Any]:
    """Each diagnostic at each curve check (mean over layers, then over seeds), and at
    :data:`DIAGNOSTIC_STEPS` the seeds' mean with its bootstrap interval."""
    curves: dict[str, list[float | None]] = {}
    at: dict[str, dict[str, Any]] = {}
    for name in DIAGNOSTICS:
        series: list[float | None] = []
        for i, point in enumerate(recs[0]["curve"]):
            per_seed = [v for v in (_layer_mean(r["curve"][i], name) for r in recs) if v is not None]
            series.append(sum(per_seed) / len(per_seed) if per_seed else None)
            if point["step"] in DIAGNOSTIC_STEPS and per_seed:
                at.setdefault(str(point["step"]), {})[name] = _interval(per_seed, confidence, resamples)
        curves[name] = series
    return {"curves": curves, "at": at}


def _remedy_rows(
    records: list[dict[str, Any]], steps: int, multiples: list[int], confidence: float, resamples: int
) -> list[dict[str, Any]]:
    """Each remedy against the released code's CoCA of the same kind and width (module docstring)."""
    by_label: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_label[(rec["kind"], rec.get("remedy") or RELEASED, rec["width"])].append(rec)
    rows = []
    for (kind, remedy, width), recs in sorted(by_label.items()):
        base = by_label.get((kind, RELEASED, width))
        if remedy == RELEASED or not base:
            continue
        base_steps, own_steps = _censored_steps(base, steps), _censored_steps(recs, steps)
        speedup = bootstrap_two_sample_interval(
            base_steps, own_steps, "ratio", confidence=confidence, resamples=resamples
        )
        changes = []
        for m in multiples:
            if m == 1:
                continue
            own, ref = _plain_accuracy(recs, m), _plain_accuracy(base, m)
            if own and ref:
                diff = bootstrap_two_sample_interval(own, ref, "difference", confidence=confidence, resamples=resamples)
                changes.append({"multiple": m, "change": diff[0], "low": diff[1], "high": diff[2]})
        worse = [c["multiple"] for c in changes if c["high"] < 0]
        rows.append(
            {
                "kind": kind,
                "remedy": remedy,
                "width": width,
                "function_class": function_class(remedy),
                "speedup": speedup[0],
                "speedup_low": speedup[1],
                "speedup_high": speedup[2],
                "beyond_window": changes,
                "worse_beyond_window": worse,
                "adopt": speedup[1] >= ADOPT_SPEEDUP and not worse,
            }
        )
    return rows


def _censored_steps(recs: list[dict[str, Any]], steps: int) -> list[float]:
    reached = [steps_to(r["curve"]) for r in sorted(recs, key=lambda r: r["seed"])]
    return [float(steps) if s is None else s for s in reached]


def _plain_accuracy(recs: list[dict[str, Any]], multiple: int) -> list[float]:
    return [
        r["correct"] / r["cases"]
        for rec in recs
        for r in rec["results"]
        if r["scaling"] == "plain" and r["multiple"] == multiple
    ]


def summarize(
    study: dict[str, Any], records: list[dict[str, Any]], confidence: float | None = None, resamples: int | None = None
) -> dict[str, Any]:
    """The study's tables: ``accuracy`` rows, ``learning`` rows and its ``cost``."""
    confidence = DEFAULT_CONFIDENCE if confidence is None else confidence
    resamples = DEFAULT_RESAMPLES if resamples is None else resamples
    cpu = sum(r["cpu_seconds"] for r in records)
    return {
        "confidence": confidence,
        "resamples": resamples,
        "target": TARGET,
        "accuracy": _accuracy_rows(records, confidence, resamples),
        "learning": _learning_rows(records, study["recipe"]["steps"], confidence, resamples),
        **(
            {"remedies": _remedy_rows(records, study["recipe"]["steps"], study["multiples"], confidence, resamples)}
            if study.get("remedies")
            else {}
        ),
        "cost": {
            "models": len(records),
            "cpu_minutes": cpu / 60,
            "train_seconds": sum(r["train_seconds"] for r in records),
        },
    }
