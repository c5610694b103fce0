"""Write the seed corpora of the atheris harnesses (valid inputs, so fuzzing starts deep).

    .venv/bin/python fuzz/make_seeds.py
"""

import hashlib
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PRESETS = HERE.parent / "src" / "cocattn" / "configs"


def _entry(data: bytes, **extra) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}


def main() -> None:
    config = HERE / "corpus" / "config"
    config.mkdir(parents=True, exist_ok=True)
    for preset in sorted(PRESETS.glob("*.yaml")):
        text = preset.read_bytes()
        (config / f"yaml-{preset.stem}").write_bytes(b"\x00" + text)
    (config / "json-min").write_bytes(b"\x01" + json.dumps({"model": {"n_layer": 1}, "train": {"lr": 1e-3}}).encode())
    (config / "overrides").write_bytes(b"\x02train.lr=3e-4\nmodel.attention=coca\nmodel.rope_parameters.rope_theta=5e4")

    manifest = HERE / "corpus" / "manifest"
    manifest.mkdir(parents=True, exist_ok=True)
    shard = np.arange(40, dtype=np.uint16).tobytes()
    doc = json.dumps({"id": "a", "source": "s", "title": "t", "text": "hi", "tokens": 1, "sha256": "0" * 64}).encode() + b"\n"
    for name, body in (("tokens", shard), ("eval", doc)):
        files = {n: _entry(body, **({"dtype": "uint16", "tokens": 40} if n.endswith(".bin") else {}))
                 for n in ("train.bin", "val.bin", "eval.jsonl", "tokenizer.json")}
        m = {"format": "cocattn-data", "format_version": 1, "config": {"preset": "custom"},
             "tokenizer": {"vocab_size": 300, "eot_id": 0}, "packages": [], "splits": {}, "files": files,
             "documents": [{"id": "a", "source": "s", "split": "eval", "tokens": 1}]}
        (manifest / f"valid-{name}").write_bytes(json.dumps(m).encode() + b"\x00\xff" + body)


if __name__ == "__main__":
    main()
