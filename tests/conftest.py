"""Shared test fixtures."""

from __future__ import annotations

import email
import json
from pathlib import Path


def build_text_data(root: Path, vocab_size: int, **kwargs) -> Path:
    """A small real-text data directory built with `cocattn data`'s own builder: the modules of
    Python's json and email packages as documents (a few hundred KB of real text)."""
    from cocattn.data import build_dataset

    texts = root / "texts"
    texts.mkdir(parents=True)
    for package in (json, email):
        for file in sorted(Path(package.__file__).parent.glob("*.py")):
            (texts / f"{package.__name__}_{file.stem}.txt").write_text(file.read_text(encoding="utf-8"))
    out = root / "data"
    options = {"eval_documents": 0, "val_fraction": 0.2, **kwargs}
    build_dataset(preset="custom", sources=[f"text:{texts}"], out_dir=out, vocab_size=vocab_size, progress=False,
                  **options)
    return out
