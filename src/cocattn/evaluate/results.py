"""The result record every evaluator returns and writes (schema ``cocattn.eval/1``: one (model,
scaling, metric) row measured at several lengths), its JSON / CSV files, and the checks a record
passes when it is read back. The fields: docs/EVAL.md.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import resource
from pathlib import Path
from typing import Any, Iterable, TypeGuard

import torch

from cocattn._checks import bad_value
from cocattn.files import load_json, write_json, write_text

__all__ = [
    "SCHEMA",
    "make_result",
    "write_results",
    "read_results",
    "results_csv",
    "peak_memory_bytes",
    "finite_or_none",
    "KIND_NAMES",
    "display_name",
    "scaling_label",
    "scaling_sort_key",
    "record_sort_key",
]

SCHEMA = "cocattn.eval/1"
METRICS = ("ppl", "passkey", "retrieval")

KIND_NAMES = {"rope": "RoPE", "coca": "CoCA-Slack", "coca-strict": "CoCA-Strict", "alibi": "ALiBi", "nope": "NoPE"}
"""How reports name the attention kinds (CoCA-Slack is the paper's default CoCA)."""
_SCALING_TYPES = ("dynamic", "linear", "yarn", "ntk")


def display_name(record: dict) -> str:
    """``RoPE``, ``CoCA-Slack``, ... for a model named after its attention kind (as ``cocattn
    reproduce`` names them); otherwise the model's own name."""
    return KIND_NAMES.get(record["model"], record["model"])


def scaling_label(name: str) -> str:
    """``no scaling``, ``dynamic NTK ×4``, ``linear ×4``, ``YaRN ×4`` for a record's ``scaling_name``."""
    if name == "none":
        return "no scaling"
    for prefix, words in (
        ("dynamic x", "dynamic NTK ×"),
        ("linear x", "linear ×"),
        ("yarn x", "YaRN ×"),
        ("ntk x", "NTK ×"),
    ):
        if name.startswith(prefix):
            return words + name[len(prefix) :]
    return name


def scaling_sort_key(name: str) -> tuple:
    """``none`` first, then by type (dynamic, linear, yarn, ntk, others) and factor."""
    if name == "none":
        return (0, 0, 0.0, "")
    kind, _, rest = name.partition(" x")
    try:
        factor = float(rest.split()[0]) if rest else 0.0
    except ValueError:
        factor = 0.0
    order = _SCALING_TYPES.index(kind) if kind in _SCALING_TYPES else len(_SCALING_TYPES)
    return (1, order, factor, name)


def record_sort_key(record: dict) -> tuple:
    """Kinds in the order rope, coca, coca-strict, alibi, nope, then other models by name; within a
    model, scalings by :func:`scaling_sort_key`."""
    kinds = list(KIND_NAMES)
    model = record["model"]
    return (
        kinds.index(model) if model in kinds else len(kinds),
        model,
        scaling_sort_key(record.get("scaling_name", "none")),
    )


def finite_or_none(x: float | None) -> float | None:
    """JSON has no inf/NaN: those become ``null``."""
    return None if x is None or not math.isfinite(x) else float(x)


def peak_memory_bytes(device: torch.device | str) -> int:
    """Peak memory so far: CUDA ``max_memory_allocated``, else this process's peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def make_result(
    metric: str,
    lm: Any,
    scaling: dict | None,
    lengths: list[int],
    values: list[float | None],
    *,
    counts: list[int],
    settings: dict,
    details: dict,
    wall_s: float,
) -> dict[str, Any]:
    """A record in the schema above."""
    from cocattn import __version__
    from cocattn.evaluate.scaling import scaling_name

    if metric not in METRICS:
        raise bad_value("metric", metric, f"one of {METRICS}")
    return {
        "schema": SCHEMA,
        "metric": metric,
        **lm.describe(),
        "scaling": scaling,
        "scaling_name": scaling_name(scaling),
        "lengths": [int(x) for x in lengths],
        "values": [finite_or_none(v) for v in values],
        "counts": [int(c) for c in counts],
        "settings": settings,
        "details": details,
        "device": str(lm.device),
        "wall_s": round(float(wall_s), 3),
        "peak_memory_bytes": peak_memory_bytes(lm.device),
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cocattn_version": __version__,
    }


_CSV_HEADER = "model,attention,scaling,metric"


def check_results_path(path: str | Path, arg: str = "out") -> Path:
    """Refuse a results path whose CSV twin (``r.json`` → ``r.csv``) is a file cocattn did not
    write: it would be replaced. A ``.csv`` path is refused too (the CSV would replace the JSON)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        raise bad_value(arg, str(path), "a .json file (the CSV is written beside it, with the same name)")
    twin = path.with_suffix(".csv")
    if twin.exists():
        try:
            with open(twin, encoding="utf-8") as handle:
                first = handle.readline(4096)
        except (OSError, UnicodeDecodeError):
            first = ""
        if not (twin.is_file() and first.startswith(_CSV_HEADER)):
            raise bad_value(
                arg,
                str(path),
                f"a path whose CSV twin {twin} is absent or written by cocattn: that file is not a cocattn "
                "results CSV and would be replaced; move it or choose another name",
            )
    return path


def write_results(path: str | Path, results: dict | Iterable[dict]) -> Path:
    """Write one record or a list of records as JSON (atomically), and a CSV beside it (refused
    when that CSV is a file cocattn did not write: :func:`check_results_path`)."""
    path = check_results_path(path)
    records = [results] if isinstance(results, dict) else list(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, records[0] if len(records) == 1 else {"schema": SCHEMA, "results": records})
    write_text(path.with_suffix(".csv"), results_csv(records))
    return path


MAX_LENGTHS = 256
"""Lengths one result record may hold (a report draws one tick and one table column per length)."""
MAX_LENGTH = 2**31
"""The longest context length a result record may name."""
_PASSKEY_SERIES = ("exact", "logprob", "within_training", "beyond_training")


def _is_number(x: Any) -> TypeGuard[int | float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_finite(value: Any, where: str) -> None:
    """Every number inside ``value`` finite and representable as a float (no NaN, Infinity or
    10**400, which JSON allows and the report's arithmetic does not); walked without recursion."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{path}.{k}".lstrip("."), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(item))
        elif _is_number(item):
            try:
                ok = math.isfinite(float(item))
            except OverflowError:
                ok = False
            if not ok:
                raise bad_value(f"{where}: {path}", item, "a finite number (JSON has no NaN or Infinity)")


def _check_series(
    series: Any, n: int, where: str, name: str, low: float | None, high: float | None, accepted: str
) -> None:
    """``series``: a list of ``n`` entries, each null or a number within ``[low, high]``."""
    if not (isinstance(series, list) and len(series) == n):
        raise bad_value(f"{where}: {name}", series, f"a list of {n} entries, one per length")
    for i, v in enumerate(series):
        if v is not None and not (_is_number(v) and (low is None or v >= low) and (high is None or v <= high)):
            raise bad_value(f"{where}: {name}[{i}]", v, accepted)


def _check_top_level(record: dict, where: str) -> int:
    """The fields every report reads: metric, model, lengths, values, ci95, counts, training length."""
    if record["metric"] not in METRICS:
        raise bad_value(f"{where}: metric", record["metric"], f"one of {', '.join(METRICS)}")
    for key in ("model", "attention", "scaling_name", "kind", "task"):
        if key in record and not (isinstance(record[key], str) or (key == "task" and record[key] is None)):
            raise bad_value(f"{where}: {key}", record[key], "a string")
    lengths = record["lengths"]
    if not (isinstance(lengths, list) and 1 <= len(lengths) <= MAX_LENGTHS):
        shown = f"a list of {len(lengths)}" if isinstance(lengths, list) else lengths
        raise bad_value(f"{where}: lengths", shown, f"a list of 1 to {MAX_LENGTHS} lengths")
    for i, n in enumerate(lengths):
        if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_LENGTH):
            raise bad_value(f"{where}: lengths[{i}]", n, f"a positive integer up to {MAX_LENGTH}")
    n = len(lengths)
    positive = record["metric"] == "ppl"
    low, high = (None, None) if positive else (0.0, 1.0)
    accepted = "a positive number (a perplexity) or null" if positive else "a number from 0 to 1 (a fraction) or null"
    _check_series(record["values"], n, where, "values", low, high, accepted)
    if positive and any(v is not None and v <= 0 for v in record["values"]):
        i = next(i for i, v in enumerate(record["values"]) if v is not None and v <= 0)
        raise bad_value(f"{where}: values[{i}]", record["values"][i], accepted)
    if record.get("counts") is not None:
        _check_series(record["counts"], n, where, "counts", 0, None, "a count (a number >= 0) or null")
    ci = record.get("ci95")
    if ci is not None and not (
        isinstance(ci, list)
        and len(ci) == n
        and all(c is None or (isinstance(c, list) and len(c) == 2 and all(map(_is_number, c))) for c in ci)
    ):
        raise bad_value(f"{where}: ci95", ci, f"a list of {n} entries, each null or [low, high]")
    l0 = record.get("training_length")
    if l0 is not None and not (isinstance(l0, int) and not isinstance(l0, bool) and 1 <= l0 <= MAX_LENGTH):
        raise bad_value(f"{where}: training_length", l0, "a positive integer or null")
    return n


def _check_details(record: dict, n: int, where: str) -> None:
    """The per-length data the report and the verdict compute from (per-document NLL sums, the
    passkey splits and cases): numbers where numbers are read."""
    details = record.get("details")
    if details is None:
        return
    if not isinstance(details, dict):
        raise bad_value(f"{where}: details", details, "a mapping")
    docs = details.get("per_document")
    if record["metric"] == "ppl" and isinstance(docs, dict):
        for key in ("nll_sum", "tokens"):
            for i, row in enumerate(docs.get(key) or []):
                if row is not None and not (isinstance(row, list) and all(_is_number(x) and x >= 0 for x in row)):
                    raise bad_value(f"{where}: details.per_document.{key}[{i}]", row, "null or a list of numbers >= 0")
    if record["metric"] != "passkey":
        return
    for key in _PASSKEY_SERIES:
        if key in details:
            low, high = (None, None) if key == "logprob" else (0.0, 1.0)
            _check_series(details[key], n, where, f"details.{key}", low, high, "a number in range, or null")
    by_depth = details.get("by_depth")
    if by_depth is not None:
        if not isinstance(by_depth, dict):
            raise bad_value(f"{where}: details.by_depth", by_depth, "a mapping of depth bucket to accuracies")
        for bucket, series in by_depth.items():
            _check_series(series, n, where, f"details.by_depth.{bucket}", 0.0, 1.0, "a fraction or null")
    for i, rows in enumerate(details.get("cases") or []):
        for j, case in enumerate(rows if isinstance(rows, list) else [rows]):
            depth = case.get("depth", 0.0) if isinstance(case, dict) else None
            if not (isinstance(case, dict) and _is_number(depth) and 0.0 <= depth <= 1.0):
                raise bad_value(f"{where}: details.cases[{i}][{j}]", case, "a case record with a depth from 0 to 1")


def _validate(record: Any, where: str) -> dict:
    """A result record as the report may use it, checked at the boundary: the keys it reads,
    numbers that are numbers, finite, positive where they must be, at most :data:`MAX_LENGTHS`
    lengths (a ValueError naming the file and the field otherwise)."""
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f'{where}: not a cocattn result (expected "schema": "{SCHEMA}")')
    for key in ("metric", "model", "lengths", "values"):
        if key not in record:
            raise ValueError(f"{where}: result without {key!r}")
    if isinstance(record["lengths"], list) and isinstance(record["values"], list):
        if len(record["lengths"]) != len(record["values"]):
            raise ValueError(f"{where}: 'lengths' and 'values' differ in length")
    _check_finite(record, where)
    n = _check_top_level(record, where)
    _check_details(record, n, where)
    return record


def read_results(paths: str | Path | Iterable[str | Path]) -> list[dict]:
    """Records from JSON files or directories (searched recursively for ``*.json`` results).

    In a directory, JSON files that are not results (configs, manifests) are skipped.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[dict] = []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(p.rglob("*.json")):
                try:
                    data = load_json(f)
                except ValueError:
                    continue
                if isinstance(data, dict) and data.get("schema") == SCHEMA:
                    out.extend(_records(data, f))
        else:
            out.extend(_records(load_json(p), p))
    return out


def _records(data: Any, where: Path) -> list[dict]:
    if isinstance(data, dict) and "results" in data:
        if not isinstance(data["results"], list):
            raise bad_value(f"{where}: results", data["results"], "a list of result records")
        return [_validate(r, f"{where}[{i}]") for i, r in enumerate(data["results"])]
    return [_validate(data, str(where))]


def results_csv(records: Iterable[dict]) -> str:
    """CSV: one row per record (model, scaling, metric), one column per length."""
    records = list(records)
    lengths = sorted({n for r in records for n in r["lengths"]})
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["model", "attention", "scaling", "metric", *lengths])
    for r in records:
        by_len = dict(zip(r["lengths"], r["values"]))
        metric = f"{r['metric']}:{r['task']}" if r.get("task") else r["metric"]
        writer.writerow(
            [
                r["model"],
                r.get("attention", ""),
                r.get("scaling_name", "none"),
                metric,
                *["" if by_len.get(n) is None else f"{by_len[n]:.6g}" for n in lengths],
            ]
        )
    return buf.getvalue()
