"""atheris harness: the data-directory manifest parser and the loaders that trust it (issue 7).

Each input is ``manifest.json`` bytes and shard bytes (split at the first ``\\x00\\xff`` or, when
absent, all manifest). The shard bytes are written as ``train.bin``, ``val.bin``, ``eval.jsonl``
and ``tokenizer.json``; then ``load_manifest``, ``load_tokens`` (both splits, every verify
mode), ``load_eval_documents`` and ``dataset_info`` run. The only acceptable outcomes are data
or ``ValueError`` / ``FileNotFoundError``.

Seed inputs (``fuzz/corpus/manifest``) are valid manifests, so the fuzzer starts past the format
check; ``fuzz/make_seeds.py`` writes them.

    .venv/bin/python fuzz/fuzz_manifest.py -max_total_time=60 -rss_limit_mb=4096 -artifact_prefix=/tmp/ /tmp/corpus-manifest fuzz/corpus/manifest
"""

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["cocattn"]):
    from cocattn.data.read.info import dataset_info
    from cocattn.data.read.shards import load_eval_documents, load_manifest, load_tokens

_DIR = Path(tempfile.mkdtemp(prefix="cocattn-fuzz-manifest-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
_SEP = b"\x00\xff"


def TestOneInput(data: bytes) -> None:
    manifest, _, shard = data.partition(_SEP)
    (_DIR / "manifest.json").write_bytes(manifest)
    for name in ("train.bin", "val.bin", "eval.jsonl", "tokenizer.json"):
        (_DIR / name).write_bytes(shard)
    (_DIR / ".verified.json").unlink(missing_ok=True)
    try:
        loaded = load_manifest(_DIR)
    except (ValueError, FileNotFoundError):
        return
    assert isinstance(loaded, dict) and isinstance(loaded["files"], dict)
    for call in (lambda: load_tokens(_DIR, "train", verify="full"), lambda: load_tokens(_DIR, "val", verify="size"),
                 lambda: load_tokens(_DIR, "train", verify="auto"), lambda: load_eval_documents(_DIR, verify="size"),
                 lambda: dataset_info(_DIR, verify="size")):
        try:
            call()
        except (ValueError, FileNotFoundError):
            pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
