"""The SWORD module reader moved to :mod:`cocattn.corpus.sword`;
the old names here warn (DeprecationWarning) for one release."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "sword_blocks": "cocattn.corpus.sword.sword_blocks",
        "osis_to_text": "cocattn.corpus.sword.osis_to_text",
        "block_label": "cocattn.corpus.sword.block_label",
    },
)
