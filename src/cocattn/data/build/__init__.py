"""Building a data directory from a corpus: sources (registry packages read with the project's
own readers for R data, SWORD modules and archives; local text and JSONL files; Hugging Face
``datasets``), the split rules, and the builder that trains the tokenizer and writes the token
shards, ``eval.jsonl`` and ``manifest.json``. Reading a built directory is
:mod:`cocattn.data.read`, which never imports this package. See docs/DATA.md.

Names are imported lazily, so ``cocattn.data.build.rdata`` and friends load on their own.
"""

from __future__ import annotations

from cocattn._lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "builder",
    "BuildResult": "builder",
    "build_dataset": "builder",
    "REGISTRY": "sources",
    "SourceResult": "sources",
    "load_source": "sources",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
