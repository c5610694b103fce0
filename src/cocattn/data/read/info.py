"""Reading a data directory's summary: the split table, the held-out length distribution, the
files (checked against the manifest), tokenizer and packages (``cocattn data info``). Building one
is :mod:`cocattn.data.build.builder`.
"""

from __future__ import annotations

import os
from pathlib import Path

from cocattn.data.read.shards import SPLITS, load_manifest, verify_file

PathLike = str | os.PathLike


def dataset_info(data_dir: PathLike, verify: str = "size") -> dict:
    """Summary of a data directory: the split table, the eval-length distribution, files
    (checked against the manifest per ``verify``), tokenizer and packages."""
    manifest = load_manifest(data_dir)
    for name in manifest["files"]:
        verify_file(data_dir, name, manifest, verify)
    try:
        return _info(data_dir, manifest)
    except (KeyError, TypeError, AttributeError) as err:  # a manifest that parses but is damaged
        raise ValueError(
            f"{Path(data_dir) / 'manifest.json'} is corrupt ({type(err).__name__}: {err}); rebuild the data directory"
        ) from None


def _info(data_dir: PathLike, manifest: dict) -> dict:
    eval_tokens = sorted(d["tokens"] for d in manifest["documents"] if d["split"] == "eval")
    thresholds = [8192, 16384, 32768, 65536]
    by_source: dict[str, dict[str, int]] = {}
    for d in manifest["documents"]:
        by_source.setdefault(d["source"], {}).setdefault(d["split"], 0)
        by_source[d["source"]][d["split"]] += 1
    return {
        "path": str(data_dir),
        "config": manifest["config"],
        "tokenizer": manifest["tokenizer"],
        "splits": manifest["splits"],
        "files": manifest["files"],
        "packages": manifest["packages"],
        "by_source": by_source,
        "eval_lengths": {f">={t}": sum(1 for n in eval_tokens if n >= t) for t in thresholds},
    }


def format_info(info: dict) -> str:
    """The summary of :func:`dataset_info` as a Markdown-style table."""
    lines = [
        f"data directory: {info['path']}  (preset {info['config']['preset']}, "
        f"vocabulary {info['tokenizer']['vocab_size']}, eot id {info['tokenizer']['eot_id']})",
        "",
        "| split | documents | chars | tokens | min | median | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in info["splits"].items():
        lines.append(
            f"| {name} | {s['documents']:,} | {s['chars']:,} | {s['tokens']:,} | "
            f"{s.get('min_tokens', '-'):,} | {s.get('median_tokens', '-'):,} | {s.get('max_tokens', '-'):,} |"
            if "min_tokens" in s
            else f"| {name} | {s['documents']:,} | {s['chars']:,} | - | - | - | - |"
        )
    lines += [
        "",
        "held-out documents by length (tokens): " + ", ".join(f"{k}: {v}" for k, v in info["eval_lengths"].items()),
        "",
        "| source | " + " | ".join(SPLITS) + " |",
        "|---|" + "---|" * len(SPLITS),
    ]
    for source, counts in info["by_source"].items():
        lines.append(f"| {source} | " + " | ".join(str(counts.get(s, 0)) for s in SPLITS) + " |")
    lines += ["", "| file | size (bytes) | sha256 |", "|---|---|---|"]
    for name, f in info["files"].items():
        lines.append(f"| {name} | {f['size']:,} | {f['sha256'][:16]}… |")
    return "\n".join(lines)
