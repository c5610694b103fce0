"""The unit of the corpus: one document with its text and where it came from."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Document:
    """One document of the corpus.

    ``id`` is unique in a build (``source/name``), ``source`` names the registry source (e.g.
    ``shakespeare``), ``title`` is human-readable, ``meta`` holds small JSON-able extras (licence,
    package, an explicit split wish for local files).
    """

    id: str
    source: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chars(self) -> int:
        """Length in characters."""
        return len(self.text)

    @property
    def sha256(self) -> str:
        """Hex sha256 of the UTF-8 text."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_MANY_NEWLINES = re.compile(r"\n{4,}")


def decode_text(data: bytes) -> str:
    """Decode bytes as UTF-8 (BOM dropped), falling back to Latin-1 for old Gutenberg files."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.lstrip("\ufeff")


def normalize_text(text: str) -> str:
    """Canonical form of a document's text: NFC, ``\\n`` line ends, no trailing spaces on lines,
    at most three consecutive newlines, no leading/trailing blank space."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _TRAILING_SPACE.sub("\n", text + "\n")
    text = _MANY_NEWLINES.sub("\n\n\n", text)
    return text.strip()


def slug(name: str) -> str:
    """A file-name-safe lower-case identifier for a title."""
    out = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return out or "untitled"
