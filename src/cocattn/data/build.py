"""Building a data directory moved to :mod:`cocattn.corpus.build` (reading one's summary to
:mod:`cocattn.data.info`); the old names here warn (DeprecationWarning) for one release."""

from __future__ import annotations

from cocattn._moved import moved

__getattr__ = moved(
    __name__,
    {
        "PRESETS": "cocattn.corpus.build.PRESETS",
        "DATA_FILES": "cocattn.corpus.build.DATA_FILES",
        "BuildResult": "cocattn.corpus.build.BuildResult",
        "build_dataset": "cocattn.corpus.build.build_dataset",
        "split_stats": "cocattn.corpus.build.split_stats",
        "dataset_info": "cocattn.data.info.dataset_info",
        "format_info": "cocattn.data.info.format_info",
    },
)
