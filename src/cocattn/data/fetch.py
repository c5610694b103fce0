"""Fetching registry packages moved to :mod:`cocattn.corpus.fetch`;
the old names here warn (DeprecationWarning) for one release."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "FetchError": "cocattn.corpus.fetch.FetchError",
        "cache_root": "cocattn.corpus.fetch.cache_root",
        "packages_dir": "cocattn.corpus.fetch.packages_dir",
        "fetch_pypi": "cocattn.corpus.fetch.fetch_pypi",
        "fetch_debian": "cocattn.corpus.fetch.fetch_debian",
        "read_archive": "cocattn.corpus.fetch.read_archive",
        "read_deb": "cocattn.corpus.fetch.read_deb",
    },
)
