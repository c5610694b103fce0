"""The split rules moved to :mod:`cocattn.corpus.splits` (the split names, ``SPLITS``, to
:mod:`cocattn.data.shards`); the old names here warn (DeprecationWarning) for one release."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "SPLITS": "cocattn.data.shards.SPLITS",
        "assign_splits": "cocattn.corpus.splits.assign_splits",
        "drop_short_eval": "cocattn.corpus.splits.drop_short_eval",
    },
)
