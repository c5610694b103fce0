"""What reading one corpus source gives: its documents and the package files they came from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cocattn.data.read.document import Document

PathLike = str | os.PathLike


@dataclass
class SourceResult:
    """Documents of one source and the package files they came from (name, version, sha256)."""

    documents: list[Document]
    packages: list[dict] = field(default_factory=list)
