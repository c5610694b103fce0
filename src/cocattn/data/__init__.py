"""Real-text data: corpus sources from registry packages and local files, held-out long
documents, a byte-level BPE tokenizer, memory-mapped token shards, training batches and
retrieval warm-up rows. See docs/DATA.md."""

from cocattn.data.batches import sample_batch
from cocattn.data.build import PRESETS, BuildResult, build_dataset, dataset_info, format_info
from cocattn.data.document import Document
from cocattn.data.retrieval import make_retrieval_row, mix_retrieval_rows, passkey_texts
from cocattn.data.shards import load_eval_documents, load_manifest, load_tokens, verify_file
from cocattn.data.sources import REGISTRY, load_source
from cocattn.data.tokenizer import EOT, eot_id, load_tokenizer, train_tokenizer

__all__ = [
    "PRESETS", "REGISTRY", "EOT", "BuildResult", "Document", "build_dataset", "dataset_info", "format_info",
    "load_eval_documents", "load_manifest", "load_source", "load_tokenizer", "load_tokens", "eot_id",
    "make_retrieval_row", "mix_retrieval_rows", "passkey_texts", "sample_batch", "train_tokenizer", "verify_file",
]
