"""Compare two `cocattn reproduce` output directories number by number: every JSON file (result
records, reproduce.json, stages.json, the runs' configs and train results), with timestamps,
timings, hardware and paths left aside, and every safetensors file tensor by tensor.

    .venv/bin/python scripts/compare_runs.py BEFORE_DIR AFTER_DIR

Prints each difference and a summary line; exits 1 when anything differs, 0 otherwise.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# keys that hold when and where a run happened, or how long it took: not the numbers it computed
IGNORED_KEY = re.compile(
    r"created|wall|seconds|_s$|time|tokens_per_s|date|hardware|commit|elapsed|rss|peak|throughput|eta|pid|host|version"
    r"|_at$|duration|sha256",
    re.I,
)
PATH_OR_CLOCK = re.compile(r"/tmp/|/home/|\d\d:\d\d")


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Where the JSON values ``a`` and ``b`` differ, as ``path: a != b`` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if IGNORED_KEY.search(str(key)):
                continue
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'after' if key not in a else 'before'}")
            else:
                out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [line for i, (x, y) in enumerate(zip(a, b)) for line in differences(x, y, f"{path}[{i}]")]
    if a != b and not (isinstance(a, str) and isinstance(b, str) and PATH_OR_CLOCK.search(a)):
        return [f"{path}: {str(a)[:80]!r} != {str(b)[:80]!r}"]
    return []


def tensor_differences(a: Path, b: Path) -> list[str]:
    """The tensors (by name) and metadata that differ between two safetensors files."""
    import torch
    from safetensors import safe_open

    with safe_open(a, "pt") as fa, safe_open(b, "pt") as fb:
        out = [] if fa.metadata() == fb.metadata() else ["metadata"]
        names = set(fa.keys()) | set(fb.keys())
        for name in sorted(names):
            if name not in fa.keys() or name not in fb.keys():
                out.append(f"{name}: in one file only")
                continue
            x, y = fa.get_tensor(name), fb.get_tensor(name)
            if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
                out.append(name)
    return out


def main(before: Path, after: Path) -> int:
    json_files = sorted(p.relative_to(before) for p in before.rglob("*.json"))
    tensor_files = sorted(p.relative_to(before) for p in before.rglob("*.safetensors"))
    differing = 0
    for rel in json_files + tensor_files:
        other = after / rel
        if not other.exists():
            print(f"{rel}: missing after")
            differing += 1
            continue
        if rel.suffix == ".json":
            lines = differences(json.loads((before / rel).read_text()), json.loads(other.read_text()))
        else:
            lines = tensor_differences(before / rel, other)
        if lines:
            differing += 1
            print(rel, *lines[:8], sep="\n    ")
    extra = sorted({p.relative_to(after) for p in after.rglob("*.json")} - set(json_files))
    for rel in extra:
        print(f"{rel}: only after")
    print(
        f"compared {len(json_files)} JSON files and {len(tensor_files)} safetensors files: "
        f"{differing + len(extra)} differ"
    )
    return 1 if differing or extra else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_runs.py BEFORE_DIR AFTER_DIR")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
