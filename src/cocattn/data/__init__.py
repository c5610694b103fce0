"""The training data path: a data directory's token shards and manifest, its byte-level BPE
tokenizer, held-out documents (``eval.jsonl``), training batches, retrieval warm-up rows and the
directory's summary. Building a data directory (sources, splits, fetching) is
:mod:`cocattn.corpus`. See docs/DATA.md.

Names are imported lazily, so ``cocattn.data.tokenizer`` and friends load without torch. The
builder's names once exported here (``build_dataset``, ``BuildResult``, ``PRESETS``, ``REGISTRY``,
``load_source``) warn (DeprecationWarning) and come from :mod:`cocattn.corpus` for one release.
"""

from __future__ import annotations

import importlib
from typing import Any

from cocattn._moved import moved

_EXPORTS = {
    "sample_batch": "batches",
    "Document": "document",
    "dataset_info": "info",
    "format_info": "info",
    "make_retrieval_row": "retrieval",
    "mix_retrieval_rows": "retrieval",
    "passkey_texts": "retrieval",
    "load_eval_documents": "shards",
    "load_manifest": "shards",
    "load_tokens": "shards",
    "verify_file": "shards",
    "EOT": "tokenizer",
    "eot_id": "tokenizer",
    "load_tokenizer": "tokenizer",
    "train_tokenizer": "tokenizer",
}
__all__ = sorted(_EXPORTS)


def _export(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cocattn.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cocattn.data.{module}"), name)
    globals()[name] = value
    return value


__getattr__ = moved(
    __name__,
    {
        "PRESETS": "cocattn.corpus.build.PRESETS",
        "BuildResult": "cocattn.corpus.build.BuildResult",
        "build_dataset": "cocattn.corpus.build.build_dataset",
        "REGISTRY": "cocattn.corpus.sources.REGISTRY",
        "load_source": "cocattn.corpus.sources.load_source",
    },
    fallback=_export,
)


def __dir__() -> list[str]:
    return __all__
