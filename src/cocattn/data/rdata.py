"""The R XDR reader moved to :mod:`cocattn.corpus.rdata`;
the old names here warn (DeprecationWarning) for one release."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "NA_STRING": "cocattn.corpus.rdata.NA_STRING",
        "RObject": "cocattn.corpus.rdata.RObject",
        "RVector": "cocattn.corpus.rdata.RVector",
        "unserialize": "cocattn.corpus.rdata.unserialize",
        "read_rdb": "cocattn.corpus.rdata.read_rdb",
    },
)
