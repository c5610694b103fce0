"""Real-text data: corpus sources from registry packages and local files, held-out long
documents, a byte-level BPE tokenizer, memory-mapped token shards, training batches and
retrieval warm-up rows. See docs/DATA.md.

Names are imported lazily, so ``cocattn.data.tokenizer`` and friends load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "sample_batch": "batches",
    "PRESETS": "build",
    "BuildResult": "build",
    "build_dataset": "build",
    "dataset_info": "build",
    "format_info": "build",
    "Document": "document",
    "make_retrieval_row": "retrieval",
    "mix_retrieval_rows": "retrieval",
    "passkey_texts": "retrieval",
    "load_eval_documents": "shards",
    "load_manifest": "shards",
    "load_tokens": "shards",
    "verify_file": "shards",
    "REGISTRY": "sources",
    "load_source": "sources",
    "EOT": "tokenizer",
    "eot_id": "tokenizer",
    "load_tokenizer": "tokenizer",
    "train_tokenizer": "tokenizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cocattn.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cocattn.data.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
