"""A study's numbers with their intervals, from its units' records alone.

- one model at one setting: accuracy over cases, with the Wilson interval;
- a kind (several seeds): the mean accuracy of its seeds, with a percentile bootstrap over seeds;
- learning speed: the step at which a seed's in-window accuracy reaches 90 % (interpolated between
  the curve's checks); a seed that never does counts as the study's step count (a lower bound: the
  mean is then marked ``>=``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cocattn.evaluate.stats import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, bootstrap_mean_interval, wilson_interval

__all__ = ["summarize", "steps_to", "TARGET"]

TARGET = 0.9


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
            key = (rec["kind"], rec["width"], rec["pairs"], r["scaling"], r["multiple"], r["length"])
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
            groups[(rec["kind"], rec["width"], rec["pairs"])].append(rec)
    rows = []
    for (kind, width, pairs), recs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)):
        recs.sort(key=lambda r: r["seed"])
        reached = [steps_to(r["curve"]) for r in recs]
        censored = [steps if s is None else s for s in reached]
        curve_steps = [p["step"] for p in recs[0]["curve"]]
        mean_curve = [sum(r["curve"][i]["accuracy"] for r in recs) / len(recs) for i in range(len(curve_steps))]
        rows.append(
            {
                "kind": kind,
                "width": width,
                "pairs": pairs,
                "steps_to_target": reached,
                "reached": sum(s is not None for s in reached),
                "lower_bound": any(s is None for s in reached),
                **_interval([float(s) for s in censored], confidence, resamples),
                "curve_steps": curve_steps,
                "curve_mean": mean_curve,
                "curves": [[p["accuracy"] for p in r["curve"]] for r in recs],
            }
        )
    return rows


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
        "cost": {
            "models": len(records),
            "cpu_minutes": cpu / 60,
            "train_seconds": sum(r["train_seconds"] for r in records),
        },
    }
