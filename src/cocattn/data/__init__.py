"""The data directory, in two halves: :mod:`cocattn.data.read` reads a built directory (token
shards and manifest, the byte-level BPE tokenizer, held-out documents, training batches, the
summary) for training and evaluation; :mod:`cocattn.data.build` builds one from a corpus (sources,
splits, fetching). Reading never imports building. See docs/DATA.md.

Names are imported lazily, so ``cocattn.data.read.tokenizer`` and friends load without torch.
"""

from __future__ import annotations

from cocattn._lazy import lazy_exports

_EXPORTS = {
    "sample_batch": "read.batches",
    "Document": "read.document",
    "dataset_info": "read.info",
    "format_info": "read.info",
    "load_eval_documents": "read.shards",
    "load_manifest": "read.shards",
    "load_tokens": "read.shards",
    "verify_file": "read.shards",
    "EOT": "read.tokenizer",
    "eot_id": "read.tokenizer",
    "load_tokenizer": "read.tokenizer",
    "train_tokenizer": "read.tokenizer",
    "PRESETS": "build.builder",
    "BuildResult": "build.builder",
    "build_dataset": "build.builder",
    "REGISTRY": "build.sources",
    "SourceResult": "build.sources",
    "load_source": "build.sources",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
