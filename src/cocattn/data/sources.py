"""The corpus sources moved to :mod:`cocattn.corpus.sources`;
the old names here warn (DeprecationWarning) for one release."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "SourceResult": "cocattn.corpus.sources.SourceResult",
        "PACKAGES": "cocattn.corpus.sources.PACKAGES",
        "shakespeare": "cocattn.corpus.sources.shakespeare",
        "milton": "cocattn.corpus.sources.milton",
        "HOTPOT_PARAGRAPHS_PER_DOCUMENT": "cocattn.corpus.sources.HOTPOT_PARAGRAPHS_PER_DOCUMENT",
        "hotpotqa": "cocattn.corpus.sources.hotpotqa",
        "tdavid": "cocattn.corpus.sources.tdavid",
        "mhcc": "cocattn.corpus.sources.mhcc",
        "scofield": "cocattn.corpus.sources.scofield",
        "kjv": "cocattn.corpus.sources.kjv",
        "web": "cocattn.corpus.sources.web",
        "AUSTEN_NOVELS": "cocattn.corpus.sources.AUSTEN_NOVELS",
        "austen": "cocattn.corpus.sources.austen",
        "jargon": "cocattn.corpus.sources.jargon",
        "REGISTRY": "cocattn.corpus.sources.REGISTRY",
        "text_files": "cocattn.corpus.sources.text_files",
        "jsonl_file": "cocattn.corpus.sources.jsonl_file",
        "hf_dataset": "cocattn.corpus.sources.hf_dataset",
        "describe_source": "cocattn.corpus.sources.describe_source",
        "check_source": "cocattn.corpus.sources.check_source",
        "load_source": "cocattn.corpus.sources.load_source",
    },
)
